/**
 * ACD benchmark: agents across 50 channels, 50,000 conversations committed as fast as the ingest
 * store takes them (the same transaction code a webhook runs, group-committed), distributed by the
 * real outbox relay → BullMQ → ACD worker path. Prints assignments per second and the p99 time
 * from commit to offer, for 10, 100 and 1,000 agents, so the growth of the per-assignment cost shows.
 *
 *   npx tsx scripts/bench/acd.ts [--conversations 50000] [--agents 10,100,1000]
 *
 * Needs Redis at REDIS_URL (default 127.0.0.1:6379); uses its own queue prefix and a temp data dir.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../../src/config.js';
import { buildDeps, closeDeps } from '../../src/deps.js';
import { createGroupCommitter } from '../../src/ingest/group-commit.js';
import { createIngestStore, type ApplyOutcome } from '../../src/ingest/store.js';
import { createLogger } from '../../src/log.js';
import { startWorkers } from '../../src/queue/workers.js';
import { dropKeysWithPrefix } from '../redis-cleanup.js';

const { values } = parseArgs({
  options: { conversations: { type: 'string', default: '50000' }, agents: { type: 'string', default: '10,100,1000' } },
});
const TOTAL = Number(values.conversations);
const CHANNELS = 50;
const CHANNELS_PER_AGENT = 5;

async function run(agentCount: number) {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'switchboard-acd-bench-'));
  const config = loadConfig({
    DATA_DIR: dataDir,
    ADMIN_TOKEN: 'bench-admin-token-0123456789',
    QUEUE_PREFIX: `bench-acd-${process.pid}-${agentCount}`,
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    LOG_LEVEL: 'warn',
  });
  const deps = buildDeps(config, { log: createLogger('warn') });
  const { agents, channels } = deps.services;
  try {
    const agentIds: string[] = [];
    for (let i = 0; i < agentCount; i++) agentIds.push((await agents.create({ name: `A${i}`, email: `a${i}@bench.test` })).id);
    const channelIds: string[] = [];
    for (let c = 0; c < CHANNELS; c++) {
      // Agent i serves CHANNELS_PER_AGENT channels spread over the 50: each channel gets agentCount/10 agents (at least 1).
      const members = agentIds.filter((_, i) => Array.from({ length: CHANNELS_PER_AGENT }, (_, k) => (i + k * 10) % CHANNELS).includes(c));
      if (members.length === 0) members.push(agentIds[c % agentIds.length]!);
      const ch = channels.create({
        name: `Bench ${c}`,
        conversationType: 'chat',
        chatbotId: null,
        messenger: { provider: 'api', callbackUrl: 'http://127.0.0.1:9/unused' },
        writeFirst: { enabled: false, channelId: null },
        // Capacity is not the limit here: utilization 0 and a high per-channel limit, offers with a long timeout.
        handling: { utilization: 0, autoAssignLimit: 1_000_000, autoAnswer: false, notificationTimeoutSec: 3600, completionCodeIds: [], completionCodeTimeoutSec: null },
        agentIds: members,
      });
      channelIds.push(ch.id);
    }
    for (const id of agentIds) agents.setStatus(id, 'online', null);
    await deps.relay.drain();
    await deps.queues.acd.obliterate({ force: true });

    deps.relay.start();
    const workers = startWorkers(deps);
    const store = createIngestStore(deps.db.$client);
    const committer = createGroupCommitter(deps.db.$client);
    const start = performance.now();
    const outcome: ApplyOutcome = { stored: 0, duplicates: 0, statuses: 0, ignored: 0, queued: 0, outbox: 0 };
    const channelRows = channelIds.map((id) => ({ id, provider: 'api' as const, conversationType: 'chat', chatbotId: null }));
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < TOTAL; i++) {
      const ch = channelRows[i % CHANNELS]!;
      pending.push(
        committer.submit(() =>
          store.apply(
            ch,
            {
              type: 'message',
              providerMessageId: `m${i}`,
              contact: { providerContactId: `c${i}`, name: `C${i}` },
              kind: 'text',
              text: 'hello',
              sentAt: 0,
            },
            Date.now(),
            outcome,
          ),
        ),
      );
      if (pending.length >= 2000) {
        await Promise.all(pending.splice(0));
        deps.relay.notify();
      }
    }
    await Promise.all(pending);
    deps.relay.notify();
    const committedMs = performance.now() - start;

    const count = deps.db.$client.prepare("SELECT count(*) FROM conversations WHERE state = 'offered'").pluck();
    const deadline = Date.now() + 600_000;
    while ((count.get() as number) < TOTAL && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const doneMs = performance.now() - start;
    const offered = count.get() as number;

    const latencies = deps.db.$client
      .prepare(
        `SELECT o.at - q.at FROM conversation_history q JOIN conversation_history o
           ON o.conversation_id = q.conversation_id AND o.reason = 'offer'
         WHERE q.reason = 'inbound_message' ORDER BY 1`,
      )
      .pluck()
      .all() as number[];
    const p = (x: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * x))] ?? Number.NaN;
    const perChannel = Math.max(1, (agentCount * CHANNELS_PER_AGENT) / CHANNELS);
    console.log(
      `${String(agentCount).padStart(5)} agents (${String(perChannel).padStart(3)}/channel): ${offered} offers in ${(doneMs / 1000).toFixed(1)} s` +
        ` = ${Math.round(offered / (doneMs / 1000))} assignments/s; commits took ${(committedMs / 1000).toFixed(1)} s;` +
        ` commit→offer p50 ${p(0.5)} ms, p99 ${p(0.99)} ms`,
    );
    await workers.close();
  } finally {
    await closeDeps(deps);
    await dropKeysWithPrefix(config.redisUrl, config.queuePrefix).catch(() => 0);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function main() {
  console.log(`ACD bench: ${TOTAL} conversations over ${CHANNELS} channels, each agent in ${CHANNELS_PER_AGENT} channels`);
  for (const n of values.agents.split(',').map(Number)) await run(n);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
