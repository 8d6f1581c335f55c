import { index, integer, primaryKey, sqliteTable, text, uniqueIndex } from 'drizzle-orm/sqlite-core';
import { sql } from 'drizzle-orm';

/**
 * Tables: plural camelCase constants, snake_case columns (drizzle `casing: 'snake_case'`),
 * times as integer milliseconds since the epoch, ids as prefixed random strings.
 */

export const agentStatuses = ['online', 'busy', 'offline'] as const;
export type AgentStatus = (typeof agentStatuses)[number];

export const agents = sqliteTable('agents', {
  id: text().primaryKey(),
  name: text().notNull(),
  email: text().notNull().unique(),
  tokenHash: text().notNull().unique(),
  status: text({ enum: agentStatuses }).notNull().default('offline'),
  substatus: text(),
  statusChangedAt: integer().notNull(),
  /** When the agent last went online; "idle since" for an agent never assigned. */
  onlineSince: integer(),
  lastAssignedAt: integer(),
  /** Sum of the utilization of the agent's offered/active/wrapup conversations (kept in the same transactions). */
  load: integer().notNull().default(0),
  createdAt: integer().notNull(),
  updatedAt: integer().notNull(),
});

export const completionCodes = sqliteTable('completion_codes', {
  id: text().primaryKey(),
  code: text().notNull().unique(),
  label: text().notNull(),
  createdAt: integer().notNull(),
});

export const chatbots = sqliteTable('chatbots', {
  id: text().primaryKey(),
  name: text().notNull(),
  url: text().notNull(),
  createdAt: integer().notNull(),
});

export const conversationTypes = ['chat', 'social', 'email', 'call'] as const;
export type ConversationType = (typeof conversationTypes)[number];

export const channels = sqliteTable(
  'channels',
  {
    id: text().primaryKey(),
    name: text().notNull(),
    conversationType: text({ enum: conversationTypes }).notNull(),
    chatbotId: text().references(() => chatbots.id),
    provider: text({ enum: ['whatsapp_business', 'whatsapp', 'telegram', 'api'] }).notNull(),
    webhookKey: text().notNull().unique(),
    /** Provider settings including secrets (JSON). Never returned by the API. */
    messenger: text({ mode: 'json' }).notNull().$type<Record<string, unknown>>(),
    /** WABA routing key (metadata.phone_number_id); null for other providers. */
    phoneNumberId: text(),
    writeFirstEnabled: integer({ mode: 'boolean' }).notNull().default(false),
    writeFirstChannelId: text(),
    utilization: integer().notNull(),
    autoAssignLimit: integer().notNull(),
    autoAnswer: integer({ mode: 'boolean' }).notNull(),
    notificationTimeoutSec: integer(),
    completionCodeTimeoutSec: integer(),
    /**
     * An `api` channel's callback answered 410 Gone (PROTOCOLS.md §4: disable the endpoint): its
     * deliveries end dead at once until a PATCH of its messenger settings enables it again.
     */
    callbackDisabledAt: integer(),
    createdAt: integer().notNull(),
    updatedAt: integer().notNull(),
    deletedAt: integer(),
  },
  (t) => [index('channels_phone_number_id_idx').on(t.phoneNumberId)],
);

export const channelAgents = sqliteTable(
  'channel_agents',
  {
    channelId: text()
      .notNull()
      .references(() => channels.id, { onDelete: 'cascade' }),
    agentId: text()
      .notNull()
      .references(() => agents.id, { onDelete: 'cascade' }),
    /**
     * Copies of the agent's ACD ordering fields, kept equal to `agents` by the triggers of
     * migration 0002 (agents_mirror_*), never written by code: status = 'online' (0/1), idle since
     * coalesce(last_assigned_at, online_since, 0), and load. With channel_agents_choice_idx they
     * give each channel its agents in choice order (DESIGN.md §2.2), so dispatch reads the first
     * eligible one instead of sorting the channel's agents.
     */
    agentOnline: integer().notNull().default(0),
    agentIdleSince: integer().notNull().default(0),
    agentLoad: integer().notNull().default(0),
  },
  (t) => [
    primaryKey({ columns: [t.channelId, t.agentId] }),
    index('channel_agents_agent_idx').on(t.agentId),
    index('channel_agents_choice_idx').on(t.channelId, t.agentOnline, t.agentIdleSince, t.agentLoad, t.agentId),
  ],
);

/**
 * How many conversations (offered, active or wrapup) an agent holds in a channel: the per-channel
 * auto-assign limit's counter (DESIGN.md §2.2), kept in the same transactions that change a
 * conversation's holder, so dispatch reads one row instead of counting the agent's conversations.
 * Independent of channel_agents: an agent removed from a channel's list still holds what it holds.
 */
export const agentChannelHolds = sqliteTable(
  'agent_channel_holds',
  {
    channelId: text()
      .notNull()
      .references(() => channels.id, { onDelete: 'cascade' }),
    agentId: text()
      .notNull()
      .references(() => agents.id, { onDelete: 'cascade' }),
    held: integer().notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.channelId, t.agentId] })],
);

