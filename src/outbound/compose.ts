import type Database from 'better-sqlite3';
import type { channels, contacts } from '../db/schema.js';
import { AppError } from '../errors.js';
import { newId } from '../lib/ids.js';
import type { OutboundContent, ProviderName } from '../providers/types.js';
import type { DeliveryJobRequest } from '../queue/outbox.js';

/**
 * What replies and write-first share: the rules checked before anything is stored (template
 * support, the WhatsApp Business 24-hour window) and the one write that stores an outbound
 * message, its delivery and the outbox row of its first attempt, inside the caller's transaction.
 */

/** Who is asking: the admin, or an agent by id (the HTTP layer maps its auth to this). */
export type Actor = { role: 'admin' } | { role: 'agent'; agentId: string };

/** Meta's customer-service window: free text only within 24 h of the contact's last message. */
export const WABA_WINDOW_MS = 24 * 60 * 60 * 1000;

/** Stored in `messages.details` of an outbound message: everything a send attempt needs. */
export interface OutboundDetails {
  /** The recipient as the provider wants it (phone digits, chat id, contact id). */
  to: string;
  template?: Extract<OutboundContent, { template: unknown }>['template'];
  /** Our id of the message this one answers, and its provider id (quoted where supported). */
  replyToMessageId?: string;
  replyToProviderMessageId?: string;
  /** Write-first through another channel: the channel the agent wrote from. */
  writeFirstFromChannelId?: string;
}

export type ChannelRow = typeof channels.$inferSelect;
export type ContactRow = typeof contacts.$inferSelect;

/** Where a message to this contact goes on this provider. */
export function recipientOf(provider: ProviderName, contact: Pick<ContactRow, 'phone' | 'providerContactId'>): string {
  // WABA contacts may be keyed by a business-scoped user id; sending needs the phone when we know it.
  if (provider === 'whatsapp_business') return contact.phone ?? contact.providerContactId;
  return contact.providerContactId;
}

/**
 * Refuses, before anything is stored, what the provider would refuse: templates outside WhatsApp
 * Business, and free text to a WhatsApp Business contact outside the 24-hour window.
 */
export function assertSendable(
  provider: ProviderName,
  content: OutboundContent,
  lastInboundAt: number | null,
  now: number,
): void {
  if ('template' in content) {
    if (provider !== 'whatsapp_business') {
      throw AppError.validation('template', `a ${provider} channel cannot send message templates; send text`);
    }
    return;
  }
  if (provider === 'whatsapp_business' && (lastInboundAt === null || now - lastInboundAt > WABA_WINDOW_MS)) {
    const why =
      lastInboundAt === null
        ? 'the contact has never written to this number'
        : `the contact last wrote ${new Date(lastInboundAt).toISOString()}, more than 24 hours ago`;
    throw new AppError(
      'template_required',
      `WhatsApp Business allows free text only within 24 hours of the contact's last message (${why}); send an approved template instead of text`,
      [{ field: 'text', message: 'not allowed outside the 24-hour window; send a template' }],
    );
  }
}

export interface NewOutbound {
  channelId: string;
  conversationId: string;
  agentId: string | null;
  content: OutboundContent;
  details: OutboundDetails;
}

/**
 * Stores message + delivery + the first attempt's outbox row, inside the caller's transaction
 * (drizzle or group commit: one connection, so prepared statements join it). Hot path: prepared once.
 *
 * Messages to one recipient go out in the order they were written: concurrent sends, a retry or a
 * rate-limit wait would otherwise let a later one overtake an earlier one. So while the channel
 * has a delivery to the same recipient that is not sent or dead yet, the new one is stored held
 * behind the newest of them, with no job; when that one ends (sent or dead) it releases this one
 * (store.ts), in the same transaction. A chain per recipient, each link one delivery in flight.
 */
export function createOutboundWriter(sqlite: Database.Database) {
  const s = {
    message: sqlite.prepare(
      `INSERT INTO messages (id, channel_id, conversation_id, direction, kind, text, details, status, agent_id, created_at, updated_at)
       VALUES (?, ?, ?, 'out', ?, ?, ?, 'pending', ?, ?, ?)`,
    ),
    delivery: sqlite.prepare(
      `INSERT INTO deliveries (id, message_id, channel_id, status, attempts, next_attempt_at, enqueued_at, recipient, held_behind, created_at, updated_at)
       VALUES (?, ?, ?, 'pending', 0, ?, ?, ?, ?, ?, ?)`,
    ),
    // The newest delivery to the recipient that is not done yet: the one a new one waits for.
    // By rowid within a millisecond: replies group-committed together share `now`, and ids only
    // order by the millisecond (a review saw a third reply wait behind the first, beside the second).
    lastOpen: sqlite
      .prepare(
        `SELECT id FROM deliveries WHERE channel_id = ? AND recipient = ? AND status IN ('pending', 'retrying')
         ORDER BY created_at DESC, rowid DESC LIMIT 1`,
      )
      .pluck(),
    outbox: sqlite.prepare("INSERT INTO outbox (kind, payload, created_at) VALUES ('delivery', ?, ?)"),
  };
  return function storeOutbound(o: NewOutbound, now: number): { messageId: string; deliveryId: string } {
    const messageId = newId('msg');
    const deliveryId = newId('dl');
    const template = 'template' in o.content ? o.content.template : undefined;
    const details: OutboundDetails = template ? { ...o.details, template } : o.details;
    s.message.run(
      messageId,
      o.channelId,
      o.conversationId,
      template ? 'template' : 'text',
      'text' in o.content ? o.content.text : null,
      JSON.stringify(details),
      o.agentId,
      now,
      now,
    );
    const recipient = details.to;
    const ahead = (s.lastOpen.get(o.channelId, recipient) as string | undefined) ?? null;
    s.delivery.run(deliveryId, messageId, o.channelId, now, ahead === null ? now : null, recipient, ahead, now, now);
    if (ahead === null) {
      const job: DeliveryJobRequest = { deliveryId, cycle: 0, attempt: 1, runAt: now };
      s.outbox.run(JSON.stringify(job), now);
    }
    return { messageId, deliveryId };
  };
}
