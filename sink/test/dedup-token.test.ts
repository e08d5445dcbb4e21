import { describe, expect, it } from 'vitest';
import { rowKey } from '../src/row-format.js';
import { toRow } from '../src/rows.js';
import { dedupToken, type OffsetRange } from '../src/store.js';
import { ratedEvents } from './support/rated-events.js';

const range = (first: number, last: number): OffsetRange[] => [{ topic: 'usage.rated', partition: 0, first: String(first), last: String(last) }];

describe('ClickHouse insert deduplication token', () => {
  it('derives the token from the offsets and the rows actually inserted', () => {
    const batch = ratedEvents(0, 10, ['acct-1', 'acct-2', 'acct-3']).map(toRow).map(rowKey);
    expect(dedupToken(range(0, 9), batch)).toBe(dedupToken(range(0, 9), [...batch]));
    expect(dedupToken(range(0, 9), batch.slice(1))).not.toBe(dedupToken(range(0, 9), batch));
    expect(dedupToken(range(10, 19), batch)).not.toBe(dedupToken(range(0, 9), batch));
  });
});
