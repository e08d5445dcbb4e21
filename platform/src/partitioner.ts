import { Partitioners, type ICustomPartitioner } from 'kafkajs';

const M = 0x5bd1e995;

/**
 * Kafka's murmur2 (the Java client's Utils.murmur2) in 32-bit integer arithmetic. kafkajs computes
 * the same hash on BigInt-backed Longs at ~2 µs a message, an eighth of the ingest's CPU per event.
 */
export function murmur2(data: Uint8Array): number {
  const length = data.length;
  const end4 = length & ~3;
  let h = 0x9747b28c ^ length;
  for (let i = 0; i < end4; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const rest = length & 3;
  if (rest > 0) {
    if (rest === 3) h ^= data[end4 + 2]! << 16;
    if (rest >= 2) h ^= data[end4 + 1]! << 8;
    h ^= data[end4]!;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  return h ^ (h >>> 15);
}

/**
 * kafkajs's DefaultPartitioner with the fast murmur2: a keyed message goes to the same partition
 * as with the Java client, the rater's producer or any other producer using the default.
 * Messages without a key or with an explicit partition are left to the default itself.
 */
export const Murmur2Partitioner: ICustomPartitioner = () => {
  const byDefault = Partitioners.DefaultPartitioner();
  return (args) => {
    const { key, partition } = args.message;
    if (key == null || partition != null) return byDefault(args);
    const bytes = typeof key === 'string' ? Buffer.from(key) : key;
    return (murmur2(bytes) & 0x7fffffff) % args.partitionMetadata.length;
  };
};
