import type Database from 'better-sqlite3';
import { expect } from 'vitest';

/** channel_agents' copies of each agent's ordering fields equal the agents rows (the triggers' job). */
export function expectChoiceMirrorsCurrent(db: Database.Database): void {
  const stale = db
    .prepare(
      `SELECT ca.channel_id, ca.agent_id FROM channel_agents ca JOIN agents a ON a.id = ca.agent_id
       WHERE ca.agent_online != (a.status = 'online') OR ca.agent_idle_since != coalesce(a.last_assigned_at, a.online_since, 0)
          OR ca.agent_load != a.load`,
    )
    .all();
  expect(stale).toEqual([]);
}

/**
 * The ACD's denormalized counters must always equal what they summarize: an agent's `load` is
 * the utilization of its offered/active/wrapup conversations, and each agent_channel_holds row
 * is the count of those conversations in that channel (a missing row counts as 0); and the
 * channel_agents copies are current.
 */
export function expectHoldCountersConsistent(db: Database.Database): void {
  expectChoiceMirrorsCurrent(db);
  const loads = db
    .prepare(
      `SELECT a.id, a.load, coalesce(sum(c.utilization), 0) AS held_util
       FROM agents a LEFT JOIN conversations c ON c.agent_id = a.id AND c.state IN ('offered','active','wrapup')
       GROUP BY a.id`,
    )
    .all() as Array<{ id: string; load: number; held_util: number }>;
  for (const a of loads) expect({ agent: a.id, load: a.load }).toEqual({ agent: a.id, load: a.held_util });

  const holds = db
    .prepare(
      `WITH actual AS (
         SELECT channel_id, agent_id, count(*) AS n FROM conversations
         WHERE agent_id IS NOT NULL AND state IN ('offered','active','wrapup') GROUP BY channel_id, agent_id)
       SELECT h.channel_id, h.agent_id, h.held, coalesce(x.n, 0) AS n
         FROM agent_channel_holds h LEFT JOIN actual x ON x.channel_id = h.channel_id AND x.agent_id = h.agent_id
       UNION ALL
       SELECT x.channel_id, x.agent_id, 0, x.n FROM actual x
         WHERE NOT EXISTS (SELECT 1 FROM agent_channel_holds h WHERE h.channel_id = x.channel_id AND h.agent_id = x.agent_id)`,
    )
    .all() as Array<{ channel_id: string; agent_id: string; held: number; n: number }>;
  for (const r of holds) {
    expect({ channel: r.channel_id, agent: r.agent_id, held: r.held }).toEqual({ channel: r.channel_id, agent: r.agent_id, held: r.n });
  }
}
