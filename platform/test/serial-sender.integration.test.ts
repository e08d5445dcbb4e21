import { SERIAL_PRODUCER_CONFIG, serialSender } from '@meterstream/platform/kafka';
import { describe, expect, test } from '../../tests/support/test.js';
import { readTopic } from '../../tests/support/fixtures.js';

describe('serialSender on the real broker', () => {
  test('delivers a send far above the broker message size limit, in order, from concurrent callers', async ({ stack }) => {
    const producer = stack.kafka.producer(SERIAL_PRODUCER_CONFIG);
    await producer.connect();
    const send = serialSender(producer);
    const filler = 'x'.repeat(600);
    // 2 x 3000 messages of ~620 bytes for one key: ~3.7 MB for one partition, the limit is 1 MiB
    const batch = (tag: string) => Array.from({ length: 3000 }, (_, i) => ({ key: 'one-account', value: `${tag}-${i}-${filler}` }));
    await Promise.all([send({ topic: stack.topics.dlq, acks: -1, messages: batch('a') }), send({ topic: stack.topics.dlq, acks: -1, messages: batch('b') })]);
    await producer.disconnect();
    const got = (await readTopic(stack, stack.topics.dlq)).map((v) => v.slice(0, v.lastIndexOf('-')));
    expect(got).toEqual([...batch('a'), ...batch('b')].map((m) => m.value.slice(0, m.value.lastIndexOf('-'))));
  });
});
