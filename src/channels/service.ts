import { and, asc, eq, isNull, ne, sql, type SQL } from 'drizzle-orm';
import { agentEvent, closeAny, closeHeld, markNotResponding, takeBackOffer, type Tx } from '../acd/transitions.js';
import {
  agents,
  channelAgents,
  channelCompletionCodes,
  channels,
  chatbots,
  completionCodes,
  contacts,
  conversations,
} from '../db/schema.js';
import { AppError } from '../errors.js';
import { bytesToBase64, randomToken } from '../lib/crypto.js';
import { newId } from '../lib/ids.js';
import { isRecord } from '../lib/is-record.js';
import type { MessengerConfig, ProviderName } from '../providers/types.js';
import { addToOutbox } from '../queue/outbox.js';
import type { ServiceContext } from '../services.js';
import {
  mergeSettings,
  validateSettings,
  writeFirstProviders,
  type ChannelSettings,
  type SettingsRefs,
} from './settings.js';

type ChannelRow = typeof channels.$inferSelect;

/** A channel as the rest of the gateway uses it: settings (with secrets) plus identity. */
export interface Channel extends ChannelSettings {
  id: string;
  webhookKey: string;
  /** An `api` channel's callback answered 410 Gone then; null while it is called (see schema). */
  callbackDisabledAt: number | null;
  createdAt: number;
  updatedAt: number;
}

/** What the API returns: every setting, never a secret. */
export interface ChannelView {
  id: string;
  name: string;
  conversationType: ChannelSettings['conversationType'];
  chatbotId: string | null;
  webhookUrl: string;
  messenger: Record<string, unknown> & { provider: ProviderName };
  writeFirst: ChannelSettings['writeFirst'];
  handling: ChannelSettings['handling'];
  agentIds: string[];
  /** When an `api` channel's callback answered 410 Gone; its deliveries fail at once until a PATCH of `messenger`. */
  callbackDisabledAt: number | null;
  createdAt: number;
  updatedAt: number;
}

/** Non-secret messenger fields, per provider. */
export function publicMessenger(m: MessengerConfig): ChannelView['messenger'] {
  switch (m.provider) {
    case 'whatsapp_business':
      return { provider: m.provider, phoneNumberId: m.phoneNumberId };
    case 'telegram':
      return { provider: m.provider };
    case 'whatsapp':
      return { provider: m.provider, baseUrl: m.baseUrl, session: m.session };
    case 'api':
      return { provider: m.provider, callbackUrl: m.callbackUrl };
  }
}

export function generateWebhookSecret(): string {
  return `whsec_${bytesToBase64(crypto.getRandomValues(new Uint8Array(32)))}`;
}

