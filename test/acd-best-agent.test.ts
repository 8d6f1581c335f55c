import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBestAgentQueries, type BestAgentArgs } from '../src/acd/best-agent.js';
import { expectChoiceMirrorsCurrent } from './invariants.js';
import { channelBody, createHarness, json, type Harness } from './harness.js';

/**
 * The ACD's agent choice reads trigger-maintained copies of the agents' ordering fields from
 * channel_agents. For random agent populations (status, load, idle times with ties, per-channel
 * holds, declines, channel lists) in a real SQLite file, the query must pick the agent that a plain
 * reference implementation of DESIGN.md §2.1–2.2 picks from the agents table itself.
 */

const CHANNELS = 3;
let h: Harness;
let q: ReturnType<typeof createBestAgentQueries>;
let channelIds: string[];
const convIds: string[] = [];

beforeAll(async () => {
  h = createHarness();
  q = createBestAgentQueries(h.deps.db.$client);
  channelIds = [];
  for (let c = 0; c < CHANNELS; c++) {
    const res = await h.api('POST', '/api/channels', channelBody());
    expect(res.status).toBe(201);
    const id = (await json(res)).id as string;
    channelIds.push(id);
    const sql = h.deps.db.$client;
    sql.prepare("INSERT INTO contacts (id, channel_id, provider_contact_id, created_at, updated_at) VALUES (?, ?, ?, 0, 0)").run(`ct_${c}`, id, `p${c}`);
    sql
      .prepare("INSERT INTO conversations (id, channel_id, contact_id, type, state, created_at, updated_at) VALUES (?, ?, ?, 'chat', 'queued', 0, 0)")
      .run(`cv_${c}`, id, `ct_${c}`);
    convIds.push(`cv_${c}`);
  }
});
afterAll(async () => {
  await h.close();
});

interface AgentSpec {
  status: 'online' | 'busy' | 'offline';
  load: number;
  lastAssignedAt: number | null;
  onlineSince: number | null;
  channels: boolean[];
  held: number[];
  declined: boolean[];
}

const agentSpec: fc.Arbitrary<AgentSpec> = fc.record({
  status: fc.constantFrom('online', 'online', 'online', 'busy', 'offline'),
  load: fc.constantFrom(0, 10, 30, 50, 80, 90, 100),
  // A small range makes ties in idle time and load common.
  lastAssignedAt: fc.option(fc.integer({ min: 1, max: 4 }), { nil: null }),
  onlineSince: fc.option(fc.integer({ min: 1, max: 4 }), { nil: null }),
  channels: fc.array(fc.boolean(), { minLength: CHANNELS, maxLength: CHANNELS }),
  held: fc.array(fc.integer({ min: 0, max: 3 }), { minLength: CHANNELS, maxLength: CHANNELS }),
  declined: fc.array(fc.boolean(), { minLength: CHANNELS, maxLength: CHANNELS }),
});

function load(specs: AgentSpec[]): string[] {
  const sql = h.deps.db.$client;
  sql.exec('DELETE FROM conversation_declines; DELETE FROM agent_channel_holds; DELETE FROM channel_agents; DELETE FROM agents;');
  const ids = specs.map((_, i) => `ag_${String(i).padStart(3, '0')}`);
  // Agents are created offline and idle, linked to channels (the insert trigger copies them),
  // then updated to their state (the update trigger copies it again), as the services do it.
  const insertAgent = sql.prepare(
    `INSERT INTO agents (id, name, email, token_hash, status, status_changed_at, created_at, updated_at)
     VALUES (?, ?, ?, ?, 'offline', 0, 0, 0)`,
  );
  const update = sql.prepare('UPDATE agents SET status = ?, online_since = ?, last_assigned_at = ?, load = ? WHERE id = ?');
  specs.forEach((s, i) => {
    const id = ids[i]!;
    insertAgent.run(id, id, `${id}@x.test`, `hash-${id}`);
    // Half the agents get their state before joining channels, half after.
    if (i % 2 === 0) update.run(s.status, s.onlineSince, s.lastAssignedAt, s.load, id);
    for (let c = 0; c < CHANNELS; c++) {
      if (s.channels[c]) sql.prepare('INSERT INTO channel_agents (channel_id, agent_id) VALUES (?, ?)').run(channelIds[c], id);
      if (s.held[c]! > 0) sql.prepare('INSERT INTO agent_channel_holds (channel_id, agent_id, held) VALUES (?, ?, ?)').run(channelIds[c], id, s.held[c]);
      if (s.declined[c]) {
        sql.prepare("INSERT INTO conversation_declines (conversation_id, agent_id, reason, at) VALUES (?, ?, 'rejected', 0)").run(convIds[c], id);
      }
    }
    if (i % 2 === 1) update.run(s.status, s.onlineSince, s.lastAssignedAt, s.load, id);
  });
  return ids;
}

/** DESIGN.md §2.1–2.2, written out plainly. */
function reference(specs: AgentSpec[], ids: string[], c: number, args: BestAgentArgs): string | undefined {
  const eligible = specs
    .map((s, i) => ({ s, id: ids[i]! }))
    .filter(({ s }) => s.channels[c] && s.status === 'online' && s.load + args.util <= 100 && s.held[c]! < args.lim)
    .filter(({ s }) => args.ignore === 1 || !s.declined[c]);
  eligible.sort((x, y) => {
    const idle = (s: AgentSpec) => s.lastAssignedAt ?? s.onlineSince ?? 0;
    return idle(x.s) - idle(y.s) || x.s.load - y.s.load || (x.id < y.id ? -1 : x.id > y.id ? 1 : 0);
  });
  return eligible[0]?.id;
}

describe('best agent follows DESIGN.md §2.1–2.2', () => {
  it('picks the agent the reference rules pick, for random populations', () => {
    fc.assert(
      fc.property(
        fc.array(agentSpec, { minLength: 0, maxLength: 25 }),
        fc.integer({ min: 0, max: 3 }),
        fc.constantFrom(0, 10, 20, 50, 100),
        fc.integer({ min: 1, max: 4 }),
        fc.constantFrom<0 | 1>(0, 1),
        (specs, c0, util, lim, ignore) => {
          const c = c0 % CHANNELS;
          const ids = load(specs);
          const args: BestAgentArgs = { ch: channelIds[c]!, util, lim, ignore, conv: convIds[c]! };
          const expected = reference(specs, ids, c, args);
          expect(q.bestAgent(args)?.id).toBe(expected);
          expectChoiceMirrorsCurrent(h.deps.db.$client);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('walks the channel\'s agents in index order and never sorts', () => {
    const detail = q.plan({ ch: channelIds[0]!, util: 10, lim: 1, ignore: 0, conv: convIds[0]! }).join('\n');
    expect(detail).toContain('channel_agents_choice_idx');
    expect(detail).not.toContain('TEMP B-TREE');
  });
});
