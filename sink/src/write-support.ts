// kafkajs throttles heartbeats to its heartbeatInterval itself; this only has to be shorter.
const HEARTBEAT_TICK_MS = 1_000;

/** Heartbeats while a write takes long (ClickHouse retries) so the group does not evict this member. */
export function keepAlive(heartbeat: () => Promise<void>): { lost: AbortSignal; stop(): void } {
  const lost = new AbortController();
  const timer = setInterval(() => {
    heartbeat().catch((err: unknown) => lost.abort(err));
  }, HEARTBEAT_TICK_MS);
  return { lost: lost.signal, stop: () => clearInterval(timer) };
}

/** ClickHouse quotes the failed query, which names every event of the batch: keep the log line short. */
export function brief(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { message: String(err) };
  const { code, type } = err as Error & { code?: unknown; type?: unknown };
  return { name: err.name, code, type, message: err.message.length > 300 ? `${err.message.slice(0, 300)}...` : err.message };
}