export const channelCompletionCodes = sqliteTable(
  'channel_completion_codes',
  {
    channelId: text()
      .notNull()
      .references(() => channels.id, { onDelete: 'cascade' }),
    completionCodeId: text()
      .notNull()
      .references(() => completionCodes.id),
  },
  (t) => [primaryKey({ columns: [t.channelId, t.completionCodeId] })],
);

export const contacts = sqliteTable(
  'contacts',
  {
    id: text().primaryKey(),
    channelId: text()
      .notNull()
      .references(() => channels.id),
    providerContactId: text().notNull(),
    name: text(),
    phone: text(),
    username: text(),
    reachable: integer({ mode: 'boolean' }).notNull().default(true),
    /**
     * The provider's time (ms) of what last set `reachable` by itself: a block or unblock, or a
     * message that made a blocked contact reachable again. Deliveries come unordered; an older
     * one arriving later changes nothing. Null until the first such change.
     */
    reachableAt: integer(),
    lastInboundAt: integer(),
    createdAt: integer().notNull(),
    updatedAt: integer().notNull(),
  },
  (t) => [
    uniqueIndex('contacts_channel_provider_uq').on(t.channelId, t.providerContactId),
    index('contacts_channel_phone_idx').on(t.channelId, t.phone),
  ],
);

/**
 * Provider ids a contact was known by before it moved (a Telegram group that became a
 * supergroup): a late message from the old chat, or a write-first to the old id, finds the
 * contact under its new id instead of making a second one.
 */
export const contactAliases = sqliteTable(
  'contact_aliases',
  {
    channelId: text()
      .notNull()
      .references(() => channels.id),
    providerContactId: text().notNull(),
    contactId: text()
      .notNull()
      .references(() => contacts.id),
    createdAt: integer().notNull(),
  },
  (t) => [primaryKey({ columns: [t.channelId, t.providerContactId] }), index('contact_aliases_contact_idx').on(t.contactId)],
);

export const conversationStates = ['bot', 'queued', 'offered', 'active', 'wrapup', 'closed'] as const;
export type ConversationState = (typeof conversationStates)[number];

export const conversations = sqliteTable(
  'conversations',
  {
    id: text().primaryKey(),
    channelId: text()
      .notNull()
      .references(() => channels.id),
    contactId: text()
      .notNull()
      .references(() => contacts.id),
    type: text({ enum: conversationTypes }).notNull(),
    state: text({ enum: conversationStates }).notNull(),
    agentId: text().references(() => agents.id),
    /** The channel's utilization, snapshotted when assigned. */
    utilization: integer(),
    completionCodeId: text().references(() => completionCodes.id),
    /** 0 = front of the queue (put back after reject/timeout), 1 = normal. */
    queueRank: integer().notNull().default(1),
    /** Original enqueue time; kept when the conversation returns to the front. */
    enqueuedAt: integer(),
    /** Incremented on every offer; timers carry it so a stale timer changes nothing. */
    offerSeq: integer().notNull().default(0),
    offerExpiresAt: integer(),
    wrapupExpiresAt: integer(),
    createdAt: integer().notNull(),
    updatedAt: integer().notNull(),
    closedAt: integer(),
  },
  (t) => [
    index('conversations_queue_idx').on(t.channelId, t.state, t.queueRank, t.enqueuedAt),
    index('conversations_contact_idx').on(t.contactId, t.createdAt),
    index('conversations_agent_idx').on(t.agentId, t.state),
    index('conversations_created_idx').on(t.createdAt),
    // For the ACD sweeper (src/acd/sweeper.ts): deadlines that passed with no timer to apply them.
    index('conversations_offer_due_idx').on(t.offerExpiresAt).where(sql`state = 'offered'`),
    index('conversations_wrapup_due_idx').on(t.wrapupExpiresAt).where(sql`state = 'wrapup'`),
  ],
);

export const conversationDeclines = sqliteTable(
  'conversation_declines',
  {
    conversationId: text()
      .notNull()
      .references(() => conversations.id),
    agentId: text()
      .notNull()
      .references(() => agents.id),
    reason: text({ enum: ['rejected', 'timeout', 'rescinded'] }).notNull(),
    at: integer().notNull(),
  },
  (t) => [primaryKey({ columns: [t.conversationId, t.agentId] })],
);

export const conversationHistory = sqliteTable(
  'conversation_history',
  {
    id: integer().primaryKey({ autoIncrement: true }),
    conversationId: text()
      .notNull()
      .references(() => conversations.id),
    fromState: text({ enum: conversationStates }),
    toState: text({ enum: conversationStates }).notNull(),
    agentId: text(),
    reason: text().notNull(),
    at: integer().notNull(),
  },
  (t) => [index('conversation_history_conv_idx').on(t.conversationId, t.id)],
);

export const messageDirections = ['in', 'out'] as const;
export const messageStatuses = ['received', 'pending', 'sent', 'delivered', 'read', 'failed'] as const;
export type MessageStatus = (typeof messageStatuses)[number];

