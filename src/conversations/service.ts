import { and, asc, desc, eq, lt, or, sql, type SQL } from 'drizzle-orm';
import { contacts, conversationHistory, conversations, messages, type ConversationState } from '../db/schema.js';
import { AppError } from '../errors.js';
import type { ServiceContext } from '../services.js';
import { decodeCursor, toPage, type Page } from '../lib/cursor.js';

/** Read side of what ingest and ACD stored: conversations, their messages and history, contacts. */

export type ConversationRow = typeof conversations.$inferSelect;

/**
 * A conversation as the API shows it. `updatedAt` is when the conversation itself last changed
 * (state, agent, completion code); `lastMessageAt` is its newest message, in or out (null before
 * the first), read from the messages index rather than written on every message.
 */
export function conversationView(r: ConversationRow, lastMessageAt: number | null) {
  return {
    id: r.id,
    channelId: r.channelId,
    contactId: r.contactId,
    type: r.type,
    state: r.state,
    agentId: r.agentId,
    utilization: r.utilization,
    completionCodeId: r.completionCodeId,
    enqueuedAt: r.enqueuedAt,
    offerExpiresAt: r.offerExpiresAt,
    wrapupExpiresAt: r.wrapupExpiresAt,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    closedAt: r.closedAt,
    lastMessageAt,
  };
}

export function createConversationService(ctx: ServiceContext) {
  const { db } = ctx;
  // One descent of messages_conversation_idx (conversation_id, created_at).
  const newestMessage = db.$client.prepare('SELECT max(created_at) FROM messages WHERE conversation_id = ?').pluck();

  function view(row: ConversationRow) {
    return conversationView(row, newestMessage.get(row.id) as number | null);
  }

  function getRow(id: string): ConversationRow {
    const row = db.select().from(conversations).where(eq(conversations.id, id)).get();
    if (!row) throw AppError.notFound(`Conversation ${id}`);
    return row;
  }

  return {
    getRow,
    view,

    list(filter: { channelId?: string | undefined; state?: ConversationState | undefined; agentId?: string | undefined; limit: number; cursor?: string | undefined }): Page<ReturnType<typeof conversationView>> {
      const where: Array<SQL | undefined> = [
        filter.channelId ? eq(conversations.channelId, filter.channelId) : undefined,
        filter.state ? eq(conversations.state, filter.state) : undefined,
        filter.agentId ? eq(conversations.agentId, filter.agentId) : undefined,
      ];
      if (filter.cursor) {
        const c = decodeCursor(filter.cursor);
        where.push(or(lt(conversations.createdAt, c.createdAt), and(eq(conversations.createdAt, c.createdAt), lt(conversations.id, c.id))));
      }
      const rows = db
        .select()
        .from(conversations)
        .where(and(...where))
        .orderBy(desc(conversations.createdAt), desc(conversations.id))
        .limit(filter.limit + 1)
        .all();
      return toPage(rows, filter.limit, view);
    },

    get(id: string) {
      return view(getRow(id));
    },

    messages(id: string) {
      getRow(id);
      return db
        .select({
          id: messages.id,
          direction: messages.direction,
          kind: messages.kind,
          text: messages.text,
          details: messages.details,
          providerMessageId: messages.providerMessageId,
          status: messages.status,
          agentId: messages.agentId,
          errorCode: messages.errorCode,
          createdAt: messages.createdAt,
          updatedAt: messages.updatedAt,
        })
        .from(messages)
        .where(eq(messages.conversationId, id))
        .orderBy(asc(messages.createdAt), sql`${messages}.rowid`)
        .all();
    },

    history(id: string) {
      getRow(id);
      return db
        .select({
          from: conversationHistory.fromState,
          to: conversationHistory.toState,
          agentId: conversationHistory.agentId,
          reason: conversationHistory.reason,
          at: conversationHistory.at,
        })
        .from(conversationHistory)
        .where(eq(conversationHistory.conversationId, id))
        .orderBy(asc(conversationHistory.id))
        .all();
    },

    contact(id: string) {
      const row = db.select().from(contacts).where(eq(contacts.id, id)).get();
      if (!row) throw AppError.notFound(`Contact ${id}`);
      return {
        id: row.id,
        channelId: row.channelId,
        providerContactId: row.providerContactId,
        name: row.name,
        phone: row.phone,
        username: row.username,
        reachable: row.reachable,
        lastInboundAt: row.lastInboundAt,
        createdAt: row.createdAt,
        updatedAt: row.updatedAt,
      };
    },
  };
}

export type ConversationService = ReturnType<typeof createConversationService>;
