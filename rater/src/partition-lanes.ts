/**
 * Runs the work of each partition one piece at a time, in the order it was queued: a batch and
 * the fence moves kafkajs triggers outside eachBatch never interleave on the same partition.
 */
export class PartitionLanes {
  private readonly tails = new Map<number, Promise<unknown>>();

  run<T>(partition: number, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(partition) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(work);
    const tail = next.catch(() => undefined);
    this.tails.set(partition, tail);
    void tail.then(() => {
      if (this.tails.get(partition) === tail) this.tails.delete(partition);
    });
    return next;
  }
}
