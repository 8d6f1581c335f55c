import { and, desc, eq, isNull, or } from 'drizzle-orm';
import { agentEvent, changeHold, recordHistory } from '../acd/transitions.js';
import { writeFirstProviders } from '../channels/settings.js';
import { agents, channelAgents, channels, contacts, conversations } from '../db/schema.js';
import { AppError } from '../errors.js';
import { createContactMover } from '../ingest/contact-move.js';
import { createGroupCommitter, type GroupCommitter } from '../ingest/group-commit.js';
import { newId } from '../lib/ids.js';
import { telegramChatId } from '../providers/telegram/normalize.js';
import type { OutboundContent, ProviderName } from '../providers/types.js';
import { addToOutbox } from '../queue/outbox.js';
import type { ServiceContext } from '../services.js';
import {
  assertSendable,
  createOutboundWriter,
  recipientOf,
  type Actor,
  type ChannelRow,
  type OutboundDetails,
} from './compose.js';
import { createDeliveryOps } from './ops.js';
import { createDeliveryStore } from './store.js';

/**
 * Outbound messages (DESIGN.md §3): agent replies and write-first. Each request stores the
 * message, its delivery and the outbox row of the first attempt in one transaction; the outbox
 * relay then queues the job, so nothing is sent that was not committed first and nothing
 * committed is lost. Also exposes the delivery store (worker, sweeper) and the ops API (replay).
 */

export interface ReplyInput {
  conversationId: string;
  content: OutboundContent;
  /** Our id of a message in the same conversation to quote (where the provider supports it). */
  replyToMessageId?: string | undefined;
  actor: Actor;
}

export interface WriteFirstInput {
  /** The channel the agent writes from (its write-first settings decide the sending channel). */
  channelId: string;
  to: string;
  content: OutboundContent;
  /** Contact name to store when the contact is new (or has none). */
  name?: string | undefined;
  /** The writing agent; required for the admin, optional (itself) for an agent. */
  agentId?: string | undefined;
  actor: Actor;
}

/** `to` as the sending provider wants it: phone digits for WhatsApp/WABA, a chat id for Telegram. */
export function normalizeRecipient(provider: ProviderName, to: string): string {
  const raw = to.trim();
  if (provider === 'telegram') {
    // One spelling per chat (Telegram reads 0700 as 700): else a second contact, and a second
    // open conversation, for the same person.
    const chatId = telegramChatId(raw);
    if (chatId === null) throw AppError.validation('to', 'must be a Telegram chat id (an integer)');
    return chatId;
  }
  // Phone numbers as people write them: +49 151-123 45678 → 4915112345678 (E.164 digits, 5–15).
  if (!/^\+?[\d\s().-]+$/.test(raw)) throw AppError.validation('to', 'must be a phone number (digits, optionally with +)');
  // The international prefix 00 is the +; a "(0)" after the country code is a trunk prefix that
  // is not dialled from abroad: 0049 (0)151 … → 49151….
  const international = raw.replace(/\(\s*0\s*\)/g, '').replace(/^00/, '+');
  const digits = international.replace(/\D/g, '');
  if (digits.startsWith('0')) {
    throw AppError.validation('to', 'must be an international number with its country code (like +49 151 …), not a national one starting with 0');
  }
  if (digits.length < 5 || digits.length > 15) throw AppError.validation('to', 'must have 5–15 digits (E.164)');
  return digits;
}

