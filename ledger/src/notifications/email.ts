import { createTransport } from 'nodemailer';
import type { ClaimedDelivery } from '@meterstream/platform/stores/notifications';
import type { NotificationPayload } from '@meterstream/schemas';

export interface Mailer {
  send(d: ClaimedDelivery): Promise<void>;
  close(): void;
}

/** The email of a notification: a subject with the figure that matters, the details in the text. */
export function renderEmail(p: NotificationPayload): { subject: string; text: string } {
  switch (p.type) {
    case 'credits.granted': {
      const g = p.data;
      return {
        subject: `Credits added: ${g.amount} ${g.currency}`,
        text: [
          `${g.amount} ${g.currency} of ${g.kind} credits were added to account ${g.account_id}.`,
          g.expires_at ? `They expire at ${g.expires_at}.` : 'They do not expire.',
          `Balance after the grant: ${g.balance_after} ${g.currency}.`,
        ].join('\n'),
      };
    }
    case 'balance.low': {
      const d = p.data;
      return {
        subject: `Low balance: ${d.balance} ${d.currency}`,
        text: `The balance of account ${d.account_id} fell to ${d.balance} ${d.currency}, below your alert threshold of ${d.threshold} ${d.currency}.`,
      };
    }
    case 'balance.zero': {
      const d = p.data;
      return {
        subject: 'Credits used up: billable features are paused',
        text: `The balance of account ${d.account_id} reached ${d.balance} ${d.currency}. Billable features are paused until credits are added; your data stays readable.`,
      };
    }
    case 'spend.alert_threshold': {
      const d = p.data;
      return {
        subject: `Spending alert: ${d.spent} ${d.currency} this month`,
        text: `Account ${d.account_id} has spent ${d.spent} ${d.currency} in ${d.month}, reaching its alert threshold of ${d.threshold} ${d.currency}.`,
      };
    }
    case 'spend.limit_reached': {
      const d = p.data;
      return {
        subject: `Monthly limit reached: ${d.threshold} ${d.currency}`,
        text: `Account ${d.account_id} has spent ${d.spent} ${d.currency} in ${d.month} and reached its allowed limit of ${d.threshold} ${d.currency}. Credit-consuming features are blocked until the limit is raised or the month resets.`,
      };
    }
    case 'gift.expiring': {
      const d = p.data;
      return {
        subject: `Gift credits expire soon: ${d.remaining} ${d.currency}`,
        text: `${d.remaining} ${d.currency} of gift credits on account ${d.account_id} expire at ${d.expires_at}.`,
      };
    }
    case 'addon.deducted': {
      const d = p.data;
      return {
        subject: `Add-on ${d.addon}: ${d.amount} ${d.currency} deducted`,
        text: `${d.amount} ${d.currency} were deducted from account ${d.account_id} for the add-on ${d.addon} (${d.month}). Balance after: ${d.balance_after} ${d.currency}.`,
      };
    }
    case 'addon.suspended': {
      const d = p.data;
      return {
        subject: `Add-on ${d.addon} suspended`,
        text: `The add-on ${d.addon} on account ${d.account_id} was suspended for ${d.month}: its ${d.amount} ${d.currency} were not covered by the balance of ${d.balance_after} ${d.currency}.`,
      };
    }
    case 'plan.changed': {
      const d = p.data;
      return {
        subject: `Plan change to ${d.to_plan} scheduled`,
        text: `Account ${d.account_id} moves from plan ${d.from_plan} to ${d.to_plan} at ${d.effective_at}.`,
      };
    }
    case 'invoice.paid': {
      const d = p.data;
      return {
        subject: `Payment received: invoice ${d.number ?? d.invoice_id} (${d.amount_due} ${d.currency})`,
        text: `Thank you: ${d.amount_due} ${d.currency} for the usage of ${d.month} on account ${d.account_id} were charged to your card (invoice ${d.number ?? d.invoice_id}).`,
      };
    }
    case 'invoice.payment_failed': {
      const d = p.data;
      return {
        subject: `Payment failed: invoice ${d.number ?? d.invoice_id} (${d.amount_due} ${d.currency})`,
        text: [
          `We could not charge ${d.amount_due} ${d.currency} for the usage of ${d.month} on account ${d.account_id} (invoice ${d.number ?? d.invoice_id}).`,
          `Update your card or pay the invoice before ${d.due_at}: after that, API access is suspended until it is paid.`,
        ].join('\n'),
      };
    }
    case 'account.suspended': {
      const d = p.data;
      return {
        subject: `API access suspended: invoice for ${d.month} unpaid`,
        text: `API access of account ${d.account_id} is suspended: the invoice ${d.invoice_id} of ${d.amount_due} ${d.currency} for ${d.month} is unpaid 7 days after its date. Paying it lifts the suspension at once.`,
      };
    }
    case 'account.reinstated': {
      const d = p.data;
      return {
        subject: 'API access restored',
        text: `The invoice ${d.invoice_id} of ${d.amount_due} ${d.currency} for ${d.month} is paid: API access of account ${d.account_id} is restored.`,
      };
    }
    case 'auto_top_up.failed': {
      const d = p.data;
      return {
        subject: `Automatic top-up of ${d.amount} ${d.currency} failed${d.disabled ? ': automatic top-ups are off' : ''}`,
        text: [
          `We could not charge ${d.amount} ${d.currency} to the saved card of account ${d.account_id} (${d.code}: ${d.message}).`,
          d.disabled
            ? `After ${d.consecutive_failures} failures in a row, automatic top-ups are turned off: update your card and turn them on again.`
            : 'Update your card, or add credits yourself, so that billable features keep running.',
        ].join('\n'),
      };
    }
    case 'auto_top_up.action_required': {
      const d = p.data;
      return {
        subject: `Automatic top-up of ${d.amount} ${d.currency}: your bank asks you to confirm it`,
        text: `Your bank needs you to authenticate the automatic top-up of ${d.amount} ${d.currency} on account ${d.account_id}. Confirm it here: ${d.action_url}\nIt is not retried until then.`,
      };
    }
    case 'payment.refunded': {
      const d = p.data;
      return {
        subject: `Refund of ${d.amount_refunded} ${d.currency}`,
        text: [
          `${d.amount_refunded} ${d.currency} of payment ${d.payment_id} were refunded to your card; ${d.credits_reversed} ${d.currency} of its credits were taken back.`,
          d.credits_kept === '0.000000' ? '' : `${d.credits_kept} ${d.currency} of its credits had been spent and were not refunded.`,
          `Balance after the refund: ${d.balance_after} ${d.currency}.`,
        ].filter(Boolean).join('\n'),
      };
    }
  }
}

/** Sends notifications by SMTP (nodemailer) to the delivery's address, from `from`. */
export function smtpMailer(smtpUrl: string, from: string): Mailer {
  const transport = createTransport(smtpUrl);
  return {
    async send(d) {
      await transport.sendMail({ from, to: d.target, ...renderEmail(d.payload), headers: { 'X-Notification-Id': d.notificationId } });
    },
    close: () => transport.close(),
  };
}
