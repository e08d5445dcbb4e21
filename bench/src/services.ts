import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin } from 'kafkajs';
import { ROOT } from './context.js';

export interface ServiceProcess {
  name: string;
  pid: number;
  child: ChildProcess;
  logFile: string;
  /** the last lines the process wrote, for error messages */
  tail(): string;
  exited: Promise<number | string>;
  isRunning(): boolean;
  /** SIGTERM, then SIGKILL after graceMs; resolves with the exit code or signal */
  stop(graceMs?: number): Promise<number | string>;
}

/** A service entry point as its own OS process (as in production), its output in a log file. */
export function startService(
  name: string, entry: string, env: Record<string, string>, logDir: string, nodeFlags: string[] = [], cwd = ROOT,
): ServiceProcess {
  const logFile = join(logDir, `${name}.log`);
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', entry], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let tail = '';
  const onData = (d: Buffer) => {
    log.write(d);
    tail = (tail + d.toString()).slice(-4000);
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => {
      log.end();
      resolve(code ?? signal ?? -1);
    }),
  );
  const isRunning = () => child.exitCode === null && child.signalCode === null;
  return {
    name, pid: child.pid!, child, logFile, exited, isRunning,
    tail: () => tail,
    async stop(graceMs = 30_000) {
      if (isRunning()) child.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (isRunning()) child.kill('SIGKILL');
      }, graceMs);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
}

export interface ProcStats {
  /** peak resident set size, bytes (VmHWM) */
  peakRss: number;
  rss: number;
  /** user + system CPU seconds used so far */
  cpuSeconds: number;
}

const CLK_TCK = 100; // Linux USER_HZ; /proc/<pid>/stat counts in these ticks

/** Peak RSS and CPU time of a live process from /proc (Linux). */
export function procStats(pid: number): ProcStats | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // fields after the ")" that ends the command name: state is field 3, utime 14, stime 15
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(rest[11]) + Number(rest[12]);
    return { peakRss: kb('VmHWM'), rss: kb('VmRSS'), cpuSeconds: ticks / CLK_TCK };
  } catch {
    return null;
  }
}

/** Waits until the consumer group is Stable with members holding partitions of the topic. */
export async function waitGroupStable(admin: Admin, groupId: string, svc: ServiceProcess, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!svc.isRunning()) throw new Error(`${svc.name} exited before joining its group:\n${svc.tail()}`);
    const { groups } = await admin.describeGroups([groupId]);
    const g = groups[0];
    if (g && g.state === 'Stable' && g.members.length > 0 && g.members.every((m) => m.memberAssignment.length > 0)) return;
    await sleep(200);
  }
  throw new Error(`${svc.name}: group ${groupId} not stable after ${timeoutMs} ms:\n${svc.tail()}`);
}

/** Fails fast (with the service's last output) when a service died while the harness waits on it. */
export function assertAlive(...services: (ServiceProcess | undefined)[]): void {
  for (const s of services) {
    if (s && !s.isRunning()) throw new Error(`${s.name} exited unexpectedly (log ${s.logFile}):\n${s.tail()}`);
  }
}