export function createOutboundService(ctx: ServiceContext, opts: { committer?: GroupCommitter } = {}) {
  const { db, clock } = ctx;
  // Replies and attempt results are group-committed: one WAL sync covers every concurrent one.
  const committer = opts.committer ?? createGroupCommitter(db.$client, { walSync: ctx.walSync });
  const store = createDeliveryStore(ctx, committer);
  const ops = createDeliveryOps(ctx);
  const storeOutbound = createOutboundWriter(db.$client);
  const mover = createContactMover(db.$client);
  // The reply path runs for every agent message: prepared once.
  const q = {
    conversation: db.$client.prepare('SELECT id, channel_id, contact_id, state, agent_id FROM conversations WHERE id = ?'),
    channel: db.$client.prepare('SELECT id, provider, deleted_at FROM channels WHERE id = ?'),
    contact: db.$client.prepare('SELECT phone, provider_contact_id, last_inbound_at FROM contacts WHERE id = ?'),
    replyTarget: db.$client.prepare('SELECT provider_message_id FROM messages WHERE id = ? AND conversation_id = ?'),
  };

  function liveChannel(id: string): ChannelRow {
    const row = db
      .select()
      .from(channels)
      .where(and(eq(channels.id, id), isNull(channels.deletedAt)))
      .get();
    if (!row) throw AppError.notFound(`Channel ${id}`);
    return row;
  }

  function replyTarget(conversationId: string, messageId: string): string | undefined {
    const m = q.replyTarget.get(messageId, conversationId) as { provider_message_id: string | null } | undefined;
    if (!m) throw AppError.validation('replyToMessageId', `message ${messageId} is not in this conversation`);
    return m.provider_message_id ?? undefined;
  }

  return {
    ...store,
    ...ops,

    /** An agent's message in its active conversation → 202 {messageId, deliveryId}. */
    async reply(input: ReplyInput): Promise<{ messageId: string; deliveryId: string }> {
      const result = await committer.submit(() => {
        const now = clock.now();
        const conv = q.conversation.get(input.conversationId) as
          | { id: string; channel_id: string; contact_id: string; state: string; agent_id: string | null }
          | undefined;
        if (!conv) throw AppError.notFound(`Conversation ${input.conversationId}`);
        if (input.actor.role === 'agent' && conv.agent_id !== input.actor.agentId) {
          throw new AppError('forbidden', 'Only the agent assigned to this conversation may write in it');
        }
        if (conv.state !== 'active') {
          throw new AppError('conversation_not_active', `Conversation ${conv.id} is ${conv.state}; messages go only to active conversations`);
        }
        const channel = q.channel.get(conv.channel_id) as { id: string; provider: ProviderName; deleted_at: number | null } | undefined;
        if (!channel || channel.deleted_at !== null) {
          throw new AppError('conflict', `Channel ${conv.channel_id} of this conversation was deleted`);
        }
        const contact = q.contact.get(conv.contact_id) as
          | { phone: string | null; provider_contact_id: string; last_inbound_at: number | null }
          | undefined;
        if (!contact) throw AppError.notFound(`Contact ${conv.contact_id}`);
        assertSendable(channel.provider, input.content, contact.last_inbound_at, now);
        const details: OutboundDetails = {
          to: recipientOf(channel.provider, { phone: contact.phone, providerContactId: contact.provider_contact_id }),
        };
        if (input.replyToMessageId) {
          details.replyToMessageId = input.replyToMessageId;
          const target = replyTarget(conv.id, input.replyToMessageId);
          if (target) details.replyToProviderMessageId = target;
        }
        return storeOutbound(
          { channelId: channel.id, conversationId: conv.id, agentId: conv.agent_id, content: input.content, details },
          now,
        );
      });
      ctx.notifyOutbox();
      return result;
    },

    /**
     * An agent writes first to a client: through the channel's `writeFirst.channelId` when set
     * (the contact and conversation then live in that sending channel, so the client's answers
     * join the conversation). Creates or reuses the contact; the conversation is `active` with
     * the agent and counts toward its load. One IMMEDIATE transaction (load accounting).
     */
    writeFirst(input: WriteFirstInput): { conversationId: string; messageId: string; deliveryId: string; channelId: string } {
      const from = liveChannel(input.channelId);
      const agentId = input.actor.role === 'agent' ? input.actor.agentId : input.agentId;
      if (input.actor.role === 'agent' && input.agentId !== undefined && input.agentId !== input.actor.agentId) {
        throw new AppError('forbidden', 'Agents may only write first as themselves');
      }
      if (!agentId) throw AppError.validation('agentId', 'is required when the admin writes first (the agent who owns the conversation)');
      if (!from.writeFirstEnabled) {
        throw new AppError('write_first_disabled', `Channel ${from.id} does not allow writing first (writeFirst.enabled is false)`);
      }
      const member = db
        .select({ agentId: channelAgents.agentId })
        .from(channelAgents)
        .where(and(eq(channelAgents.channelId, from.id), eq(channelAgents.agentId, agentId)))
        .get();
      if (!member) {
        if (!db.select({ id: agents.id }).from(agents).where(eq(agents.id, agentId)).get()) {
          throw AppError.validation('agentId', `agent ${agentId} does not exist`);
        }
        throw new AppError('forbidden', `Agent ${agentId} is not an agent of channel ${from.id}`);
      }
      const sender = from.writeFirstChannelId ? liveChannel(from.writeFirstChannelId) : from;
      if (!writeFirstProviders.includes(sender.provider)) {
        throw new AppError('write_first_disabled', `Channel ${sender.id} is a ${sender.provider} channel and cannot write first`);
      }
      const to = normalizeRecipient(sender.provider, input.to);
      const isPhone = sender.provider !== 'telegram';

      const result = db.transaction(
        (tx) => {
          const now = clock.now();
          let contact = tx
            .select()
            .from(contacts)
            .where(
              and(
                eq(contacts.channelId, sender.id),
                isPhone ? or(eq(contacts.providerContactId, to), eq(contacts.phone, to)) : eq(contacts.providerContactId, to),
              ),
            )
            .orderBy(desc(eq(contacts.providerContactId, to)))
            .get();
          // An id the contact had before it moved (a group that became a supergroup): that contact.
          const movedTo = contact ? undefined : mover.aliasOf(sender.id, to);
          if (movedTo !== undefined) contact = tx.select().from(contacts).where(eq(contacts.id, movedTo)).get();
          assertSendable(sender.provider, input.content, contact?.lastInboundAt ?? null, now);
          const name = input.name?.trim() || null;
          if (!contact) {
            contact = {
              id: newId('ct'),
              channelId: sender.id,
              providerContactId: to,
              name,
              phone: isPhone ? to : null,
              username: null,
              reachable: true,
              reachableAt: null,
              lastInboundAt: null,
              createdAt: now,
              updatedAt: now,
            };
            tx.insert(contacts).values(contact).run();
          } else if (name && !contact.name) {
            tx.update(contacts).set({ name, updatedAt: now }).where(eq(contacts.id, contact.id)).run();
          }

          const open = tx
            .select()
            .from(conversations)
            .where(eq(conversations.contactId, contact.id))
            .orderBy(desc(conversations.createdAt))
            .get();
          let conversationId: string;
          if (open && open.state !== 'closed') {
            if (open.state !== 'active' || open.agentId !== agentId) {
              throw new AppError(
                'conflict',
                `The contact already has an open conversation ${open.id} (${open.state}${open.agentId ? `, agent ${open.agentId}` : ''}); write there`,
              );
            }
            conversationId = open.id;
          } else {
            conversationId = newId('cv');
            tx.insert(conversations)
              .values({
                id: conversationId,
                channelId: sender.id,
                contactId: contact.id,
                type: sender.conversationType,
                state: 'active',
                agentId,
                utilization: sender.utilization,
                createdAt: now,
                updatedAt: now,
              })
              .run();
            changeHold(tx, { agentId, channelId: sender.id, utilization: sender.utilization }, 1, now);
            // The agent's SSE stream hears of it like of an ACD assignment.
            addToOutbox(tx, now, [agentEvent(agentId, 'assigned', { conversationId, channelId: sender.id, writeFirst: true })]);
            recordHistory(tx, {
              conversationId,
              from: null,
              to: 'active',
              agentId,
              reason: sender.id === from.id ? 'write_first' : `write_first_from:${from.id}`,
              at: now,
            });
          }
          const details: OutboundDetails = { to: recipientOf(sender.provider, contact) };
          if (sender.id !== from.id) details.writeFirstFromChannelId = from.id;
          const ids = storeOutbound({ channelId: sender.id, conversationId, agentId, content: input.content, details }, now);
          return { conversationId, channelId: sender.id, ...ids };
        },
        { behavior: 'immediate' },
      );
      ctx.notifyOutbox();
      return result;
    },

    /** Waits until every group-committed write so far is durable (tests, shutdown). */
    flush: () => committer.flush(),
  };
}

export type OutboundService = ReturnType<typeof createOutboundService>;
