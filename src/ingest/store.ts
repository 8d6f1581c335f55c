import type Database from 'better-sqlite3';
import { newId } from '../lib/ids.js';
import { describeFailure } from '../outbound/store.js';
import { phoneDigits } from '../providers/helpers.js';
import { createContactMover } from './contact-move.js';
import type { MessageKind, NormalizedContact, NormalizedEvent, OutboundStatus, ProviderName } from '../providers/types.js';

/**
 * The ingest hot path: applies normalized events inside the caller's transaction with prepared
 * statements (no query building per request). Each message: contact upsert, conversation
 * find-or-create, message insert (deduped on channel + provider message id), outbox row.
 */

export interface IngestChannel {
  id: string;
  provider: ProviderName;
  conversationType: string;
  chatbotId: string | null;
}

export interface ApplyOutcome {
  stored: number;
  duplicates: number;
  statuses: number;
  ignored: number;
  /** Conversations created in `queued` (each gets a dispatch outbox row). */
  queued: number;
  /** Outbox rows written (the relay needs waking only when there are some). */
  outbox: number;
}

/** Which outbound statuses may follow which: forward only, never back. */
const forward: Record<string, readonly OutboundStatus[]> = {
  pending: ['sent', 'delivered', 'read', 'failed'],
  sent: ['delivered', 'read', 'failed'],
  delivered: ['read'],
  read: [],
  failed: [],
};

export function canAdvance(from: string, to: OutboundStatus): boolean {
  return forward[from]?.includes(to) ?? false;
}

/**
 * contacts row as the lookups return it. The rowid lets the same transaction write the row back
 * without a second descent through the text primary key's index (rowids only change on VACUUM,
 * which never runs inside a transaction).
 */
type ContactRow = [rowid: number, id: string, providerContactId: string, name: string | null, phone: string | null, username: string | null, reachable: number, reachableAt: number | null];
/** The SELECT every ContactRow comes from (by provider id, by phone, by id after a move). */
const CONTACT_ROW = 'SELECT rowid, id, provider_contact_id, name, phone, username, reachable, reachable_at FROM contacts';
/** A contact's latest conversation: id, state, agent_id. */
type ConversationRow = [id: string, state: string, agentId: string | null];

/**
 * When the contact wrote a message: the provider's time, never later than now. The contact's last
 * inbound time (WhatsApp's 24-hour window for free text) counts from it, not from when the webhook
 * arrived: Meta retries a delivery for up to 7 days, and a window counted from a late arrival
 * would let free text go out that Meta then refuses (131047).
 *
 * Capped at now because the window is checked against this gateway's clock. Block and unblock
 * ordering (refreshContact, `reachability`) compares the provider's times as sent (`ev.sentAt ||
 * now`), uncapped: there both sides come from the provider's clock.
 */
function wroteAt(ev: Extract<NormalizedEvent, { type: 'message' }>, now: number): number {
  return ev.sentAt > 0 && ev.sentAt < now ? ev.sentAt : now;
}

/**
 * The provider's time of a message, to order it against blocks and unblocks; null for a Telegram
 * button press: it carries no date of its own (normalize dates it by its arrival), so a press made
 * before a block but delivered after it would otherwise unblock the contact. An unblock comes as
 * its own update (`my_chat_member`) anyway.
 */
function unblockTime(ev: Extract<NormalizedEvent, { type: 'message' }>, now: number): number | null {
  return ev.kind === 'callback' ? null : ev.sentAt || now;
}

/**
 * Which kinds of inbound message open a new conversation when the contact has none open: all but
 * an edit of an earlier message and a reaction to one (a thumbs-up after the close, a live
 * location moving on), and a provider's system notice (a changed number), which go with the
 * conversation they belong to.
 */
const OPENS_CONVERSATION: Record<MessageKind, boolean> = {
  text: true, image: true, video: true, audio: true, voice: true, document: true, sticker: true, location: true, contacts: true,
  interactive: true, button: true, callback: true, order: true, unsupported: true, template: true,
  edit: false, reaction: false, system: false,
};

