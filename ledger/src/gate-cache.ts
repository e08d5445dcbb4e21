import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { GateRefusalCode, type GateRefusal } from '@meterstream/schemas';
import type { AccountState } from './account-state.js';

/**
 * The spend gate in Redis, beside each account's cached state (balance-cache.ts, key acct:<id>,
 * which also carries the figures decided on: grants as expiry:remaining, overdraft, mode, the
 * month's postpaid usage). Per account:
 *   gate:<id>   hash: ready (rebuilt from Postgres), ep (which rebuild), held (sum of open holds), h:<hold id> = amount
 *   gatex:<id>  sorted set: hold id by expiry (epoch ms)
 *   gcfg:<id>   hash, expiring: suspended, payment method, limits, month spend, hold TTL
 * Postgres (table holds) is the truth; this is rebuilt from it whenever a piece is missing.
 * Money is compared as Lua numbers (doubles): exact up to 2^53 micro-units (9 billion in a
 * currency), beyond any single price (MAX_MONEY_MICROS). Amounts are added and taken as text
 * (HINCRBY), so the held sum itself stays exact.
 */
export const gateKeys = (prefix: string, accountId: string) => ({
  account: `${prefix}acct:${accountId}`,
  holds: `${prefix}gate:${accountId}`,
  expiries: `${prefix}gatex:${accountId}`,
  config: `${prefix}gcfg:${accountId}`,
});

/** Takes one hold out of the gate, freeing its amount; a no-op for a hold it does not hold. */
export const CLOSE_HOLDS_LUA = `
local function close_hold(holds, expiries, id)
  local amt = redis.call('HGET', holds, 'h:' .. id)
  if amt then
    -- '-0' is not an integer to Redis
    if amt ~= '0' then redis.call('HINCRBY', holds, 'held', '-' .. amt) end
    redis.call('HDEL', holds, 'h:' .. id)
  end
  redis.call('ZREM', expiries, id)
end`;

/** The acct:<id> fields the gate decides on, in SET_IF_NEWER's order: gg, od, mode, pm, pa. */
export function gateFields(s: AccountState): [string, string, string, string, string] {
  const gg = s.grants.map((g) => `${g.expiresAt ?? -1}:${g.remaining}`).join(',');
  return [gg, s.overdraft.toString(), s.billingMode, s.postpaidMonth, s.postpaidAmount.toString()];
}

/**
 * Checks and reserves in one step (decideHold in core/holds.ts is its specification).
 * KEYS: acct, gate, gatex, gcfg. ARGV: now ms, amount, hold id, the month of now, refresh ms.
 * Answers MISS_ACCOUNT / MISS_GATE / MISS_CONFIG (rebuild that piece from Postgres), STALE (the
 * allowed limit's month spend is older than the cached ledger seq), NO <code>, or OK <expires ms>;
 * NO and OK carry a third element, '1', when the config expires within refresh ms (read it again);
 * OK a fourth, the rebuild the reservation was made in (ep).
 */
