import { createTransport } from 'nodemailer';
import type { ClaimedDelivery } from '@meterstream/platform/stores/notifications';
import type { NotificationPayload } from '@meterstream/schemas';

export interface Mailer {
  send(d: ClaimedDelivery): Promise<void>;
  close(): void;
}

/** The email of a notification: a subject with the figure that matters, the details in the text. */
export function renderEmail(p: NotificationPayload): { subject: string; text: string } {
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
