import type { Message } from 'kafkajs';

export interface DeadLetter {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  code: string;
  reason: string;
}

/** The original bytes, untouched, with the reason in headers named as the rater names them. */
export function deadLetterMessage(d: DeadLetter): Message {
  return {
    key: d.key,
    value: d.value,
    headers: {
      'error-code': d.code,
      'error-reason': d.reason,
      'source-topic': d.topic,
      'source-partition': String(d.partition),
      'source-offset': d.offset,
    },
  };
}
