import { z } from 'zod';
import { Currency, Id, MoneyString } from './common.js';

export const SUMMARY_DAYS = 30;
export const SERIES_DAYS = 7;

const IsoDate = z.string().describe('UTC date, YYYY-MM-DD');

export const UsageSummaryRequest = z.object({ account_id: Id });

export const UsageSummary = z.object({
  account_id: z.string(),
  currency: Currency,
  period: z.object({ from: IsoDate, to: IsoDate }).describe(`the last ${SUMMARY_DAYS} UTC days, today included`),
  totals: z.object({ events: z.number().int(), amount: MoneyString }),
  products: z
    .array(z.object({ product: z.string(), events: z.number().int(), quantity: MoneyString, amount: MoneyString }))
    .describe('period totals per product, highest amount first'),
  daily: z
    .array(z.object({ date: IsoDate, events: z.number().int(), amount: MoneyString }))
    .describe(`the last ${SERIES_DAYS} UTC days, oldest first, days without usage included as zero`),
  workspaces: z
    .array(z.object({
      workspace_id: z.string().nullable().describe('null: the events that named no workspace'),
      name: z.string().nullable().describe('null for no workspace, or an id that is not one of the account\'s workspaces'),
      deleted: z.boolean().describe('the workspace was deleted: its usage stays'),
      events: z.number().int(),
      amount: MoneyString,
    }))
    .describe('period totals per workspace (events name theirs in workspace_id), highest amount first; they add up to totals'),
});
export type UsageSummary = z.infer<typeof UsageSummary>;
