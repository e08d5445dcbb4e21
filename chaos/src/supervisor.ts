import { startService, type ServiceProcess } from '@meterstream/bench/services';

export type Role = 'ingest' | 'rater' | 'sink' | 'rater-2' | 'sink-2';

const ENTRY: Record<Role, string> = {
  ingest: 'ingest/src/main.ts',
  rater: 'rater/src/main.ts',
  sink: 'sink/src/main.ts',
  'rater-2': 'rater/src/main.ts',
  'sink-2': 'sink/src/main.ts',
};
/** Always running (restarted after a kill, as systemd or Kubernetes would); the others join and leave. */
const PRIMARY = new Set<Role>(['ingest', 'rater', 'sink']);
const RESTART_AFTER_CRASH_MS = 1_000;

export interface UnexpectedExit {
  role: Role;
  name: string;
  pid: number;
  code: number | string;
  atMs: number;
  logFile: string;
  /** the last lines the process wrote */
  tail: string;
}

/**
 * Runs the services as OS processes and tells a kill the harness made from an exit the service
 * made on its own: only the latter is a finding. A primary that exits on its own is restarted.
 */
export class Supervisor {
  private readonly running = new Map<Role, ServiceProcess>();
  private readonly generation = new Map<Role, number>();
  private readonly intended = new Set<ServiceProcess>();
  private stopping = false;
  readonly unexpectedExits: UnexpectedExit[] = [];

  constructor(
    private readonly envFor: (role: Role) => Record<string, string>,
    private readonly logDir: string,
    private readonly say: (line: string) => void,
    private readonly now: () => number = Date.now,
    /** the checkout whose services run (another one to try the matrix on older or newer code) */
    private readonly root?: string,
  ) {}

  start(role: Role): ServiceProcess {
    const n = (this.generation.get(role) ?? 0) + 1;
    this.generation.set(role, n);
    const svc = startService(`${role}.${n}`, ENTRY[role], this.envFor(role), this.logDir, [], this.root);
    this.running.set(role, svc);
    void svc.exited.then((code) => this.onExit(role, svc, code));
    return svc;
  }

  get(role: Role): ServiceProcess | undefined {
    return this.running.get(role);
  }

  /** SIGKILL; resolves with the pid killed, or undefined when the role was not running. */
  async kill(role: Role): Promise<number | undefined> {
    const svc = this.running.get(role);
    if (!svc) return undefined;
    this.intended.add(svc);
    svc.child.kill('SIGKILL');
    await svc.exited;
    return svc.pid;
  }

  /** SIGTERM (a clean leave), SIGKILL after graceMs; resolves with the exit code or signal. */
  async stop(role: Role, graceMs = 20_000): Promise<number | string | undefined> {
    const svc = this.running.get(role);
    if (!svc) return undefined;
    this.intended.add(svc);
    return svc.stop(graceMs);
  }

  async stopAll(graceMs = 20_000): Promise<void> {
    this.stopping = true;
    await Promise.all([...this.running.keys()].map((r) => this.stop(r, graceMs)));
  }

  private onExit(role: Role, svc: ServiceProcess, code: number | string): void {
    if (this.running.get(role) === svc) this.running.delete(role);
    if (this.intended.delete(svc)) return;
    this.unexpectedExits.push({ role, name: svc.name, pid: svc.pid, code, atMs: this.now(), logFile: svc.logFile, tail: svc.tail() });
    const restart = PRIMARY.has(role) && !this.stopping;
    this.say(`${svc.name} (pid ${svc.pid}) exited on its own (${code})${restart ? '; restarting it' : ''}; log ${svc.logFile}`);
    if (!restart) return;
    setTimeout(() => {
      if (!this.stopping && !this.running.has(role)) this.start(role);
    }, RESTART_AFTER_CRASH_MS);
  }
}
