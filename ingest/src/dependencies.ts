/** The services ingest depends on; a 503 names the one that failed. */
export type Dependency = 'postgres' | 'redis' | 'clickhouse' | 'kafka';

const origins = new WeakMap<object, Dependency>();

/** The dependency whose client threw `err`, when that client was wrapped by attributeErrors. */
export function originOf(err: unknown): Dependency | undefined {
  return typeof err === 'object' && err !== null ? origins.get(err) : undefined;
}

function mark(err: unknown, dependency: Dependency): unknown {
  // The innermost client wins: Postgres errors inside a Redis read-through stay Postgres's.
  if (typeof err === 'object' && err !== null && !origins.has(err)) origins.set(err, dependency);
  return err;
}

const isPromiseLike = (v: unknown): v is PromiseLike<unknown> =>
  typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function';

/**
 * The client, with every error its methods throw or reject with remembered as coming from
 * `dependency`. Postgres and a ClickHouse server both report a refused connection as a bare
 * ECONNREFUSED; only the caller knows which one it was talking to. The results of the methods
 * named in `alsoWrap` (a pooled connection, a streamed result) are wrapped in turn.
 */
export function attributeErrors<T extends object>(client: T, dependency: Dependency, alsoWrap: readonly string[] = []): T {
  return new Proxy(client, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const method = value as (...args: unknown[]) => unknown;
      const wrapResult = typeof prop === 'string' && alsoWrap.includes(prop);
      return (...args: unknown[]) => {
        let result: unknown;
        try {
          result = method.apply(target, args);
        } catch (e) {
          throw mark(e, dependency);
        }
        if (!isPromiseLike(result)) return result;
        return Promise.resolve(result).then(
          (r) => (wrapResult && typeof r === 'object' && r !== null ? attributeErrors(r, dependency) : r),
          (e: unknown) => {
            throw mark(e, dependency);
          },
        );
      };
    },
  });
}
