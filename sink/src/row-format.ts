/**
 * One rated_events row, already encoded for the insert: `line` is a JSONCompactEachRow array
 * holding COLUMNS in order. Keeping only the encoded line (and the key and time that the
 * duplicate check needs) instead of an object of 18 strings keeps a 50k-row batch small.
 */
export interface RatedRow {
  account_id: string;
  event_id: string;
  /** 'YYYY-MM-DD hh:mm:ss.sss' in UTC, as stored. */
  event_time: string;
  line: string;
}

/** The columns of RatedRow.line, in order. */
export const COLUMNS = [
  'account_id', 'event_id', 'product', 'currency', 'unit', 'quantity', 'unit_price', 'per', 'amount', 'from_grants',
  'postpaid', 'overdraft', 'balance_after', 'ledger_seq', 'grants', 'properties', 'event_time', 'rated_at', 'workspace_id',
] as const;

/**
 * Column values as text. Int64 and UInt64 columns are decimal digits, which ClickHouse parses
 * exactly (they never pass through a JS number); times are 'YYYY-MM-DD hh:mm:ss.sss' in UTC, the
 * columns' zone; grants is the JSON text of the grants array and properties the JSON text of an
 * object of strings (the Map column); workspace_id is '' for an event that named none.
 */
export type RowValues = Record<(typeof COLUMNS)[number], string>;

export const rowKey = (r: Pick<RatedRow, 'account_id' | 'event_id'>): string => `${r.account_id}\u0000${r.event_id}`;

/**
 * Both ways of decoding an event end here, so that they cannot disagree on the encoding. Ids and
 * enum values need no JSON escaping (the contract allows neither quotes nor backslashes in them,
 * and both ways validate that); grants is escaped. join() returns one flat string: a line built
 * by concatenation would stay a tree of dozens of pieces until the insert, and copying those
 * through the young generation cost more than the rest of the decoding.
 */
export function encodeRow(v: RowValues): RatedRow {
  const line = [
    `["${v.account_id}"`, `"${v.event_id}"`, `"${v.product}"`, `"${v.currency}"`, `"${v.unit}"`,
    v.quantity, v.unit_price, v.per, v.amount, v.from_grants, v.postpaid, v.overdraft, v.balance_after, v.ledger_seq,
    JSON.stringify(v.grants), v.properties, `"${v.event_time}"`, `"${v.rated_at}"`, `"${v.workspace_id}"]`,
  ].join(',');
  return { account_id: v.account_id, event_id: v.event_id, event_time: v.event_time, line };
}
