import { spawn } from 'node:child_process';
import { freePort } from '@meterstream/bench/http';
import { Redis } from 'ioredis';

export interface PrivateRedis {
  url: string;
  /** A plain client to the instance, for CONFIG SET and inspection (never the shared Redis). */
  admin: Redis;
  /** SIGSTOP / SIGCONT: a Redis that accepts connections but answers nothing. */
  pause(): void;
  resume(): void;
  /** Stops the server (SIGKILL: an outage, not a shutdown); idempotent. */
  kill(): Promise<void>;
}


/**
 * A redis-server of the test's own, for faults the shared Redis must never see (refusing writes,
 * being killed). No persistence; it dies with kill().
 */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  // Never outlive the test process, even when a test times out before its clean-up.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  void exited.then(() => process.off('exit', killOnExit));
  let out = '';
  await new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.includes('Ready to accept connections')) resolve();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code} at start-up:\n${out}`)));
  });
  const url = `redis://127.0.0.1:${port}`;
  const admin = new Redis(url, { maxRetriesPerRequest: 1, lazyConnect: true });
  admin.on('error', () => undefined); // the instance is killed on purpose
  await admin.connect();
  return {
    url,
    admin,
    pause: () => child.kill('SIGSTOP'),
    resume: () => child.kill('SIGCONT'),
    async kill() {
      admin.disconnect();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
