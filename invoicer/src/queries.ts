import { z } from 'zod';
import { ChInt64, chQuery } from '@meterstream/platform/clickhouse-query';

/**
 * The usage an invoice run bills, for many accounts in one read, grouped per account, month of
 * the events, product and unit price: the events of [from, to) rated at or before the run's
 * cut-off, and the late ones (timed before `from`, rated after the account's previous invoice's
 * cut-off, given per account in `since`, epoch ms, 0: no late window) up to the same cut-off.
 * rated_events FINAL: each event once however often the sinks wrote it.
 */
export const invoiceUsage = chQuery({
  name: 'invoiceUsage',
  query: (db) => `SELECT account_id, toString(toYYYYMM(event_time)) AS ym, product, unit,
                         toString(unit_price) AS unit_price, toString(per) AS per,
                         toString(count()) AS events, toString(sum(quantity)) AS quantity, toString(sum(amount)) AS amount,
                         toString(sum(from_grants)) AS from_grants, toString(sum(postpaid)) AS postpaid
                    FROM ${db}.rated_events FINAL
                   WHERE account_id IN {accounts:Array(String)}
                     AND rated_at <= fromUnixTimestamp64Milli({cutoff:Int64}, 'UTC')
                     AND ((event_time >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND event_time < fromUnixTimestamp64Milli({to:Int64}, 'UTC'))
                       OR (event_time < fromUnixTimestamp64Milli({from:Int64}, 'UTC')
                           AND toUnixTimestamp64Milli(rated_at) > arrayElement({since:Array(Int64)}, indexOf({accounts:Array(String)}, account_id))
                           AND arrayElement({since:Array(Int64)}, indexOf({accounts:Array(String)}, account_id)) > 0))
                   GROUP BY account_id, ym, product, unit, unit_price, per
                   ORDER BY account_id, ym, product, unit_price, per`,
  params: z.object({
    accounts: z.array(z.string()), since: z.array(z.number().int()), cutoff: z.number().int(), from: z.number().int(), to: z.number().int(),
  }),
  schema: z.object({
    account_id: z.string(), ym: z.string().regex(/^\d{6}$/), product: z.string(), unit: z.string(), unit_price: ChInt64, per: ChInt64,
    events: ChInt64, quantity: ChInt64, amount: ChInt64, from_grants: ChInt64, postpaid: ChInt64,
  }),
});

export type InvoiceUsageRow = Awaited<ReturnType<typeof invoiceUsage>>[number];

/**
 * Month-to-date usage of many accounts (the 08:00 statement): the events of [from, to) rated by
 * the cut-off, per account, with what free credits covered and what is due (postpaid).
 */
export const monthToDate = chQuery({
  name: 'monthToDate',
  query: (db) => `SELECT account_id, toString(sum(amount)) AS amount, toString(sum(from_grants)) AS from_grants, toString(sum(postpaid)) AS postpaid
                    FROM ${db}.rated_events FINAL
                   WHERE account_id IN {accounts:Array(String)} AND rated_at <= fromUnixTimestamp64Milli({cutoff:Int64}, 'UTC')
                     AND event_time >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND event_time < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
                   GROUP BY account_id`,
  params: z.object({ accounts: z.array(z.string()), cutoff: z.number().int(), from: z.number().int(), to: z.number().int() }),
  schema: z.object({ account_id: z.string(), amount: ChInt64, from_grants: ChInt64, postpaid: ChInt64 }),
});

/** An account's usage of one UTC day per product and unit price (the daily itemized detail, seed 004). */
export const dayDetail = chQuery({
  name: 'dayDetail',
  query: (db) => `SELECT product, unit, toString(unit_price) AS unit_price, toString(per) AS per, toString(count()) AS events,
                         toString(sum(quantity)) AS quantity, toString(sum(amount)) AS amount
                    FROM ${db}.rated_events FINAL
                   WHERE account_id = {account:String} AND toDate(event_time) = {day:Date}
                   GROUP BY product, unit, unit_price, per ORDER BY product, unit_price`,
  params: z.object({ account: z.string(), day: z.string().regex(/^\d{4}-\d{2}-\d{2}$/) }),
  schema: z.object({ product: z.string(), unit: z.string(), unit_price: ChInt64, per: ChInt64, events: ChInt64, quantity: ChInt64, amount: ChInt64 }),
});

/** An account's usage per month of [from, to) at list price (the monthly history, seed 004). */
export const monthlyTotals = chQuery({
  name: 'monthlyTotals',
  query: (db) => `SELECT toString(toYYYYMM(month)) AS ym, toString(sum(amount)) AS amount
                    FROM ${db}.usage_monthly
                   WHERE account_id = {account:String} AND month >= {from:Date} AND month < {to:Date}
                   GROUP BY ym ORDER BY ym`,
  params: z.object({ account: z.string(), from: z.string().regex(/^\d{4}-\d{2}-\d{2}$/), to: z.string().regex(/^\d{4}-\d{2}-\d{2}$/) }),
  schema: z.object({ ym: z.string().regex(/^\d{6}$/), amount: ChInt64 }),
});
