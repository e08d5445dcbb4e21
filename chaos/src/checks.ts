import { isDeepStrictEqual } from 'node:util';
import type { Admin, Kafka } from 'kafkajs';
import { formatMicros } from '@meterstream/schemas';
import type { ClickHouseClient } from '@meterstream/platform/clickhouse';
import { cachedPart, loadAccountStates } from '@meterstream/ledger/account-state';
import type { BalanceCache } from '@meterstream/ledger/balance-cache';
import type { Pool } from '@meterstream/platform/postgres';
import { topicEnds } from '@meterstream/bench/progress';
import { checkPostgres, checkRedis, replayTopic, type Check } from '@meterstream/bench/verify';
import { readTopicMessages } from '../../tests/support/fixtures.js';
import { describeLag, type LagReport } from './quiescence.js';
import type { UnexpectedExit } from './supervisor.js';
import { eventKey, type SentEvent } from './workload.js';
import { formatSeconds as seconds, systemClock } from '@meterstream/platform/clock';

export type { Check };

// Every check is computed from what a client, a SQL query or a ClickHouse query sees, plus the
// bench's replay of usage.events (priced from the price list, burned against the seeded grants):
// nothing here runs the services' own code paths.

const some = (items: string[], n = 5) => (items.length === 0 ? '' : `, e.g. ${items.slice(0, n).join(' | ')}`);
const show = (key: string) => key.replace('\u0000', '/');

export function checkWorkload(sent: Map<string, SentEvent>): Check {
  const all = [...sent.values()];
  const confirmed = all.filter((s) => s.confirmed);
  const refused = all.filter((s) => s.rejected !== undefined && !s.confirmed);
  const unconfirmed = all.filter((s) => !s.confirmed && s.rejected === undefined);
  const retried = all.filter((s) => s.attempts > 1).length;
  const http = confirmed.filter((s) => s.via === 'http').length;
  return {
    name: 'workload: every event sent was confirmed (HTTP 202 or producer ack), none refused',
    ok: refused.length === 0 && unconfirmed.length === 0 && confirmed.length > 0,
    detail: `${confirmed.length}/${all.length} distinct events confirmed (${http} via HTTP, ${confirmed.length - http} via the producer client, `
      + `${retried} needed retries); ${refused.length} refused${some(refused.map((s) => `${s.event.account_id}/${s.event.id}: ${s.rejected}`), 3)}; `
      + `${unconfirmed.length} never confirmed${some(unconfirmed.map((s) => `${s.event.account_id}/${s.event.id} (${s.attempts} attempts)`))}`,
  };
}

export interface DeadLetter {
  key: string;
  code: string;
  reason: string;
}

export async function readDeadLetters(kafka: Kafka, topic: string): Promise<DeadLetter[]> {
  return (await readTopicMessages({ kafka }, topic)).map((m) => {
    let key = `(undecodable: ${m.value.slice(0, 80)})`;
    try {
      const e = JSON.parse(m.value) as { account_id?: string; id?: string };
      key = eventKey(String(e.account_id), String(e.id));
    } catch {
      // kept as undecodable
    }
    return { key, code: m.headers['error-code'] ?? '?', reason: m.headers['error-reason'] ?? '?' };
  });
}

/** Each confirmed event in usage_ledger exactly once; nothing there that was not sent. */
export async function checkLedgerAgainstSent(pool: Pool, sent: Map<string, SentEvent>, dead: DeadLetter[]): Promise<Check[]> {
  const rows = await pool.query<{ account_id: string; event_id: string; n: bigint }>(
    'SELECT account_id, event_id, count(*) AS n FROM usage_ledger GROUP BY 1, 2',
  );
  const ledger = new Map(rows.rows.map((r) => [eventKey(r.account_id, r.event_id), r.n]));
  const deadBy = new Map(dead.map((d) => [d.key, d]));
  const confirmed = [...sent].filter(([, s]) => s.confirmed).map(([k]) => k);
  const missing = confirmed.filter((k) => !ledger.has(k));
  const twice = [...ledger].filter(([, n]) => n !== 1n).map(([k, n]) => `${show(k)} x${n}`);
  const extra = [...ledger.keys()].filter((k) => !sent.get(k)?.confirmed);
  const unknown = extra.filter((k) => !sent.has(k));
  return [
    {
      name: 'every confirmed event is in usage_ledger exactly once',
      ok: missing.length === 0 && twice.length === 0,
      detail: `${confirmed.length - missing.length}/${confirmed.length} present; ${missing.length} missing`
        + some(missing.map((k) => `${show(k)}${deadBy.has(k) ? ` (dead-lettered: ${deadBy.get(k)!.code}: ${deadBy.get(k)!.reason})` : ''}`))
        + `; ${twice.length} more than once${some(twice)}`,
    },
    {
      name: 'nothing else is in usage_ledger',
      ok: unknown.length === 0,
      detail: `${ledger.size} ledger rows; ${unknown.length} of events never sent${some(unknown.map(show))}; `
        + `${extra.length - unknown.length} of events sent but never confirmed (a client that gave up: allowed)`,
    },
    {
      name: 'no event dead-lettered (every event of the workload is valid and priced)',
      ok: dead.length === 0,
      detail: dead.length === 0 ? 'usage.dlq is empty' : `${dead.length} dead letters${some(dead.map((d) => `${show(d.key)}: ${d.code}: ${d.reason}`))}`,
    },
  ];
}