export const messages = sqliteTable(
  'messages',
  {
    id: text().primaryKey(),
    channelId: text()
      .notNull()
      .references(() => channels.id),
    conversationId: text()
      .notNull()
      .references(() => conversations.id),
    direction: text({ enum: messageDirections }).notNull(),
    kind: text().notNull(),
    text: text(),
    details: text({ mode: 'json' }).$type<Record<string, unknown>>(),
    providerMessageId: text(),
    status: text({ enum: messageStatuses }).notNull(),
    agentId: text(),
    errorCode: text(),
    sentAt: integer(),
    createdAt: integer().notNull(),
    updatedAt: integer().notNull(),
  },
  (t) => [
    uniqueIndex('messages_channel_provider_uq').on(t.channelId, t.providerMessageId),
    index('messages_conversation_idx').on(t.conversationId, t.createdAt),
  ],
);

/** Webhook deliveries recorded by key (dedupe) or because they were ignored. */
export const inboundEvents = sqliteTable(
  'inbound_events',
  {
    id: integer().primaryKey({ autoIncrement: true }),
    channelId: text()
      .notNull()
      .references(() => channels.id),
    dedupeKey: text(),
    outcome: text({ enum: ['processed', 'ignored'] }).notNull(),
    reason: text(),
    receivedAt: integer().notNull(),
  },
  (t) => [uniqueIndex('inbound_events_dedupe_uq').on(t.channelId, t.dedupeKey)],
);

/**
 * Transactional outbox: rows written in the same transaction as the state change, moved to
 * BullMQ (or Redis pub/sub) by the relay, deleted once handed over.
 */
export const outbox = sqliteTable('outbox', {
  id: integer().primaryKey({ autoIncrement: true }),
  kind: text({ enum: ['dispatch', 'timer', 'event', 'delivery'] }).notNull(),
  payload: text({ mode: 'json' }).notNull().$type<Record<string, unknown>>(),
  createdAt: integer().notNull(),
  /** Lease: a relay that claimed the row owns it until then. */
  claimedUntil: integer(),
});

export const deliveryStatuses = ['pending', 'retrying', 'sent', 'dead'] as const;
export type DeliveryStatus = (typeof deliveryStatuses)[number];

export const deliveries = sqliteTable(
  'deliveries',
  {
    id: text().primaryKey(),
    messageId: text()
      .notNull()
      .unique()
      .references(() => messages.id),
    /** The channel that sends (write-first may send through another channel). */
    channelId: text()
      .notNull()
      .references(() => channels.id),
    status: text({ enum: deliveryStatuses }).notNull(),
    attempts: integer().notNull().default(0),
    nextAttemptAt: integer(),
    lastError: text(),
    lastErrorCode: text(),
    lastHttpStatus: integer(),
    /** When a job for the current attempt was requested (outbox row or sweeper); null = the sweeper must queue it. */
    enqueuedAt: integer(),
    /**
     * While an attempt is waiting on the provider: until when (ms) its worker holds it. A replay
     * then is a 409 (it would send a second copy), and the sweeper leaves it alone. Cleared when
     * the attempt is recorded; a worker that dies mid-send lets it lapse.
     */
    sendingUntil: integer(),
    /** Replays by ops; each starts a new attempt cycle (attempts back to 0). Part of the job id. */
    replays: integer().notNull().default(0),
    replayedAt: integer(),
    /** Who it goes to (its message's `details.to`): deliveries to one recipient go out in order. */
    recipient: text(),
    /**
     * The delivery to the same recipient that goes first: until that one is sent or dead, this one
     * has no job (and the sweeper leaves it alone). Null once it may go.
     */
    heldBehind: text(),
    createdAt: integer().notNull(),
    updatedAt: integer().notNull(),
    sentAt: integer(),
  },
  (t) => [
    index('deliveries_status_idx').on(t.status, t.createdAt),
    index('deliveries_channel_idx').on(t.channelId, t.createdAt),
    index('deliveries_open_recipient_idx').on(t.channelId, t.recipient, t.createdAt).where(sql`status IN ('pending', 'retrying')`),
    index('deliveries_held_behind_idx').on(t.heldBehind).where(sql`held_behind IS NOT NULL`),
  ],
);

export const deliveryAttempts = sqliteTable(
  'delivery_attempts',
  {
    id: integer().primaryKey({ autoIncrement: true }),
    deliveryId: text()
      .notNull()
      .references(() => deliveries.id),
    /** The delivery's `replays` when this attempt ran (0 = before any replay). */
    cycle: integer().notNull().default(0),
    /** 1-based within its cycle. */
    attempt: integer().notNull(),
    at: integer().notNull(),
    outcome: text({ enum: ['sent', 'retry', 'failed'] }).notNull(),
    httpStatus: integer(),
    providerCode: text(),
    error: text(),
    durationMs: integer().notNull(),
  },
  (t) => [index('delivery_attempts_delivery_idx').on(t.deliveryId, t.attempt)],
);