const AUTHORIZE = `
${CLOSE_HOLDS_LUA}
local now = tonumber(ARGV[1])
local amount = tonumber(ARGV[2])
local a = redis.call('HMGET', KEYS[1], 'seq', 'gg', 'od', 'mode', 'pm', 'pa')
if not a[1] or not a[2] then return {'MISS_ACCOUNT'} end
if redis.call('HEXISTS', KEYS[2], 'ready') == 0 then return {'MISS_GATE'} end
local c = redis.call('HMGET', KEYS[4], 'sus', 'pmeth', 'ml', 'al', 'ms', 'mon', 'sseq', 'ttl')
if not c[1] or c[6] ~= ARGV[4] then return {'MISS_CONFIG'} end
if c[4] ~= '-1' and tonumber(c[7]) < tonumber(a[1]) then return {'STALE'} end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)) do close_hold(KEYS[2], KEYS[3], id) end
local held = tonumber(redis.call('HGET', KEYS[2], 'held') or '0')
local exp = now + tonumber(c[8])
local code = nil
if c[1] == '1' then code = 'ACCOUNT_SUSPENDED'
elseif c[4] ~= '-1' and tonumber(c[5]) + held + amount > tonumber(c[4]) then code = 'ALLOWED_LIMIT_REACHED'
else
  local credits = -tonumber(a[3])
  for e, r in string.gmatch(a[2], '(-?%d+):(%d+)') do
    local ev = tonumber(e)
    if ev < 0 or ev > exp then credits = credits + tonumber(r) end
  end
  if credits - held < amount then
    if a[4] == 'prepaid' then code = 'PAYMENT_REQUIRED'
    elseif c[2] ~= '1' then code = 'CARD_REQUIRED'
    elseif c[3] ~= '-1' then
      local pa = 0
      if a[5] == ARGV[4] then pa = tonumber(a[6]) end
      if credits + tonumber(c[3]) - pa - held < amount then code = 'MONTHLY_LIMIT_REACHED' end
    end
  end
end
local refresh = '0'
if redis.call('PTTL', KEYS[4]) < tonumber(ARGV[5]) then refresh = '1' end
if code then return {'NO', code, refresh} end
redis.call('HSET', KEYS[2], 'h:' .. ARGV[3], ARGV[2])
redis.call('HINCRBY', KEYS[2], 'held', ARGV[2])
redis.call('ZADD', KEYS[3], exp, ARGV[3])
return {'OK', string.format('%.0f', exp), refresh, redis.call('HGET', KEYS[2], 'ep') or ''}`;

/**
 * Loads the open holds of an account whose gate is not ready (a flush, a restart of Redis).
 * KEYS: gate, gatex. ARGV: held sum, this rebuild's id (ep), then id, amount, expires ms for each
 * open hold. A no-op when another instance rebuilt it first: from then on every hold went through Redis.
 */
const INIT_GATE = `
if redis.call('HEXISTS', KEYS[1], 'ready') == 1 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[1], 'ready', '1', 'held', ARGV[1], 'ep', ARGV[2])
for i = 3, #ARGV, 3 do
  redis.call('HSET', KEYS[1], 'h:' .. ARGV[i], ARGV[i + 1])
  redis.call('ZADD', KEYS[2], ARGV[i + 2], ARGV[i])
end
return 1`;

/**
 * A hold reserved before a flush and committed to Postgres after the rebuild read it is in neither
 * copy the rebuild made: put back. KEYS: gate, gatex. ARGV: the rebuild the reservation was made in
 * (ep), hold id, amount, expires ms. A no-op while the gate is the one it was reserved in, or not
 * rebuilt yet (the rebuild will read the committed hold); 1 when it was put back.
 */
const KEEP_HELD = `
local ep = redis.call('HGET', KEYS[1], 'ep')
if not ep or ep == ARGV[1] or redis.call('HEXISTS', KEYS[1], 'h:' .. ARGV[2]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'h:' .. ARGV[2], ARGV[3])
redis.call('HINCRBY', KEYS[1], 'held', ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[2])
return 1`;

/** KEYS: gate, gatex. ARGV: now ms. The sum of the holds that have not expired. */
const HELD = `
local sum = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf')) do
  sum = sum + tonumber(redis.call('HGET', KEYS[1], 'h:' .. id) or '0')
end
return string.format('%.0f', sum)`;

/**
 * Replaces the config only where it is still there. KEYS: gcfg. ARGV: TTL seconds, then field,
 * value pairs. A forgetConfig landing while a refresh read Postgres wins: the refresh is dropped.
 */
