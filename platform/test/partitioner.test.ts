import fc from 'fast-check';
import { Partitioners, type PartitionerArgs, type PartitionMetadata } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { murmur2, Murmur2Partitioner } from '@meterstream/platform/partitioner';

const metadata = (count: number): PartitionMetadata[] =>
  Array.from({ length: count }, (_, partitionId) => ({ partitionId, leader: 1, partitionErrorCode: 0, replicas: [1], isr: [1] }));

describe('Murmur2Partitioner', () => {
  it("hashes like the Java client's Utils.murmur2 (its test vectors)", () => {
    const vectors: [string, number][] = [
      ['21', -973932308],
      ['foobar', -790332482],
      ['a-little-bit-long-string', -985981536],
      ['a-little-bit-longer-string', -1486304829],
      ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
      ['abc', 479470107],
    ];
    for (const [key, hash] of vectors) expect(murmur2(Buffer.from(key))).toBe(hash);
  });

  it("picks kafkajs's DefaultPartitioner's partition for any key and partition count", () => {
    const ours = Murmur2Partitioner();
    const theirs = Partitioners.DefaultPartitioner();
    const key = fc.oneof(fc.string({ unit: 'binary', maxLength: 200 }), fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)));
    fc.assert(
      fc.property(key, fc.integer({ min: 1, max: 1000 }), (k, count) => {
        const args: PartitionerArgs = { topic: 't', partitionMetadata: metadata(count), message: { key: k, value: null } };
        expect(ours(args)).toBe(theirs(args));
      }),
      { numRuns: 5_000 },
    );
  });

  it('leaves an explicit partition as it is', () => {
    const args: PartitionerArgs = { topic: 't', partitionMetadata: metadata(12), message: { key: 'acct-1', value: null, partition: 7 } };
    expect(Murmur2Partitioner()(args)).toBe(7);
  });
});