export function createIngestStore(sqlite: Database.Database) {
  const mover = createContactMover(sqlite);
  const s = {
    messageExists: sqlite.prepare('SELECT 1 FROM messages WHERE channel_id = ? AND provider_message_id = ?').pluck(),
    // Rows as arrays (see ContactRow): better-sqlite3 builds an array far cheaper than an object.
    contactByProviderId: sqlite
      .prepare(`${CONTACT_ROW} WHERE channel_id = ? AND provider_contact_id = ?`)
      .raw(),
    contactByPhone: sqlite
      .prepare(`${CONTACT_ROW} WHERE channel_id = ? AND phone = ? LIMIT 1`)
      .raw(),
    insertContact: sqlite.prepare(
      `INSERT INTO contacts (id, channel_id, provider_contact_id, name, phone, username, reachable, last_inbound_at, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, ?)`,
    ),
    updateContact: sqlite.prepare(
      `UPDATE contacts SET provider_contact_id = ?, name = ?, phone = ?, username = ?,
         last_inbound_at = CASE WHEN ? IS NULL THEN last_inbound_at ELSE max(coalesce(last_inbound_at, 0), ?) END,
         updated_at = ? WHERE rowid = ?`,
    ),
    // Only the inbound time moves (the usual case): leaves the contact's indexed columns, and so
    // their index pages, untouched.
    touchContact: sqlite.prepare(
      `UPDATE contacts SET last_inbound_at = CASE WHEN ? IS NULL THEN last_inbound_at ELSE max(coalesce(last_inbound_at, 0), ?) END,
         updated_at = ? WHERE rowid = ?`,
    ),
    setReachable: sqlite.prepare('UPDATE contacts SET reachable = ?, reachable_at = ?, updated_at = ? WHERE id = ?'),
    // The provider time of the contact's newest inbound message (for a block that may be stale).
    newestInboundSentAt: sqlite
      .prepare("SELECT max(m.sent_at) FROM conversations c JOIN messages m ON m.conversation_id = c.id WHERE c.contact_id = ? AND m.direction = 'in'")
      .pluck(),
    latestConversation: sqlite
      .prepare('SELECT id, state, agent_id FROM conversations WHERE contact_id = ? ORDER BY created_at DESC, rowid DESC LIMIT 1')
      .raw(),
    insertConversation: sqlite.prepare(
      `INSERT INTO conversations (id, channel_id, contact_id, type, state, queue_rank, enqueued_at, offer_seq, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, 1, ?, 0, ?, ?)`,
    ),
    changeNumber: sqlite.prepare('UPDATE contacts SET provider_contact_id = ?, phone = ?, updated_at = ? WHERE rowid = ?'),
    channelLive: sqlite.prepare('SELECT 1 FROM channels WHERE id = ? AND deleted_at IS NULL').pluck(),
    insertHistory: sqlite.prepare(
      'INSERT INTO conversation_history (conversation_id, from_state, to_state, agent_id, reason, at) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    // A duplicate (same channel and provider message id) is skipped by the unique index itself, so
    // the usual case needs no separate lookup first; `changes` says which it was.
    insertMessage: sqlite.prepare(
      `INSERT INTO messages (id, channel_id, conversation_id, direction, kind, text, details, provider_message_id, status, sent_at, created_at, updated_at)
       VALUES (?, ?, ?, 'in', ?, ?, ?, ?, 'received', ?, ?, ?)
       ON CONFLICT (channel_id, provider_message_id) DO NOTHING`,
    ),
    outboundByProviderId: sqlite.prepare(
      "SELECT id, status FROM messages WHERE channel_id = ? AND provider_message_id = ? AND direction = 'out'",
    ),
    updateMessageStatus: sqlite.prepare('UPDATE messages SET status = ?, error_code = coalesce(?, error_code), updated_at = ? WHERE id = ?'),
    // The provider took the message, then reported that it failed: the delivery did not deliver.
    deliveryFailedLater: sqlite.prepare(
      "UPDATE deliveries SET status = 'dead', last_error_code = @code, last_error = @error, updated_at = @now WHERE message_id = @messageId AND status = 'sent' RETURNING id, replays, attempts",
    ),
    // In the attempt log too, with the provider's id of the send it concerns: a replay clears that
    // id from the message (ops.ts), and last_error is the next attempt's to overwrite.
    logLateFailure: sqlite.prepare(
      `INSERT INTO delivery_attempts (delivery_id, cycle, attempt, at, outcome, http_status, provider_code, error, duration_ms)
       VALUES (@id, @replays, @attempts, @now, 'failed', NULL, @code, @error, 0)`,
    ),
    insertOutbox: sqlite.prepare('INSERT INTO outbox (kind, payload, created_at) VALUES (?, ?, ?)'),
    contactById: sqlite
      .prepare(`${CONTACT_ROW} WHERE id = ?`)
      .raw(),
    insertInboundEvent: sqlite.prepare(
      'INSERT OR IGNORE INTO inbound_events (channel_id, dedupe_key, outcome, reason, received_at) VALUES (?, ?, ?, ?, ?)',
    ),
  };

  function findContact(channel: IngestChannel, c: NormalizedContact): ContactRow | undefined {
    const row = s.contactByProviderId.get(channel.id, c.providerContactId) as ContactRow | undefined;
    // WhatsApp Business: a contact first seen by phone and now by a business-scoped id (or the
    // reverse) stays one contact. Only there: elsewhere the provider's id is the contact (an `api`
    // channel's CRM may well give two people one phone number), and WAHA's id is the phone.
    if (!row && c.phone && channel.provider === 'whatsapp_business') return s.contactByPhone.get(channel.id, c.phone) as ContactRow | undefined;
    return row;
  }

  /**
   * findContact, then, for a Telegram sender it finds nothing for, the contact its id moved away
   * from (see contact-move.ts), with `c` as it applies to that row (its current id kept). Only
   * Telegram contacts move, and only a new sender gets that far: not on every message.
   */
  function resolveContact(channel: IngestChannel, c: NormalizedContact): [ContactRow | undefined, NormalizedContact] {
    const found = findContact(channel, c);
    if (found || channel.provider !== 'telegram') return [found, c];
    const id = mover.aliasOf(channel.id, c.providerContactId);
    const row = id === undefined ? undefined : (s.contactById.get(id) as ContactRow | undefined);
    return row ? [row, { ...c, providerContactId: row[2] }] : [undefined, c];
  }

  /**
   * An ignored event, recorded once per `key` when it has one; counted in `out` as ignored or, the
   * second time, a duplicate. True when it was recorded now.
   */
  function recordIgnored(channelId: string, key: string | null, reason: string, now: number, out?: ApplyOutcome): boolean {
    const recorded = s.insertInboundEvent.run(channelId, key === null ? null : `ignored:${key}`, 'ignored', reason.slice(0, 500), now).changes === 1;
    if (out && recorded) out.ignored++;
    else if (out) out.duplicates++;
    return recorded;
  }

  /**
   * Keeps a found contact's name, phone, username and provider id current; with `inboundAt` (they
   * wrote to us) moves its inbound time and makes it reachable again, unless the message (sent at
   * `sentAt`, the provider's time) is older than the block: deliveries come unordered. A null
   * `sentAt` (no provider time to order by, see unblockTime) leaves reachability alone.
   */
  function refreshContact(row: ContactRow, c: NormalizedContact, inboundAt: number | null, sentAt: number | null, now: number): void {
    const [rowid, id, providerContactId, oldName, oldPhone, oldUsername, reachable, reachableAt] = row;
    const name = c.name ?? oldName;
    const phone = c.phone ?? oldPhone;
    const username = c.username ?? oldUsername;
    if (c.providerContactId === providerContactId && name === oldName && phone === oldPhone && username === oldUsername) {
      s.touchContact.run(inboundAt, inboundAt, now, rowid);
    } else {
      s.updateContact.run(c.providerContactId, name, phone, username, inboundAt, inboundAt, now, rowid);
    }
    if (inboundAt !== null && sentAt !== null && reachable !== 1 && (reachableAt === null || sentAt > reachableAt)) s.setReachable.run(1, sentAt, now, id);
  }

  /**
   * `found` is what findContact returned for `c` in this transaction (undefined: a new contact,
   * created reachable). Returns the contact's id.
   */
  function upsertContact(channelId: string, c: NormalizedContact, found: ContactRow | undefined, inboundAt: number | null, sentAt: number | null, now: number): string {
    if (!found) {
      const id = newId('ct');
      s.insertContact.run(id, channelId, c.providerContactId, c.name ?? null, c.phone ?? null, c.username ?? null, inboundAt, now, now);
      return id;
    }
    refreshContact(found, c, inboundAt, sentAt, now);
    return found[1];
  }

  /**
   * A WhatsApp user changed numbers (`user_changed_number`, a system message just stored: a
   * redelivery of it changes nothing): the contact's phone is the new one, and so is its id where
   * the id was the old number (not a business-scoped user id). Unlike a Telegram move nothing of the
   * old number is kept: it may be someone else's next. When a contact with the new number exists
   * already (they wrote from it first), that one keeps the id, and this one's id is retired
   * (`<old>@moved-<ms>`), so a new owner of the old number is a new contact.
   */
  function changeNumber(channel: IngestChannel, row: ContactRow, c: NormalizedContact, ev: Extract<NormalizedEvent, { type: 'message' }>, now: number): void {
    const to = phoneDigits(ev.details?.waId as string | undefined);
    if (channel.provider !== 'whatsapp_business' || ev.details?.systemType !== 'user_changed_number' || to === undefined) return;
    const [rowid, , providerContactId, , phone] = row;
    const idWasNumber = providerContactId === phone || providerContactId === c.phone;
    let keyedBy = providerContactId;
    if (idWasNumber) keyedBy = s.contactByProviderId.get(channel.id, to) ? `${providerContactId}@moved-${now}` : to;
    s.changeNumber.run(keyedBy, to, now, rowid);
  }

  function insertMessage(channelId: string, conversationId: string, ev: Extract<NormalizedEvent, { type: 'message' }>, now: number): boolean {
    const details = ev.details ? JSON.stringify(ev.details) : null;
    return s.insertMessage.run(newId('msg'), channelId, conversationId, ev.kind, ev.text, details, ev.providerMessageId, ev.sentAt || null, now, now).changes === 1;
  }

  function addOutbox(out: ApplyOutcome, kind: string, payload: unknown, now: number): void {
    s.insertOutbox.run(kind, JSON.stringify(payload), now);
    out.outbox++;
  }

  return {
    /** Records a whole-delivery dedupe key; false when it was seen before (a duplicate). */
    claimDedupeKey(channelId: string, key: string, now: number): boolean {
      return s.insertInboundEvent.run(channelId, key, 'processed', null, now).changes === 1;
    },

    recordIgnored(channelId: string, reason: string, now: number): void {
      recordIgnored(channelId, null, reason, now);
    },

    /** Applies one event to `channel`; the caller holds the transaction. */
    apply(channel: IngestChannel, ev: NormalizedEvent, now: number, out: ApplyOutcome): void {
      switch (ev.type) {
        case 'message': {
          const [found, contact] = resolveContact(channel, ev.contact);
          const latest = found ? (s.latestConversation.get(found[1]) as ConversationRow | undefined) : undefined;
          if (found && latest && latest[1] !== 'closed') {
            // The usual case: a known contact writing into its open conversation. The insert
            // itself tells a duplicate, and then nothing else is written. The conversation row
            // is not touched: a message is not a change to it (its lastMessageAt is read from the
            // messages index), and rewriting one random conversation page per webhook was about
            // 5% of the ingest bench's throughput.
            const [conversationId, state, agentId] = latest;
            if (!insertMessage(channel.id, conversationId, ev, now)) {
              out.duplicates++;
              return;
            }
            refreshContact(found, contact, wroteAt(ev, now), unblockTime(ev, now), now);
            if (ev.kind === 'system') changeNumber(channel, found, contact, ev, now);
            if (agentId && (state === 'active' || state === 'offered')) {
              addOutbox(out, 'event', { agentId, event: 'message', data: { conversationId } }, now);
            }
            out.stored++;
            return;
          }
          // A new contact or a new conversation: look for a duplicate before creating either.
          if (s.messageExists.get(channel.id, ev.providerMessageId)) {
            out.duplicates++;
            return;
          }
          if (!OPENS_CONVERSATION[ev.kind]) {
            // An edit of, or a reaction to, an earlier message, or a system notice, is nobody
            // starting a conversation: kept with the conversation it belongs to (closed), never a
            // new one in the queue.
            if (!found || !latest) {
              const first = recordIgnored(channel.id, ev.providerMessageId, `${ev.kind} without a conversation`, now, out);
              if (first && found && ev.kind === 'system') changeNumber(channel, found, contact, ev, now);
              return;
            }
            insertMessage(channel.id, latest[0], ev, now);
            refreshContact(found, contact, wroteAt(ev, now), unblockTime(ev, now), now);
            if (ev.kind === 'system') changeNumber(channel, found, contact, ev, now);
            out.stored++;
            return;
          }
          // The channel was deleted after this webhook was read, before its commit: deleting closed
          // its conversations, and a new one would wait in a queue nothing dispatches. Only here,
          // where a conversation would be made (a deletion leaves none open for the path above).
          if (!s.channelLive.get(channel.id)) {
            recordIgnored(channel.id, null, 'channel deleted', now, out);
            return;
          }
          const contactId = upsertContact(channel.id, contact, found, wroteAt(ev, now), unblockTime(ev, now), now);
          const conversationId = newId('cv');
          const state = channel.chatbotId ? 'bot' : 'queued';
          s.insertConversation.run(conversationId, channel.id, contactId, channel.conversationType, state, state === 'queued' ? now : null, now, now);
          s.insertHistory.run(conversationId, null, state, null, 'inbound_message', now);
          if (state === 'queued') {
            addOutbox(out, 'dispatch', { channelId: channel.id }, now);
            out.queued++;
          }
          insertMessage(channel.id, conversationId, ev, now);
          out.stored++;
          return;
        }
        case 'status': {
          const msg = s.outboundByProviderId.get(channel.id, ev.providerMessageId) as { id: string; status: string } | undefined;
          // Unknown ids (another system's sends, or purged rows) are ignored; statuses only move forward.
          if (msg && canAdvance(msg.status, ev.status)) {
            s.updateMessageStatus.run(ev.status, ev.errorCode ?? null, now, msg.id);
            // A `failed` status (a 131047 after the send, say) ends its delivery `dead`, with the
            // provider's code, as the same error at send time does: ops find it and can replay it.
            if (ev.status === 'failed') {
              const code = ev.errorCode ?? 'failed';
              const error = describeFailure(channel.provider, code, ev.errorTitle ?? 'the provider reported the message as failed after accepting it');
              const failed = s.deliveryFailedLater.get({ code, error, now, messageId: msg.id }) as { id: string; replays: number; attempts: number } | undefined;
              if (failed) s.logLateFailure.run({ ...failed, now, code, error: `${error} (reported after the send, for provider message ${ev.providerMessageId})` });
            }
          }
          out.statuses++;
          return;
        }
        case 'reachability': {
          const [found, contact] = resolveContact(channel, ev.contact);
          const contactId = upsertContact(channel.id, contact, found, null, ev.at, now);
          // Deliveries come unordered: a block or unblock older than the last one applied changes
          // nothing, nor does a block older than a message the contact wrote (a tie still blocks:
          // Telegram dates are whole seconds, and a block usually follows the last message).
          const reachableAt = found?.[7] ?? null;
          const stale =
            (reachableAt !== null && ev.at < reachableAt) ||
            (!ev.reachable && ((s.newestInboundSentAt.get(contactId) as number | null) ?? -Infinity) > ev.at);
          if (!stale) s.setReachable.run(ev.reachable ? 1 : 0, ev.at, now, contactId);
          out.statuses++;
          return;
        }
        case 'moved':
          // Telegram tells both chats; the second notice finds the contact moved already.
          mover.move(channel.id, ev.contact.providerContactId, ev.to, now);
          out.statuses++;
          return;
        case 'ignored':
          // With the provider's id, a redelivery is a duplicate: nothing more is recorded.
          recordIgnored(channel.id, ev.dedupeKey ?? null, ev.reason, now, out);
          return;
      }
    },
  };
}

export type IngestStore = ReturnType<typeof createIngestStore>;
