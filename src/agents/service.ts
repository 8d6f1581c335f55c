import { and, asc, eq, inArray, sql } from 'drizzle-orm';
import { agentEvent, takeBackOffersOf } from '../acd/transitions.js';
import { agents, channelAgents, channels, conversations, type AgentStatus } from '../db/schema.js';
import { AppError } from '../errors.js';
import { sha256Hex, randomToken } from '../lib/crypto.js';
import { newId } from '../lib/ids.js';
import { AGENT_TOKEN_PREFIX } from '../lib/tokens.js';
import { addToOutbox } from '../queue/outbox.js';
import type { ServiceContext } from '../services.js';


export interface AgentView {
  id: string;
  name: string;
  email: string;
  status: AgentStatus;
  substatus: string | null;
  load: number;
  /** Conversations held (offered/active/wrapup) per channel. */
  channels: Array<{ channelId: string; offered: number; active: number; wrapup: number }>;
  statusChangedAt: number;
  lastAssignedAt: number | null;
  createdAt: number;
  updatedAt: number;
}

type AgentRow = typeof agents.$inferSelect;

export function createAgentService(ctx: ServiceContext) {
  const { db, clock } = ctx;

  function channelCounts(agentId: string): AgentView['channels'] {
    const served = db
      .select({ channelId: channelAgents.channelId })
      .from(channelAgents)
      .innerJoin(channels, eq(channels.id, channelAgents.channelId))
      .where(and(eq(channelAgents.agentId, agentId), sql`${channels.deletedAt} is null`))
      .all()
      .map((r) => r.channelId);
    const held = db
      .select({ channelId: conversations.channelId, state: conversations.state, n: sql<number>`count(*)` })
      .from(conversations)
      .where(and(eq(conversations.agentId, agentId), inArray(conversations.state, ['offered', 'active', 'wrapup'])))
      .groupBy(conversations.channelId, conversations.state)
      .all();
    const byChannel = new Map<string, AgentView['channels'][number]>();
    for (const id of served) byChannel.set(id, { channelId: id, offered: 0, active: 0, wrapup: 0 });
    for (const h of held) {
      const entry = byChannel.get(h.channelId) ?? { channelId: h.channelId, offered: 0, active: 0, wrapup: 0 };
      entry[h.state as 'offered' | 'active' | 'wrapup'] = h.n;
      byChannel.set(h.channelId, entry);
    }
    return [...byChannel.values()].sort((a, b) => a.channelId.localeCompare(b.channelId));
  }

  function view(row: AgentRow, withCounts = true): AgentView {
    return {
      id: row.id,
      name: row.name,
      email: row.email,
      status: row.status,
      substatus: row.substatus,
      load: row.load,
      channels: withCounts ? channelCounts(row.id) : [],
      statusChangedAt: row.statusChangedAt,
      lastAssignedAt: row.lastAssignedAt,
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
    };
  }

  function getRow(id: string): AgentRow {
    const row = db.select().from(agents).where(eq(agents.id, id)).get();
    if (!row) throw AppError.notFound(`Agent ${id}`);
    return row;
  }

  function assertEmailFree(email: string, exceptId?: string): void {
    // Mailboxes are one whatever the case: ANA@example.com is ana@example.com.
    const other = db.select({ id: agents.id }).from(agents).where(sql`lower(${agents.email}) = lower(${email})`).get();
    if (other && other.id !== exceptId) {
      throw new AppError('conflict', `An agent with email ${email} already exists`, [{ field: 'email', message: 'already in use' }]);
    }
  }


  return {
    async create(raw: { name: string; email: string }): Promise<AgentView & { token: string }> {
      // Stored lowercased: one mailbox is one agent, and the unique index then sees that too
      // (across processes, where the check below cannot).
      const input = { ...raw, email: raw.email.toLowerCase() };
      const token = `${AGENT_TOKEN_PREFIX}${randomToken(24)}`;
      const tokenHash = await sha256Hex(token);
      // Check and insert with no await between: a second request for the same email cannot come
      // in between in this process (two at once had given a 500 from the unique index), and the
      // index itself still answers for another process.
      const now = clock.now();
      assertEmailFree(input.email);
      const row: AgentRow = {
        id: newId('ag'),
        name: input.name,
        email: input.email,
        tokenHash,
        status: 'offline',
        substatus: null,
        statusChangedAt: now,
        onlineSince: null,
        lastAssignedAt: null,
        load: 0,
        createdAt: now,
        updatedAt: now,
      };
      try {
        db.insert(agents).values(row).run();
      } catch (err) {
        if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE' && /agents\.email/.test((err as Error).message)) {
          throw new AppError('conflict', `An agent with email ${input.email} already exists`, [{ field: 'email', message: 'already in use' }]);
        }
        throw err;
      }
      return { ...view(row), token };
    },

    list(): AgentView[] {
      return db.select().from(agents).orderBy(asc(agents.createdAt), asc(agents.id)).all().map((r) => view(r));
    },

    get(id: string): AgentView {
      return view(getRow(id));
    },

    exists(id: string): boolean {
      return db.select({ id: agents.id }).from(agents).where(eq(agents.id, id)).get() !== undefined;
    },

    update(id: string, raw: { name?: string | undefined; email?: string | undefined }): AgentView {
      const patch = { ...raw, ...(raw.email !== undefined ? { email: raw.email.toLowerCase() } : {}) };
      getRow(id);
      if (patch.email !== undefined) assertEmailFree(patch.email, id);
      db.update(agents)
        .set({
          ...(patch.name !== undefined ? { name: patch.name } : {}),
          ...(patch.email !== undefined ? { email: patch.email } : {}),
          updatedAt: clock.now(),
        })
        .where(eq(agents.id, id))
        .run();
      return view(getRow(id));
    },

    findIdByTokenHash(hash: string): string | null {
      return db.select({ id: agents.id }).from(agents).where(eq(agents.tokenHash, hash)).get()?.id ?? null;
    },

    /**
     * Sets status. Going `online` clears the substatus, starts the idle clock when the agent was
     * never assigned, and triggers dispatch in the agent's channels; leaving it rescinds offers.
     */
    setStatus(id: string, status: AgentStatus, substatus: string | null): AgentView {
      const now = clock.now();
      db.transaction(
        (tx) => {
          const prev = tx.select().from(agents).where(eq(agents.id, id)).get();
          if (!prev) throw AppError.notFound(`Agent ${id}`);
          const goingOnline = status === 'online' && prev.status !== 'online';
          tx.update(agents)
            .set({
              status,
              substatus: status === 'online' ? null : substatus,
              statusChangedAt: now,
              ...(goingOnline ? { onlineSince: now } : {}),
              updatedAt: now,
            })
            .where(eq(agents.id, id))
            .run();
          // Leaving `online` takes back pending offers (an expired one counts as timed out, so a
          // status change is no way around the timeout; the status asked for still applies).
          // Active conversations stay.
          if (prev.status === 'online' && status !== 'online') takeBackOffersOf(tx, id, 'agent_left_online', now);
          if (goingOnline) {
            const served = tx
              .select({ channelId: channelAgents.channelId })
              .from(channelAgents)
              .where(eq(channelAgents.agentId, id))
              .all();
            addToOutbox(
              tx,
              now,
              served.map((s) => ({ kind: 'dispatch' as const, payload: { channelId: s.channelId } })),
            );
          }
          addToOutbox(tx, now, [agentEvent(id, 'status', { status, substatus: status === 'online' ? null : substatus })]);
        },
        { behavior: 'immediate' },
      );
      ctx.notifyOutbox();
      return view(getRow(id));
    },
  };
}

export type AgentService = ReturnType<typeof createAgentService>;
