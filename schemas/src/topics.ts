/** Topic names, prefixed so that test runs and environments never share data. */
export function topicNames(prefix = '') {
  return {
    events: `${prefix}usage.events`,
    rated: `${prefix}usage.rated`,
    dlq: `${prefix}usage.dlq`,
    /** Every money movement other than usage (LedgerEntry), keyed by account. */
    entries: `${prefix}ledger.entries`,
  } as const;
}
export type TopicNames = ReturnType<typeof topicNames>;