/** Rows per INSERT when a channel's lists are written. */
const INSERT_CHUNK = 1000;

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export function createChannelService(ctx: ServiceContext) {
  const { db, clock, config } = ctx;

  const refs: SettingsRefs = {
    chatbotExists: (id) => db.select({ id: chatbots.id }).from(chatbots).where(eq(chatbots.id, id)).get() !== undefined,
    agentExists: (id) => db.select({ id: agents.id }).from(agents).where(eq(agents.id, id)).get() !== undefined,
    completionCodeExists: (id) =>
      db.select({ id: completionCodes.id }).from(completionCodes).where(eq(completionCodes.id, id)).get() !== undefined,
    channelProvider: (id) =>
      db
        .select({ provider: channels.provider })
        .from(channels)
        .where(and(eq(channels.id, id), isNull(channels.deletedAt)))
        .get()?.provider ?? null,
  };

  function hydrate(row: ChannelRow): Channel {
    const agentIds = db
      .select({ id: channelAgents.agentId })
      .from(channelAgents)
      .where(eq(channelAgents.channelId, row.id))
      .orderBy(asc(channelAgents.agentId))
      .all()
      .map((r) => r.id);
    const completionCodeIds = db
      .select({ id: channelCompletionCodes.completionCodeId })
      .from(channelCompletionCodes)
      .where(eq(channelCompletionCodes.channelId, row.id))
      .orderBy(asc(channelCompletionCodes.completionCodeId))
      .all()
      .map((r) => r.id);
    return {
      id: row.id,
      webhookKey: row.webhookKey,
      name: row.name,
      conversationType: row.conversationType,
      chatbotId: row.chatbotId,
      messenger: row.messenger as unknown as MessengerConfig,
      writeFirst: { enabled: row.writeFirstEnabled, channelId: row.writeFirstChannelId },
      handling: {
        utilization: row.utilization,
        autoAssignLimit: row.autoAssignLimit,
        autoAnswer: row.autoAnswer,
        notificationTimeoutSec: row.notificationTimeoutSec,
        completionCodeIds,
        completionCodeTimeoutSec: row.completionCodeTimeoutSec,
      },
      agentIds,
      callbackDisabledAt: row.callbackDisabledAt,
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
    };
  }

  function view(ch: Channel): ChannelView {
    return {
      id: ch.id,
      name: ch.name,
      conversationType: ch.conversationType,
      chatbotId: ch.chatbotId,
      webhookUrl: `${config.publicBaseUrl}/webhooks/${ch.webhookKey}`,
      messenger: publicMessenger(ch.messenger),
      writeFirst: ch.writeFirst,
      handling: ch.handling,
      agentIds: ch.agentIds,
      callbackDisabledAt: ch.callbackDisabledAt,
      createdAt: ch.createdAt,
      updatedAt: ch.updatedAt,
    };
  }

  function liveRow(id: string): ChannelRow {
    const row = db
      .select()
      .from(channels)
      .where(and(eq(channels.id, id), isNull(channels.deletedAt)))
      .get();
    if (!row) throw AppError.notFound(`Channel ${id}`);
    return row;
  }

  /**
   * Another live channel that writes first through `id` (validateSettings stores a channel naming
   * itself as null, so this is never `id`; excluded all the same), or undefined.
   */
  function writesFirstThrough(id: string): { id: string } | undefined {
    return db
      .select({ id: channels.id })
      .from(channels)
      .where(and(eq(channels.writeFirstChannelId, id), isNull(channels.deletedAt), ne(channels.id, id)))
      .get();
  }

  function hasContacts(channelId: string): boolean {
    return db.select({ id: contacts.id }).from(contacts).where(eq(contacts.channelId, channelId)).limit(1).get() !== undefined;
  }

  function assertPhoneNumberFree(s: ChannelSettings, selfId: string | null): void {
    if (s.messenger.provider !== 'whatsapp_business') return;
    const other = db
      .select({ id: channels.id })
      .from(channels)
      .where(
        and(
          eq(channels.phoneNumberId, s.messenger.phoneNumberId),
          isNull(channels.deletedAt),
          selfId ? ne(channels.id, selfId) : undefined,
        ),
      )
      .get();
    if (other) {
      throw new AppError('conflict', `Phone number ${s.messenger.phoneNumberId} already belongs to channel ${other.id}`, [
        { field: 'messenger.phoneNumberId', message: `already used by channel ${other.id}` },
      ]);
    }
  }

  /** Fills secrets the gateway generates; returns the ones to show once. */
  function fillGeneratedSecrets(raw: Record<string, unknown>): Record<string, string> {
    const m = raw.messenger;
    if (typeof m !== 'object' || m === null) return {};
    const messenger = m as Record<string, unknown>;
    if (messenger.provider === 'telegram' && (messenger.secretToken === undefined || messenger.secretToken === null)) {
      messenger.secretToken = randomToken(32);
      return { secretToken: messenger.secretToken as string };
    }
    if (messenger.provider === 'api') {
      if ('secret' in messenger && messenger.secret !== undefined) {
        throw AppError.validation('messenger.secret', 'is generated by the gateway; do not send it');
      }
      messenger.secret = generateWebhookSecret();
      return { secret: messenger.secret as string };
    }
    return {};
  }

  function writeSettings(tx: Tx, id: string, s: ChannelSettings, now: number): void {
    // In chunks: one INSERT of every row would pass SQLite's limit of bound variables (32,766)
    // from about 6,500 agents on (five per row, the trigger-kept copies included).
    tx.delete(channelAgents).where(eq(channelAgents.channelId, id)).run();
    for (const part of chunks(s.agentIds, INSERT_CHUNK)) {
      tx.insert(channelAgents).values(part.map((agentId) => ({ channelId: id, agentId }))).run();
    }
    tx.delete(channelCompletionCodes).where(eq(channelCompletionCodes.channelId, id)).run();
    for (const part of chunks(s.handling.completionCodeIds, INSERT_CHUNK)) {
      tx.insert(channelCompletionCodes).values(part.map((completionCodeId) => ({ channelId: id, completionCodeId }))).run();
    }
    addToOutbox(tx, now, [{ kind: 'dispatch', payload: { channelId: id } }]);
  }

  function handOverBotConversations(tx: Tx, channelId: string, now: number): void {
    // History first, by one INSERT … SELECT: a channel may hold thousands of them.
    tx.run(sql`INSERT INTO conversation_history (conversation_id, from_state, to_state, agent_id, reason, at)
      SELECT id, 'bot', 'queued', NULL, 'chatbot_removed', ${now} FROM conversations WHERE channel_id = ${channelId} AND state = 'bot'`);
    tx.update(conversations)
      .set({ state: 'queued', queueRank: 1, enqueuedAt: sql`${conversations.createdAt}`, updatedAt: now })
      .where(and(eq(conversations.channelId, channelId), eq(conversations.state, 'bot')))
      .run();
  }

  /** The channel's conversations whose state matches `state` (a condition on conversations.state). */
  function conversationsOf(tx: Tx, channelId: string, state: SQL) {
    return tx.select().from(conversations).where(and(eq(conversations.channelId, channelId), state)).all();
  }

  /**
   * An agent taken off the channel's list is no longer eligible for its conversations (§2.1): a
   * pending offer to them goes back to the front of the queue, to be offered to someone who is.
   * What they already hold (active, wrap-up) stays theirs to finish.
   */
  function rescindOffersOfRemovedAgents(tx: Tx, channelId: string, agentIds: readonly string[], now: number): void {
    for (const conv of conversationsOf(tx, channelId, eq(conversations.state, 'offered'))) {
      if (conv.agentId === null || agentIds.includes(conv.agentId)) continue;
      // Timed out before the change, its timer late: the agent goes not_responding as at the timer (§2.4).
      if (takeBackOffer(tx, conv, 'agent_removed_from_channel', now) === 'timed-out') markNotResponding(tx, conv.agentId, now);
    }
  }

  function endWrapups(tx: Tx, channelId: string, now: number): void {
    for (const conv of conversationsOf(tx, channelId, eq(conversations.state, 'wrapup'))) {
      if (!closeHeld(tx, conv, 'wrapup', 'completion_codes_removed', null, now)) continue;
      addToOutbox(tx, now, [agentEvent(conv.agentId!, 'wrapup-timeout', { conversationId: conv.id, reason: 'completion_codes_removed' })]);
    }
  }

  function columns(s: ChannelSettings) {
    return {
      name: s.name,
      conversationType: s.conversationType,
      chatbotId: s.chatbotId,
      provider: s.messenger.provider,
      messenger: s.messenger as unknown as Record<string, unknown>,
      phoneNumberId: s.messenger.provider === 'whatsapp_business' ? s.messenger.phoneNumberId : null,
      writeFirstEnabled: s.writeFirst.enabled,
      writeFirstChannelId: s.writeFirst.channelId,
      utilization: s.handling.utilization,
      autoAssignLimit: s.handling.autoAssignLimit,
      autoAnswer: s.handling.autoAnswer,
      notificationTimeoutSec: s.handling.notificationTimeoutSec,
      completionCodeTimeoutSec: s.handling.completionCodeTimeoutSec,
    };
  }

  return {
    /** Creates a channel; generated secrets (api `secret`, Telegram `secretToken`) are returned this once. */
    create(raw: Record<string, unknown>): ChannelView {
      const input = structuredClone(raw);
      const generated = fillGeneratedSecrets(input);
      const id = newId('ch');
      const settings = validateSettings(input, refs, id);
      assertPhoneNumberFree(settings, null);
      const now = clock.now();
      db.transaction(
        (tx) => {
          tx.insert(channels)
            .values({ id, webhookKey: randomToken(24), ...columns(settings), createdAt: now, updatedAt: now })
            .run();
          writeSettings(tx, id, settings, now);
        },
        { behavior: 'immediate' },
      );
      ctx.notifyOutbox();
      const v = view(hydrate(liveRow(id)));
      return { ...v, messenger: { ...v.messenger, ...generated } };
    },

    list(): ChannelView[] {
      return db
        .select()
        .from(channels)
        .where(isNull(channels.deletedAt))
        .orderBy(asc(channels.createdAt), asc(channels.id))
        .all()
        .map((r) => view(hydrate(r)));
    },

    get(id: string): ChannelView {
      return view(hydrate(liveRow(id)));
    },

    /** The channel with its secrets, for the gateway's own use. */
    load(id: string): Channel {
      return hydrate(liveRow(id));
    },

    findByWebhookKey(key: string): Channel | null {
      const row = db
        .select()
        .from(channels)
        .where(and(eq(channels.webhookKey, key), isNull(channels.deletedAt)))
        .get();
      return row ? hydrate(row) : null;
    },

    /** Live WABA channels by phone number id (Meta posts every number of an app to one URL). */
    findByPhoneNumberId(phoneNumberId: string): Channel | null {
      const row = db
        .select()
        .from(channels)
        .where(and(eq(channels.phoneNumberId, phoneNumberId), isNull(channels.deletedAt)))
        .get();
      return row ? hydrate(row) : null;
    },

    patch(id: string, patch: Record<string, unknown>): ChannelView {
      const stored = hydrate(liveRow(id));
      const { id: _id, webhookKey: _k, callbackDisabledAt: _d, createdAt: _c, updatedAt: _u, ...storedSettings } = stored;
      const merged = mergeSettings(storedSettings, structuredClone(patch));
      let generated: Record<string, string> = {};
      if (isRecord(patch.messenger) && patch.messenger.provider && patch.messenger.provider !== stored.messenger.provider) {
        // A new provider's generated secret is returned this once, as on create.
        generated = fillGeneratedSecrets(merged);
      } else if (isRecord(patch.messenger) && 'secret' in patch.messenger) {
        throw AppError.validation('messenger.secret', 'is generated by the gateway; do not send it');
      }
      const settings = validateSettings(merged, refs, id);
      assertPhoneNumberFree(settings, id);
      if (settings.messenger.provider !== stored.messenger.provider && hasContacts(id)) {
        // Its contacts' ids, and the recipients of its queued and failed deliveries, are the old
        // provider's: a Telegram chat id sent to Meta as a phone number could reach a stranger.
        throw new AppError('conflict', `Channel ${id} has contacts of its ${stored.messenger.provider} messenger; create a new channel for ${settings.messenger.provider}`, [
          { field: 'messenger.provider', message: `the channel already has ${stored.messenger.provider} contacts` },
        ]);
      }
      if (!writeFirstProviders.includes(settings.messenger.provider)) {
        // Channels that write first through this one would be left unable to send (and to save).
        const dependant = writesFirstThrough(id);
        if (dependant) {
          throw new AppError('conflict', `Channel ${dependant.id} writes first through this channel, which a ${settings.messenger.provider} channel cannot do`, [
            { field: 'messenger.provider', message: `channel ${dependant.id} writes first through this channel` },
          ]);
        }
      }
      const now = clock.now();
      db.transaction(
        (tx) => {
          tx.update(channels)
            // Messenger settings sent again (a fixed callback URL, say) call a disabled callback again.
            .set({ ...columns(settings), ...(isRecord(patch.messenger) ? { callbackDisabledAt: null } : {}), updatedAt: now })
            .where(eq(channels.id, id))
            .run();
          writeSettings(tx, id, settings, now);
          // Without a chatbot nobody would ever hand its conversations over: they go to ACD now
          // (writeSettings has queued a dispatch), in the order they started.
          if (stored.chatbotId !== null && settings.chatbotId === null) handOverBotConversations(tx, id, now);
          // Without codes nobody could end a wrap-up of this channel by picking one: they end now,
          // as at their timeout, with no code (DESIGN.md §2.5).
          // (Not only when the stored settings had codes: those were read before this transaction.)
          if (settings.handling.completionCodeIds.length === 0) endWrapups(tx, id, now);
          rescindOffersOfRemovedAgents(tx, id, settings.agentIds, now);
        },
        { behavior: 'immediate' },
      );
      ctx.notifyOutbox();
      const v = view(hydrate(liveRow(id)));
      return { ...v, messenger: { ...v.messenger, ...generated } };
    },

    /**
     * Soft delete: history stays; the webhook URL stops answering. Refused while another channel
     * writes first through it. Its conversations that are not closed are closed (reason
     * `channel_deleted`): nothing would ever distribute, answer or end them again, and agents
     * would go on holding load for them. Agents holding one are told (`offer-rescinded` or `closed`).
     */
    remove(id: string): void {
      liveRow(id);
      const dependant = writesFirstThrough(id);
      if (dependant) {
        throw new AppError('conflict', `Channel ${dependant.id} writes first through this channel; change it first`);
      }
      db.transaction(
        (tx) => {
          const now = clock.now();
          tx.update(channels).set({ deletedAt: now }).where(and(eq(channels.id, id), isNull(channels.deletedAt))).run();
          for (const conv of conversationsOf(tx, id, ne(conversations.state, 'closed'))) closeAny(tx, conv, 'channel_deleted', now);
        },
        { behavior: 'immediate' },
      );
      ctx.notifyOutbox();
    },

    rotateWebhookKey(id: string): ChannelView {
      liveRow(id);
      db.update(channels)
        .set({ webhookKey: randomToken(24), updatedAt: clock.now() })
        .where(eq(channels.id, id))
        .run();
      return view(hydrate(liveRow(id)));
    },
  };
}

export type ChannelService = ReturnType<typeof createChannelService>;
