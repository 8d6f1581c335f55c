import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { removeTempDataDirs, tempDataDir, uniquePrefix } from './harness.js';
import { startGatewayProcess, type GatewayProcess } from './process.js';
import { SseReader } from './sse.js';

let gw: GatewayProcess | null = null;
afterEach(async () => {
  await gw?.stop('SIGKILL');
  gw = null;
  removeTempDataDirs();
});

describe('gateway process', () => {
  it('generates an admin token once, serves the API over HTTP, and shuts down gracefully', async () => {
    const dataDir = tempDataDir();
    const env = { DATA_DIR: dataDir, QUEUE_PREFIX: uniquePrefix(), PUBLIC_BASE_URL: 'https://gw.example.test' };
    gw = await startGatewayProcess(env);
    const tokenFile = path.join(dataDir, 'admin-token');
    const token = readFileSync(tokenFile, 'utf8').trim();
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(gw.output()).toContain(token);

    const auth = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
    expect((await fetch(`${gw.baseUrl}/api/channels`)).status).toBe(401);
    const agentRes = await fetch(`${gw.baseUrl}/api/agents`, { method: 'POST', headers: auth, body: JSON.stringify({ name: 'Ana', email: 'ana@example.com' }) });
    expect(agentRes.status).toBe(201);
    const agent = (await agentRes.json()) as { id: string };
    const chRes = await fetch(`${gw.baseUrl}/api/channels`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify({
        name: 'Support',
        conversationType: 'social',
        messenger: { provider: 'telegram', botToken: '123456789:AAH-abcdefghijklmnopqrstuvwxyz012', secretToken: 'tg-secret-1' },
        handling: { utilization: 25, autoAssignLimit: 3, autoAnswer: true },
        agentIds: [agent.id],
      }),
    });
    expect(chRes.status).toBe(201);
    const ch = (await chRes.json()) as { webhookUrl: string };
    expect(ch.webhookUrl).toMatch(/^https:\/\/gw\.example\.test\/webhooks\//);
    expect(JSON.stringify(ch)).not.toContain('tg-secret-1');
    expect((await fetch(`${gw.baseUrl}/readyz`)).status).toBe(200);

    // Every answer echoes its request id, success or problem, generated or the caller's (once).
    const created = chRes.headers.get('x-request-id');
    expect(created).toMatch(/^[0-9a-f-]{36}$/);
    // The access-log line is written after the answer is sent, and reaches us through a pipe: wait for it.
    const started = gw;
    await vi.waitFor(() => expect(started.output()).toContain(`"requestId":"${created}"`), { timeout: 5_000 });
    const refused = await fetch(`${gw.baseUrl}/api/channels`, { headers: { 'X-Request-Id': 'caller-id.42' } });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('content-type')).toBe('application/problem+json');
    expect(refused.headers.get('x-request-id')).toBe('caller-id.42');
    expect(((await refused.json()) as { requestId?: string }).requestId).toBe('caller-id.42');
    const unsafe = await fetch(`${gw.baseUrl}/healthz`, { headers: { 'X-Request-Id': 'bad id with spaces' } });
    expect(unsafe.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);

    // Request log lines carry a request id and no secrets.
    expect(gw.output()).toMatch(/"requestId":"[^"]+"/);
    expect(gw.output()).not.toContain('tg-secret-1');
    expect(gw.output()).not.toContain('AAH-abcdefghijklmnopqrstuvwxyz012');

    expect(await gw.stop('SIGTERM')).toBe(0);

    // A restart reuses the stored token and does not print it again.
    gw = await startGatewayProcess(env);
    expect(gw.output()).not.toContain(token);
    const again = await fetch(`${gw.baseUrl}/api/agents`, { headers: auth });
    expect(again.status).toBe(200);
    expect(((await again.json()) as { data: unknown[] }).data).toHaveLength(1);
    expect(await gw.stop('SIGTERM')).toBe(0);
  });

  it('reports Redis as not ready when it is unreachable, while still serving', async () => {
    gw = await startGatewayProcess({
      DATA_DIR: tempDataDir(),
      ADMIN_TOKEN: 'integration-admin-token-1',
      QUEUE_PREFIX: uniquePrefix(),
      REDIS_URL: 'redis://127.0.0.1:1',
    });
    const res = await fetch(`${gw.baseUrl}/readyz`);
    expect(res.status).toBe(503);
    const body = (await res.json()) as { unreachable: string[] };
    expect(body.unreachable).toEqual(['redis']);
    expect((await fetch(`${gw.baseUrl}/healthz`)).status).toBe(200);
  });

  it('stops promptly on SIGTERM with an agent event stream open, ending the stream first', async () => {
    const token = 'integration-admin-token-2';
    gw = await startGatewayProcess({ DATA_DIR: tempDataDir(), ADMIN_TOKEN: token, QUEUE_PREFIX: uniquePrefix() });
    const auth = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
    const agent = (await (await fetch(`${gw.baseUrl}/api/agents`, { method: 'POST', headers: auth, body: JSON.stringify({ name: 'Ana', email: 'ana@example.com' }) })).json()) as { id: string; token: string };
    const stream = new SseReader(await fetch(`${gw.baseUrl}/api/agents/${agent.id}/events`, { headers: { Authorization: `Bearer ${agent.token}` } }));
    await stream.next('ready');
    const started = Date.now();
    const exited = gw.stop('SIGTERM');
    expect((await stream.next('end', 5_000)).data).toEqual({ reason: 'shutting down' });
    expect(await exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(10_000); // the forced exit comes at 25 s, with code 1
    await stream.close();
  });

  it('stops on SIGTERM while Redis is unreachable, instead of waiting for it until the forced exit', async () => {
    gw = await startGatewayProcess({ DATA_DIR: tempDataDir(), ADMIN_TOKEN: 'integration-admin-token-3', QUEUE_PREFIX: uniquePrefix(), REDIS_URL: 'redis://127.0.0.1:1' });
    const started = Date.now();
    expect(await gw.stop('SIGTERM')).toBe(0);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(gw.output()).toContain('queue workers did not stop within 10s');
  }, 30_000);

  it('fails fast naming every bad configuration key', async () => {
    await expect(
      startGatewayProcess({ DATA_DIR: tempDataDir(), PORT: '70000', LOG_LEVEL: 'loud', DELIVERY_RETRY_SCHEDULE: '5s,soon' }),
    ).rejects.toThrow(/PORT[\s\S]*LOG_LEVEL[\s\S]*DELIVERY_RETRY_SCHEDULE/);
  });
});
