import Database from 'better-sqlite3';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { bytesToHex, hmac } from '../src/lib/crypto.js';
import { removeTempDataDirs, tempDataDir, uniquePrefix } from './harness.js';
import { startGatewayProcess, type GatewayProcess } from './process.js';
import { expectHoldCountersConsistent } from './invariants.js';

/**
 * Two gateway processes (each with its ACD worker) on one database file and one Redis, hit with a
 * burst of conversations on two channels that share agents: no agent may ever exceed 100% load or
 * a channel's auto-assign limit, and every free slot gets filled.
 */

const gws: GatewayProcess[] = [];
afterEach(async () => {
  await Promise.all(gws.splice(0).map((g) => g.stop('SIGKILL')));
  removeTempDataDirs();
});

const TOKEN = 'multiprocess-admin-token-1';
const SECRET = 'mp-app-secret';

describe('ACD across two processes', () => {
  it('never over-assigns an agent under a concurrent burst', async () => {
    const dataDir = tempDataDir();
    const env = { DATA_DIR: dataDir, ADMIN_TOKEN: TOKEN, QUEUE_PREFIX: uniquePrefix(), LOG_LEVEL: 'warn' };
    gws.push(await startGatewayProcess(env));
    gws.push(await startGatewayProcess(env));
    const [g1, g2] = gws as [GatewayProcess, GatewayProcess];
    const call = async (g: GatewayProcess, method: string, p: string, body?: unknown) => {
      const res = await fetch(`${g.baseUrl}${p}`, {
        method,
        headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return (await res.json()) as any;
    };

    const agents: string[] = [];
    for (let i = 0; i < 6; i++) agents.push((await call(g1, 'POST', '/api/agents', { name: `A${i}`, email: `a${i}@example.com` })).id);
    const channels: Array<{ id: string; webhookUrl: string; phone: string }> = [];
    for (const phone of ['4001', '4002']) {
      const ch = await call(g1, 'POST', '/api/channels', {
        name: `Burst ${phone}`,
        conversationType: 'chat',
        messenger: { provider: 'whatsapp_business', phoneNumberId: phone, accessToken: 't', appSecret: SECRET, verifyToken: 'v' },
        handling: { utilization: 40, autoAssignLimit: 2, autoAnswer: true },
        agentIds: agents,
      });
      channels.push({ id: ch.id, webhookUrl: ch.webhookUrl, phone });
    }
    for (const a of agents) await call(a.endsWith('0') ? g1 : g2, 'PUT', `/api/agents/${a}/status`, { status: 'online' });

    // 120 conversations, alternating processes and channels, 16 in flight at a time.
    const posts: Array<() => Promise<number>> = [];
    for (let i = 0; i < 120; i++) {
      const g = i % 2 === 0 ? g1 : g2;
      const ch = channels[Math.floor(i / 2) % 2]!;
      posts.push(async () => {
        const from = String(4915200000000 + i);
        const body = JSON.stringify({
          object: 'whatsapp_business_account',
          entry: [{ id: '1', changes: [{ field: 'messages', value: {
            messaging_product: 'whatsapp',
            metadata: { display_phone_number: '1', phone_number_id: ch.phone },
            contacts: [{ profile: { name: `C${i}` }, wa_id: from }],
            messages: [{ from, id: `wamid.MP${i}`, timestamp: '1767225600', type: 'text', text: { body: 'hi' } }],
          } }] }],
        });
        const res = await fetch(`${g.baseUrl}${new URL(ch.webhookUrl).pathname}`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', 'X-Hub-Signature-256': `sha256=${bytesToHex(await hmac('SHA-256', SECRET, body))}` },
          body,
        });
        return res.status;
      });
    }
    const statuses: number[] = [];
    for (let i = 0; i < posts.length; i += 16) statuses.push(...(await Promise.all(posts.slice(i, i + 16).map((p) => p()))));
    expect(statuses.every((s) => s === 200)).toBe(true);

    // Capacity: utilization 40 → at most 2 conversations per agent across both channels (80%).
    const db = new Database(path.join(dataDir, 'switchboard.sqlite'), { readonly: true });
    const held = () => db.prepare("SELECT count(*) FROM conversations WHERE state IN ('offered','active','wrapup')").pluck().get() as number;
    const deadline = Date.now() + 20_000;
    while (held() < 12 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    await new Promise((r) => setTimeout(r, 500)); // let any straggling dispatch finish

    expect(held()).toBe(12);
    const perAgent = db
      .prepare(
        `SELECT a.id, a.load, coalesce(sum(c.utilization), 0) AS held_util, count(c.id) AS n
         FROM agents a LEFT JOIN conversations c ON c.agent_id = a.id AND c.state IN ('offered','active','wrapup')
         GROUP BY a.id`,
      )
      .all() as Array<{ id: string; load: number; held_util: number; n: number }>;
    for (const a of perAgent) {
      expect(a.held_util).toBeLessThanOrEqual(100);
      expect(a.load).toBe(a.held_util); // the denormalized load matches the conversations held
      expect(a.n).toBe(2);
    }
    const perAgentChannel = db
      .prepare(
        "SELECT agent_id, channel_id, count(*) AS n FROM conversations WHERE state IN ('offered','active','wrapup') GROUP BY agent_id, channel_id",
      )
      .all() as Array<{ n: number }>;
    for (const r of perAgentChannel) expect(r.n).toBeLessThanOrEqual(2);
    expect(db.prepare("SELECT count(*) FROM conversations WHERE state = 'queued'").pluck().get()).toBe(108);
    expectHoldCountersConsistent(db);
    db.close();
  });
});
