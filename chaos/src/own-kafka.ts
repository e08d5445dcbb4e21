import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT } from '@meterstream/bench/context';
import { freePort } from '@meterstream/bench/http';

export interface OwnKafka {
  brokers: string;
  /** deploy/up.sh on this broker's ports and directory: starts it, or waits until it serves */
  start(): Promise<void>;
  /** SIGKILL of the broker's JVM, as a crash or an OOM kill would; resolves once it is gone */
  kill(): Promise<number | undefined>;
  /** deploy/down.sh: a clean stop */
  stop(): Promise<void>;
}

function runScript(script: string, env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [join(ROOT, 'deploy', script)], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`deploy/${script} failed (${code}):\n${out}`))));
  });
}

/** A zombie (killed, not yet reaped by init) counts as gone. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/**
 * A Kafka broker of the chaos run's own, started and stopped by deploy/up.sh and down.sh with
 * MS_STACK_DIR pointing into the run's directory and ports of its own: the shared broker on 9092
 * is never touched.
 */
export async function ownKafka(stackDir: string, redisUrl: string, databaseUrl: string): Promise<OwnKafka> {
  const port = await freePort();
  let controllerPort = await freePort();
  while (controllerPort === port) controllerPort = await freePort();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    MS_STACK_DIR: stackDir,
    KAFKA_PORT: String(port),
    KAFKA_CONTROLLER_PORT: String(controllerPort),
    KAFKA_HEAP_OPTS: '-Xms128m -Xmx512m',
    REDIS_URL: redisUrl,
    DATABASE_URL: databaseUrl,
  };
  delete env.KAFKA_BROKERS; // up.sh starts no broker when it is set
  const pidFile = join(stackDir, 'kafka', 'kafka.pid');
  return {
    brokers: `127.0.0.1:${port}`,
    start: () => runScript('up.sh', env),
    async kill() {
      let pid: number;
      try {
        pid = Number(readFileSync(pidFile, 'utf8').trim());
      } catch {
        return undefined;
      }
      if (!pid || !alive(pid)) return undefined;
      process.kill(pid, 'SIGKILL');
      while (alive(pid)) await sleep(50);
      return pid;
    },
    stop: () => runScript('down.sh', env),
  };
}
