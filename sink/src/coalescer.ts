interface Pending<T> {
  item: T;
  resolve(): void;
  reject(err: unknown): void;
}

export interface CoalescerOptions<T> {
  maxWeight: number;
  weight(item: T): number;
  write(items: T[]): Promise<void>;
}

/**
 * Group commit. kafkajs hands the partition batches of one fetch to concurrent eachBatch calls;
 * what is submitted in the same turn of the event loop, or while a write is running, is written
 * together (up to maxWeight, but never splitting an item). Writes never overlap, so two batches
 * holding the same republished event are never checked against ClickHouse at the same time.
 * submit() settles when the write that took the item has succeeded or failed.
 */
export function createCoalescer<T>(opts: CoalescerOptions<T>): { submit(item: T): Promise<void> } {
  const pending: Pending<T>[] = [];
  let draining = false;

  function takeGroup(): Pending<T>[] {
    let weight = opts.weight(pending[0]!.item);
    let n = 1;
    while (n < pending.length && weight + opts.weight(pending[n]!.item) <= opts.maxWeight) {
      weight += opts.weight(pending[n]!.item);
      n++;
    }
    return pending.splice(0, n);
  }

  async function drain(): Promise<void> {
    // Batches of the same fetch are all submitted within one macrotask: wait for the rest of them.
    await new Promise((resolve) => setImmediate(resolve));
    while (pending.length > 0) {
      const group = takeGroup();
      try {
        await opts.write(group.map((p) => p.item));
        for (const p of group) p.resolve();
      } catch (err) {
        for (const p of group) p.reject(err);
      }
    }
    draining = false;
  }

  return {
    submit(item: T): Promise<void> {
      return new Promise((resolve, reject) => {
        pending.push({ item, resolve, reject });
        if (!draining) {
          draining = true;
          void drain();
        }
      });
    },
  };
}
