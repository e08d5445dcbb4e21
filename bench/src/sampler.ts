import { readdirSync, readFileSync } from 'node:fs';
import type { Pool } from '@meterstream/platform/postgres';

const CLK_TCK = 100;

interface ProcSample {
  comm: string;
  ticks: number;
  startTicks: number;
}

function readProc(pid: string): ProcSample | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const rest = stat.slice(close + 2).split(' ');
    return { comm, ticks: Number(rest[11]) + Number(rest[12]), startTicks: Number(rest[19]) };
  } catch {
    return null;
  }
}

function machineTicks(): { busy: number; total: number } {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = (cpu[3] ?? 0) + (cpu[4] ?? 0);
  const total = cpu.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

function uptimeTicks(): number {
  return Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * CLK_TCK;
}

export interface CpuBreakdown {
  seconds: number;
  /** machine-wide busy share of all cores, 0..1 */
  machineBusy: number;
  cores: number;
  /** CPU seconds per component over the window */
  cpuSeconds: Record<string, number>;
}

export interface PgActivity {
  samples: number;
  /** mean number of non-idle sessions on the bench database */
  meanActive: number;
  /** share of samples (per rater connection) in each state: what the rater's Postgres sessions were doing */
  states: { what: string; share: number }[];
}

/**
 * Where the CPU went during a window: the rater, the sink and the harness by pid, and every
 * postgres / Kafka (java) / redis-server process found in /proc (postgres includes other
 * databases' sessions, if anyone else uses the server meanwhile). Plus, every 250 ms, what the
 * sessions on the bench database are doing (pg_stat_activity state, wait event, statement).
 */
export class Sampler {
  private readonly named = new Map<string, string>();
  private readonly first = new Map<string, number>();
  private readonly last = new Map<string, { comm: string; ticks: number }>();
  private readonly activity = new Map<string, number>();
  private activitySamples = 0;
  private startedAt = 0;
  private startUptime = 0;
  private startMachine = machineTicks();
  private timer: NodeJS.Timeout | undefined;
  private pgTimer: NodeJS.Timeout | undefined;
  private readonly harnessStart = process.cpuUsage();

  constructor(private readonly pool: Pool, private readonly database: string, pids: Record<string, number>) {
    for (const [name, pid] of Object.entries(pids)) this.named.set(String(pid), name);
  }

  start(): void {
    this.startedAt = Date.now();
    this.startUptime = uptimeTicks();
    this.startMachine = machineTicks();
    this.scan();
    this.timer = setInterval(() => this.scan(), 500);
    this.pgTimer = setInterval(() => void this.pgSample(), 250);
  }

  private component(pid: string, comm: string): string | null {
    const n = this.named.get(pid);
    if (n) return n;
    if (comm === 'postgres') return 'postgres';
    if (comm === 'java') return 'kafka';
    if (comm === 'redis-server') return 'redis';
    return null;
  }

  private scan(): void {
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      if (!this.named.has(pid) && !this.last.has(pid)) {
        // cheap pre-filter on the command name before parsing the whole stat line
        const p = readProc(pid);
        if (!p || !this.component(pid, p.comm)) continue;
        this.first.set(pid, p.startTicks > this.startUptime ? 0 : p.ticks);
        this.last.set(pid, { comm: p.comm, ticks: p.ticks });
        continue;
      }
      const p = readProc(pid);
      if (!p) continue;
      if (!this.first.has(pid)) this.first.set(pid, p.startTicks > this.startUptime ? 0 : p.ticks);
      this.last.set(pid, { comm: p.comm, ticks: p.ticks });
    }
  }

  private async pgSample(): Promise<void> {
    try {
      const r = await this.pool.query<{ state: string | null; wait: string | null; q: string | null }>(
        `SELECT state, wait_event_type || ':' || wait_event AS wait, left(regexp_replace(query, '\\s+', ' ', 'g'), 60) AS q
           FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'`,
        [this.database],
      );
      this.activitySamples++;
      for (const row of r.rows) {
        if (row.state === 'idle') continue;
        const q = row.state === 'idle in transaction' ? '(waiting on the client)' : row.q ?? '';
        const key = `${row.state} | ${row.wait ?? 'CPU'} | ${q}`;
        this.activity.set(key, (this.activity.get(key) ?? 0) + 1);
      }
    } catch {
      // the pool may be busy or closing: a missed sample is fine
    }
  }

  stop(): { cpu: CpuBreakdown; pg: PgActivity } {
    clearInterval(this.timer);
    clearInterval(this.pgTimer);
    this.scan();
    const seconds = (Date.now() - this.startedAt) / 1000;
    const m = machineTicks();
    const cpuSeconds: Record<string, number> = {};
    for (const [pid, l] of this.last) {
      const c = this.component(pid, l.comm);
      if (!c) continue;
      cpuSeconds[c] = (cpuSeconds[c] ?? 0) + (l.ticks - (this.first.get(pid) ?? l.ticks)) / CLK_TCK;
    }
    const h = process.cpuUsage(this.harnessStart);
    cpuSeconds.harness = (h.user + h.system) / 1e6;
    const busy = (m.busy - this.startMachine.busy) / Math.max(1, m.total - this.startMachine.total);
    for (const k of Object.keys(cpuSeconds)) cpuSeconds[k] = Math.round(cpuSeconds[k]! * 10) / 10;
    const totalActive = [...this.activity.values()].reduce((a, b) => a + b, 0);
    return {
      cpu: { seconds, machineBusy: Math.round(busy * 1000) / 1000, cores: Number(readFileSync('/proc/cpuinfo', 'utf8').match(/^processor/gm)?.length ?? 1), cpuSeconds },
      pg: {
        samples: this.activitySamples,
        meanActive: Math.round((totalActive / Math.max(1, this.activitySamples)) * 100) / 100,
        states: [...this.activity].sort((a, b) => b[1] - a[1]).slice(0, 12)
          .map(([what, n]) => ({ what, share: Math.round((n / Math.max(1, totalActive)) * 1000) / 1000 })),
      },
    };
  }
}