/** The bench's independent recomputation from usage.events, account by account (see bench/src/verify.ts). */
export async function checkBooks(
  kafka: Kafka, admin: Admin, pool: Pool, eventsTopic: string, replayGroup: string, giftMidMs: number, giftLateMs: number,
): Promise<Check[]> {
  const ends = await topicEnds(admin, eventsTopic);
  const replay = await replayTopic(kafka, eventsTopic, replayGroup, ends, giftMidMs, giftLateMs, 120_000);
  return (await checkPostgres(pool, replay)).checks;
}

/** A cached state that is present must be Postgres's; a missing one is legal (rebuilt on read). */
export async function checkRedisHeld(pool: Pool, cache: BalanceCache, accounts: string[]): Promise<Check> {
  const [cached, truth] = await Promise.all([cache.readMany(accounts), loadAccountStates(pool, accounts, { forUpdate: false, nowMs: systemClock.now() })]);
  const stale = accounts.filter((a) => cached.has(a) && (!truth.has(a) || !isDeepStrictEqual(cached.get(a), cachedPart(truth.get(a)!))));
  const seq = (a: string) => `${a} (Redis seq ${cached.get(a)?.ledgerSeq}, Postgres ${truth.get(a)?.ledgerSeq})`;
  return {
    name: 'Redis = Postgres for every account Redis holds',
    ok: stale.length === 0,
    detail: `${cached.size - stale.length} identical, ${stale.length} stale${some(stale.map(seq))}, ${accounts.length - cached.size} not cached (rebuilt on the next read)`,
  };
}

/** What each account sees through GET /v1/accounts/{id}/balance against Postgres's rows. */
export async function checkBalanceApi(pool: Pool, ingestUrl: string, adminKey: string, accounts: string[]): Promise<Check> {
  const bad: string[] = [];
  for (const id of accounts) {
    let got: { balance?: string; overdraft?: string; ledger_seq?: number } | string;
    try {
      const res = await fetch(`${ingestUrl}/v1/accounts/${id}/balance`, { headers: { authorization: `Bearer ${adminKey}` }, signal: AbortSignal.timeout(10_000) });
      got = res.ok ? ((await res.json()) as { balance: string; overdraft: string; ledger_seq: number }) : `HTTP ${res.status} ${(await res.text()).slice(0, 200)}`;
    } catch (e) {
      got = (e as Error).message;
    }
    const r = await pool.query<{ overdraft: bigint; ledger_seq: bigint; live: bigint }>(
      `SELECT a.overdraft, a.ledger_seq,
              (SELECT coalesce(sum(remaining), 0) FROM grants g
                WHERE g.account_id = a.id AND (g.expires_at IS NULL OR g.expires_at > now()))::bigint AS live
         FROM accounts a WHERE a.id = $1`,
      [id],
    );
    const pg = r.rows[0]!;
    const want = { balance: formatMicros(pg.live - pg.overdraft), overdraft: formatMicros(pg.overdraft), ledger_seq: Number(pg.ledger_seq) };
    const have = typeof got === 'string' ? got : { balance: got.balance, overdraft: got.overdraft, ledger_seq: got.ledger_seq };
    if (!isDeepStrictEqual(have, want)) bad.push(`${id}: API ${JSON.stringify(have)} Postgres ${JSON.stringify(want)}`);
  }
  return {
    name: 'balance API = Postgres for every account (balance, overdraft, ledger_seq)',
    ok: bad.length === 0,
    detail: bad.length === 0 ? `${accounts.length} accounts identical` : `${bad.length}/${accounts.length} differ${some(bad, 3)}`,
  };
}

export async function checkRedisAll(pool: Pool, cache: BalanceCache, accounts: string[]): Promise<Check> {
  return { ...(await checkRedis(pool, cache, accounts)), name: 'Redis = Postgres for every account, after reading every balance' };
}

export function checkLag(report: LagReport & { waitedMs: number }): Check {
  const count = (ofRater: boolean) => report.partitions.filter((p) => (p.published !== undefined) === ofRater && p.end > 0n).length;
  return {
    name: 'no partition stuck: lag 0 for the rater and the sink groups',
    ok: report.behind.length === 0,
    detail: report.behind.length === 0
      ? `${count(true)} partitions of usage.events rated to their end (Kafka commit and Postgres fence), ${count(false)} of usage.rated committed by the sink; drained ${seconds(report.waitedMs)} after the faults`
      : `after ${seconds(report.waitedMs)} still behind: ${report.behind.map(describeLag).join('; ')}`,
  };
}

