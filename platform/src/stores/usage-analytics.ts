import { z } from 'zod';
import { Currency } from '@meterstream/schemas';
import { ChDate, ChInt64, chQuery } from '../clickhouse-query.js';

/**
 * An account's usage per UTC day and product between two days (both included), in micro-units.
 * usage_daily is computed from rated_events FINAL when read: each event counts once, however
 * often the sinks wrote it; the filter on account_id and day narrows the scan (see the migration).
 * The sums go out as text: an Int64 or a Decimal in JSON is a number some readers round.
 */
export const dailyUsage = chQuery({
  name: 'dailyUsage',
  query: (db) => `SELECT toString(day) AS date, product, toString(sum(events)) AS events,
                         toString(sum(quantity)) AS quantity, toString(sum(amount)) AS amount
                    FROM ${db}.usage_daily
                   WHERE account_id = {account:String} AND currency = {currency:String}
                     AND day BETWEEN {from:Date} AND {to:Date}
                   GROUP BY day, product`,
  params: z.object({ account: z.string(), currency: Currency, from: ChDate, to: ChDate }),
  schema: z.object({ date: ChDate, product: z.string(), events: ChInt64, quantity: ChInt64, amount: ChInt64 }),
});

export type DailyUsage = Awaited<ReturnType<typeof dailyUsage>>[number];

/**
 * An account's usage per workspace between two days (both included), in micro-units; workspace ''
 * holds the events that named none. Exact as dailyUsage is (usage_daily_by_workspace reads
 * rated_events FINAL), so the workspaces add up to the account's totals.
 */
export const workspaceUsage = chQuery({
  name: 'workspaceUsage',
  query: (db) => `SELECT workspace_id, toString(sum(events)) AS events, toString(sum(amount)) AS amount
                    FROM ${db}.usage_daily_by_workspace
                   WHERE account_id = {account:String} AND currency = {currency:String}
                     AND day BETWEEN {from:Date} AND {to:Date}
                   GROUP BY workspace_id`,
  params: z.object({ account: z.string(), currency: Currency, from: ChDate, to: ChDate }),
  schema: z.object({ workspace_id: z.string(), events: ChInt64, amount: ChInt64 }),
});

export type WorkspaceUsage = Awaited<ReturnType<typeof workspaceUsage>>[number];