const REFRESH_CONFIG = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1`;

/** KEYS: gate, gatex. ARGV: hold ids. */
const CLOSE = `
${CLOSE_HOLDS_LUA}
for i = 1, #ARGV do close_hold(KEYS[1], KEYS[2], ARGV[i]) end
return 1`;

/** What the gate's config key holds (core/holds.ts GateLimits, with what it was read at). */
export interface GateConfig {
  suspended: boolean;
  hasPaymentMethod: boolean;
  monthlyLimit: bigint | null;
  allowedLimit: bigint | null;
  monthSpend: bigint;
  /** 'YYYY-MM' the month spend is of. */
  month: string;
  /** accounts.ledger_seq when the month spend was read. */
  spendSeq: bigint;
  holdTtlMs: number;
}

export interface OpenHold {
  id: string;
  amount: bigint;
  expiresMs: number;
}

/** refresh: the config expires soon; reading it again now keeps the next calls from waiting for it. */
export type Reservation =
  | { kind: 'miss'; what: 'account' | 'gate' | 'config' }
  | { kind: 'stale' }
  | { kind: 'refused'; code: GateRefusal; refresh?: true }
  | { kind: 'held'; expiresMs: number; refresh?: true; /** the gate's rebuild it was reserved in (keepHeld) */ epoch: string };

/** The scripts sent in an event-loop turn's pipeline. */
type TurnCommand = 'msAuthorize' | 'msKeepHeld';

type GateCommands = {
  msAuthorize(...args: string[]): Promise<string[]>;
  msInitGate(...args: string[]): Promise<number>;
  msKeepHeld(...args: string[]): Promise<number>;
  msCloseHolds(...args: string[]): Promise<number>;
  msHeld(...args: string[]): Promise<string>;
  msRefreshConfig(...args: string[]): Promise<number>;
};

/**
 * How long the config is trusted when nothing drops it: every writer of a limit, a suspension or a
 * payment method drops the account's copy at once (forgetConfig); this bounds only what no route
 * announces (a plan's defaults edited, a plan change coming into force).
 */
export const GATE_CONFIG_TTL_SECONDS = 60;
/**
 * A config with less than this left is read again in the background by the call that sees it:
 * half the TTL, so that an account called at least every 30 s never waits for it (with 10 s and
 * 3 s, one call in five missed on 1,000 accounts at 200 authorizations/s, each waiting for Postgres).
 */
const GATE_CONFIG_REFRESH_MS = 30_000;

export class GateCache {
  private readonly r: Redis & GateCommands;
  private turn: { command: TurnCommand; args: string[]; resolve: (reply: unknown) => void; reject: (err: unknown) => void }[] = [];

  constructor(redis: Redis, private readonly prefix: string) {
    redis.defineCommand('msAuthorize', { numberOfKeys: 4, lua: AUTHORIZE });
    redis.defineCommand('msInitGate', { numberOfKeys: 2, lua: INIT_GATE });
    redis.defineCommand('msKeepHeld', { numberOfKeys: 2, lua: KEEP_HELD });
    redis.defineCommand('msCloseHolds', { numberOfKeys: 2, lua: CLOSE });
    redis.defineCommand('msHeld', { numberOfKeys: 2, lua: HELD });
    redis.defineCommand('msRefreshConfig', { numberOfKeys: 1, lua: REFRESH_CONFIG });
    this.r = redis as Redis & GateCommands;
  }

  /** Runs a script in this turn of the event loop's pipeline (see reserve). */
  private inTurn<T>(command: TurnCommand, args: string[]): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.turn.push({ command, args, resolve: resolve as (reply: unknown) => void, reject });
      if (this.turn.length === 1) setImmediate(() => this.sendTurn());
    });
  }

  private sendTurn(): void {
    const batch = this.turn;
    this.turn = [];
    const pipeline = this.r.pipeline() as ReturnType<Redis['pipeline']> & Pick<GateCommands, TurnCommand>;
    for (const q of batch) void pipeline[q.command](...q.args);
    pipeline.exec().then((results) => {
      batch.forEach((q, i) => {
        const [err, reply] = results?.[i] ?? [new Error('Redis answered no result for a pipelined script'), null];
        if (err) q.reject(err);
        else q.resolve(reply);
      });
    }, (err: unknown) => {
      for (const q of batch) q.reject(err);
    });
  }

  keys(accountId: string) {
    return gateKeys(this.prefix, accountId);
  }

  /**
   * The one round trip of an authorization: checks what the account may spend and reserves the
   * amount. The scripts asked for in one turn of the event loop go out as one pipeline: one write
   * and one read for all the requests that arrived together, each still its own script.
   */
  async reserve(accountId: string, holdId: string, amount: bigint, nowMs: number, month: string): Promise<Reservation> {
    const k = this.keys(accountId);
    const [kind, arg, refresh, epoch] = await this.inTurn<string[]>('msAuthorize',
      [k.account, k.holds, k.expiries, k.config, String(nowMs), amount.toString(), holdId, month, String(GATE_CONFIG_REFRESH_MS)]);
    const soon = refresh === '1' ? { refresh: true as const } : {};
    switch (kind) {
      case 'OK': return { kind: 'held', expiresMs: Number(arg), epoch: epoch ?? '', ...soon };
      case 'NO': return { kind: 'refused', code: GateRefusalCode.parse(arg), ...soon };
      case 'STALE': return { kind: 'stale' };
      case 'MISS_ACCOUNT': return { kind: 'miss', what: 'account' };
      case 'MISS_GATE': return { kind: 'miss', what: 'gate' };
      default: return { kind: 'miss', what: 'config' };
    }
  }

  /** Frees holds (a release, an undone reservation, a capture outside the rater's cache write). */
  async close(accountId: string, holdIds: readonly string[]): Promise<void> {
    if (holdIds.length === 0) return;
    const k = this.keys(accountId);
    await this.r.msCloseHolds(k.holds, k.expiries, ...holdIds);
  }

  /** Loads the open holds Postgres holds, unless the gate was rebuilt meanwhile. */
  async init(accountId: string, holds: readonly OpenHold[]): Promise<void> {
    const k = this.keys(accountId);
    const held = holds.reduce((sum, h) => sum + h.amount, 0n);
    await this.r.msInitGate(k.holds, k.expiries, held.toString(), randomBytes(6).toString('hex'),
      ...holds.flatMap((h) => [h.id, h.amount.toString(), String(h.expiresMs)]));
  }

  /**
   * After a hold is committed: puts it back if the gate was rebuilt since it was reserved (a flush
   * in between; the rebuild read Postgres before the commit). True when it was put back.
   */
  async keepHeld(accountId: string, hold: OpenHold, epoch: string): Promise<boolean> {
    const k = this.keys(accountId);
    return (await this.inTurn<number>('msKeepHeld', [k.holds, k.expiries, epoch, hold.id, hold.amount.toString(), String(hold.expiresMs)])) === 1;
  }

  /** refresh: only where the config is still there (read ahead of its expiry, see Reservation). */
  async writeConfig(accountId: string, c: GateConfig, { refresh = false } = {}): Promise<void> {
    const key = this.keys(accountId).config;
    const opt = (v: bigint | null) => (v === null ? '-1' : v.toString());
    const fields = {
      sus: c.suspended ? '1' : '0', pmeth: c.hasPaymentMethod ? '1' : '0', ml: opt(c.monthlyLimit), al: opt(c.allowedLimit),
      ms: c.monthSpend.toString(), mon: c.month, sseq: c.spendSeq.toString(), ttl: String(c.holdTtlMs),
    };
    if (refresh) {
      await this.r.msRefreshConfig(key, String(GATE_CONFIG_TTL_SECONDS), ...Object.entries(fields).flat());
      return;
    }
    const results = await this.r.multi()
      .del(key)
      .hset(key, fields)
      .expire(key, GATE_CONFIG_TTL_SECONDS)
      .exec();
    const failed = results?.find(([err]) => err);
    if (failed) throw failed[0];
  }

  /** The open holds' sum at nowMs as Redis counts them (the balance API while Postgres is down). */
  async heldAt(accountId: string, nowMs: number): Promise<bigint> {
    const k = this.keys(accountId);
    return BigInt(await this.r.msHeld(k.holds, k.expiries, String(nowMs)));
  }

  /** Drops the account's config, so that a new limit or a suspension applies to the next call. */
  async forgetConfig(accountId: string): Promise<void> {
    await this.r.del(this.keys(accountId).config);
  }
}