interface Totals {
  n: bigint;
  amount: bigint;
}

function compareKeyed(name: string, what: string, want: Map<string, Totals>, got: Map<string, Totals>): Check {
  const keys = [...new Set([...want.keys(), ...got.keys()])].sort();
  const fmt = (t: Totals | undefined) => (t ? `${t.n} events ${formatMicros(t.amount)}` : 'nothing');
  const bad = keys.filter((k) => want.get(k)?.n !== got.get(k)?.n || want.get(k)?.amount !== got.get(k)?.amount);
  const sum = (m: Map<string, Totals>) => [...m.values()].reduce((a, t) => ({ n: a.n + t.n, amount: a.amount + t.amount }), { n: 0n, amount: 0n });
  return {
    name,
    ok: bad.length === 0,
    detail: `ClickHouse ${fmt(sum(got))}, ledger ${fmt(sum(want))} over ${keys.length} ${what}; ${bad.length} differ`
      + some(bad.map((k) => `${k}: ClickHouse ${fmt(got.get(k))}, ledger ${fmt(want.get(k))}`), 3),
  };
}

/** rated_events (raw rows, so a duplicate shows) and the daily and monthly views against the ledger. */
export async function checkClickHouse(pool: Pool, ch: ClickHouseClient, database: string): Promise<Check[]> {
  const fromPg = async (bucket: string) => new Map(
    (await pool.query<{ k: string; n: bigint; amount: bigint }>(
      `SELECT account_id || ' ' || ${bucket} AS k, count(*) AS n, sum(amount)::bigint AS amount FROM usage_ledger GROUP BY 1`,
    )).rows.map((r) => [r.k, { n: r.n, amount: r.amount }]),
  );
  const fromCh = async (query: string) => new Map(
    (await (await ch.query({ query, format: 'JSONEachRow' })).json<{ k: string; n: string; amount: string }>())
      .map((r) => [r.k, { n: BigInt(r.n), amount: BigInt(r.amount) }]),
  );
  const db = database;
  return [
    compareKeyed('ClickHouse rated_events = ledger per account (count, no duplicate row, sum of amounts)', 'accounts',
      await fromPg("''"),
      await fromCh(`SELECT account_id || ' ' AS k, toString(count()) AS n, toString(sum(amount)) AS amount FROM ${db}.rated_events GROUP BY k`)),
    compareKeyed('ClickHouse usage_daily view = ledger per account and day', 'account-days',
      await fromPg(`to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-DD')`),
      await fromCh(`SELECT account_id || ' ' || toString(day) AS k, toString(sum(events)) AS n, toString(sum(amount)) AS amount FROM ${db}.usage_daily GROUP BY k`)),
    compareKeyed('ClickHouse usage_monthly view = ledger per account and month', 'account-months',
      await fromPg(`to_char(event_time AT TIME ZONE 'UTC', 'YYYY-MM-01')`),
      await fromCh(`SELECT account_id || ' ' || toString(month) AS k, toString(sum(events)) AS n, toString(sum(amount)) AS amount FROM ${db}.usage_monthly GROUP BY k`)),
  ];
}

/** A one-line account of a crash: an uncaught exception's message, else the last pino error. */
function lastError(tail: string): string {
  const lines = tail.trim().split('\n');
  const at = lines.findIndex((l) => /^(\w*Error\b|error:)/.test(l));
  if (at >= 0) {
    const cause = /^\s+Caused by: (.*)/.exec(lines[at + 1] ?? '')?.[1];
    const kind = lines.some((l) => l.includes("Unhandled 'error' event")) ? "unhandled 'error' event" : 'uncaught';
    return `${kind}: ${lines[at]}${cause ? ` caused by ${cause}` : ''}`.slice(0, 300);
  }
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      const l = JSON.parse(lines[i]!) as { level?: number; msg?: string; err?: { message?: string } };
      if ((l.level ?? 0) >= 50) return `${l.msg ?? ''}${l.err?.message ? `: ${l.err.message}` : ''}`.slice(0, 300);
    } catch {
      // not a pino line
    }
  }
  return (lines[lines.length - 1] ?? '').slice(0, 300);
}

export function checkExits(exits: UnexpectedExit[], startMs: number): Check {
  return {
    name: 'services exited only when the harness killed or stopped them',
    ok: exits.length === 0,
    detail: exits.length === 0
      ? 'no exit of their own'
      : `${exits.length} exits of their own: ${exits.map((x) => `${x.name} pid ${x.pid} (${x.code}) at +${seconds(x.atMs - startMs)}: ${lastError(x.tail)} [${x.logFile}]`).join(' | ')}`,
  };
}
