import type Database from 'better-sqlite3';

/**
 * The eligible agent for a conversation (DESIGN.md §2.1–2.2): in the channel's list, online,
 * load + utilization ≤ 100, fewer than autoAssignLimit conversations held in this channel (the
 * agent_channel_holds counter), not excluded by a decline unless `ignore`; chosen longest idle
 * first, then lowest load, then id.
 *
 * channel_agents carries trigger-maintained copies of each agent's online flag, idle time and load,
 * indexed in exactly that choice order per channel (channel_agents_choice_idx). The query walks the
 * channel's online agents in choice order and stops at the first eligible one: one step when the
 * longest-idle agent fits, whatever the number of agents, and never a sort.
 */
export interface BestAgentArgs {
  ch: string;
  util: number;
  lim: number;
  /** 1 when every agent of the channel declined the conversation: declines no longer exclude. */
  ignore: 0 | 1;
  conv: string;
}

export interface Candidate {
  id: string;
  load: number;
}

export function createBestAgentQueries(sqlite: Database.Database) {
  const best = sqlite.prepare(
    `SELECT ca.agent_id AS id, ca.agent_load AS load FROM channel_agents ca INDEXED BY channel_agents_choice_idx
     WHERE ca.channel_id = @ch AND ca.agent_online = 1 AND ca.agent_load + @util <= 100
       AND coalesce((SELECT h.held FROM agent_channel_holds h WHERE h.channel_id = @ch AND h.agent_id = ca.agent_id), 0) < @lim
       AND (@ignore = 1 OR NOT EXISTS (SELECT 1 FROM conversation_declines d WHERE d.conversation_id = @conv AND d.agent_id = ca.agent_id))
     ORDER BY ca.agent_idle_since, ca.agent_load, ca.agent_id
     LIMIT 1`,
  );
  return {
    bestAgent: (args: BestAgentArgs) => best.get(args) as Candidate | undefined,
    /** The query plan, for tests that pin "walks the index, never sorts". */
    plan: (args: BestAgentArgs) =>
      (sqlite.prepare(`EXPLAIN QUERY PLAN ${best.source}`).all(args) as Array<{ detail: string }>).map((r) => r.detail),
  };
}
