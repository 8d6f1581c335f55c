import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { channelBody, createHarness, json, type Harness } from '../../../test/harness.js';

let h: Harness;
beforeEach(() => {
  h = createHarness();
});
afterEach(async () => {
  await h.close();
});

const secrets = ['EAAG-secret-access-token', 'app-secret-abc123', 'verify-me-please'];

describe('channels API', () => {
  it('creates a channel with a webhook URL and never returns a secret', async () => {
    const agent = await json(await h.api('POST', '/api/agents', { name: 'Ana', email: 'ana@example.com' }));
    const code = await json(await h.api('POST', '/api/completion-codes', { code: 'resolved', label: 'Resolved' }));
    const res = await h.api(
      'POST',
      '/api/channels',
      channelBody({
        agentIds: [agent.id],
        handling: { utilization: 50, autoAssignLimit: 2, autoAnswer: false, notificationTimeoutSec: 30, completionCodeIds: [code.id], completionCodeTimeoutSec: 60 },
      }),
    );
    expect(res.status).toBe(201);
    const body = await json(res);
    expect(body.id).toMatch(/^ch_/);
    expect(body.webhookUrl).toMatch(/^https:\/\/sb\.example\.test\/webhooks\/[A-Za-z0-9_-]{16,}$/);
    expect(body.agentIds).toEqual([agent.id]);
    expect(body.handling).toEqual({
      utilization: 50, autoAssignLimit: 2, autoAnswer: false, notificationTimeoutSec: 30, completionCodeIds: [code.id], completionCodeTimeoutSec: 60,
    });
    expect(body.messenger).toEqual({ provider: 'whatsapp_business', phoneNumberId: expect.any(String) });
    const all = JSON.stringify([body, await json(await h.api('GET', `/api/channels/${body.id}`)), await json(await h.api('GET', '/api/channels'))]);
    for (const s of secrets) expect(all).not.toContain(s);
    expect(h.logs.text).not.toContain('app-secret-abc123');
  });

  it('generates an api channel secret and shows it only at creation', async () => {
    const res = await h.api('POST', '/api/channels', channelBody({ messenger: { provider: 'api', callbackUrl: 'https://crm.example/hook' }, writeFirst: { enabled: false, channelId: null } }));
    expect(res.status).toBe(201);
    const body = await json(res);
    expect(body.messenger.secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    const again = await json(await h.api('GET', `/api/channels/${body.id}`));
    expect(again.messenger).toEqual({ provider: 'api', callbackUrl: 'https://crm.example/hook' });
  });

  it('returns the secret a PATCH to another provider generates, once', async () => {
    const tg = await json(await h.api('POST', '/api/channels', channelBody({ messenger: { provider: 'telegram', botToken: '123456789:AAH-abcdefghijklmnopqrstuvwxyz012' } })));
    const res = await h.api('PATCH', `/api/channels/${tg.id}`, { messenger: { provider: 'api', callbackUrl: 'https://crm.example/hook' }, writeFirst: { enabled: false } });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.messenger.secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    expect(h.deps.services.channels.load(tg.id).messenger).toMatchObject({ provider: 'api', secret: body.messenger.secret });
    expect((await json(await h.api('GET', `/api/channels/${tg.id}`))).messenger).toEqual({ provider: 'api', callbackUrl: 'https://crm.example/hook' });
  });

  it('refuses to move a channel that has contacts to another provider (their ids are the old one\'s), 409 on messenger.provider', async () => {
    const tg = await json(await h.api('POST', '/api/channels', channelBody({ messenger: { provider: 'telegram', botToken: '123456789:AAH-abcdefghijklmnopqrstuvwxyz012' } })));
    const now = Date.now();
    h.deps.db.$client
      .prepare('INSERT INTO contacts (id, channel_id, provider_contact_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?)')
      .run('ct_tgchat', tg.id, '5012345678', now, now);
    const waba = { provider: 'whatsapp_business', phoneNumberId: '106540352242999', accessToken: 'tok', appSecret: 'app-secret', verifyToken: 'verify-me' };
    const res = await h.api('PATCH', `/api/channels/${tg.id}`, { messenger: waba });
    expect(res.status).toBe(409);
    expect((await json(res)).field).toBe('messenger.provider');
    expect(h.deps.services.channels.load(tg.id).messenger.provider).toBe('telegram');
    // The same provider with other settings is still a PATCH like any other.
    const sameProvider = await h.api('PATCH', `/api/channels/${tg.id}`, { messenger: { provider: 'telegram', botToken: '123456789:AAH-abcdefghijklmnopqrstuvwxyz999' } });
    expect(sameProvider.status).toBe(200);
  });

  it('generates a Telegram secret token when absent', async () => {
    const res = await h.api('POST', '/api/channels', channelBody({ messenger: { provider: 'telegram', botToken: '123456789:AAH-abcdefghijklmnopqrstuvwxyz012' } }));
    expect(res.status).toBe(201);
    const body = await json(res);
    expect(body.messenger.secretToken).toMatch(/^[A-Za-z0-9_-]{16,}$/);
    expect(h.deps.services.channels.load(body.id).messenger).toMatchObject({ secretToken: body.messenger.secretToken });
  });

  it.each([
    ['utilization over 100', { handling: { utilization: 150, autoAssignLimit: 1, autoAnswer: true } }, 'handling.utilization'],
    ['missing notification timeout', { handling: { utilization: 10, autoAssignLimit: 1, autoAnswer: false } }, 'handling.notificationTimeoutSec'],
    ['unknown agent', { agentIds: ['ag_missing'] }, 'agentIds.0'],
    ['unknown provider', { messenger: { provider: 'icq' } }, 'messenger.provider'],
    ['bad conversation type', { conversationType: 'fax' }, 'conversationType'],
  ])('refuses %s with problem+json naming the field, storing nothing', async (_n, override, field) => {
    const res = await h.api('POST', '/api/channels', channelBody(override));
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    const p = await json(res);
    expect(p).toMatchObject({ status: 400, code: 'validation_failed', field });
    expect(p.requestId).toBeTruthy();
    expect((await json(await h.api('GET', '/api/channels'))).data).toHaveLength(0);
  });

  it('refuses malformed JSON and the wrong content type', async () => {
    const bad = await h.api('POST', '/api/channels', '{"name":');
    expect(bad.status).toBe(400);
    expect((await json(bad)).code).toBe('invalid_json');
    const res = await h.app.request('/api/channels', { method: 'POST', headers: { Authorization: 'Bearer test-admin-token-0123456789', 'Content-Type': 'text/plain' }, body: '{}' });
    expect(res.status).toBe(415);
  });

  it('PATCH merges into stored settings and re-validates against stored values', async () => {
    const ch = await json(await h.api('POST', '/api/channels', channelBody()));
    const ok = await h.api('PATCH', `/api/channels/${ch.id}`, { handling: { utilization: 80 }, messenger: { accessToken: 'rotated-token' } });
    expect(ok.status).toBe(200);
    const after = await json(ok);
    expect(after.handling).toMatchObject({ utilization: 80, autoAssignLimit: 2, notificationTimeoutSec: 30 });
    expect(h.deps.services.channels.load(ch.id).messenger).toMatchObject({ accessToken: 'rotated-token', appSecret: 'app-secret-abc123' });

    const refused = await h.api('PATCH', `/api/channels/${ch.id}`, { handling: { autoAnswer: true } });
    expect(refused.status).toBe(400);
    expect((await json(refused)).field).toBe('handling.notificationTimeoutSec');
    expect((await json(await h.api('GET', `/api/channels/${ch.id}`))).handling.autoAnswer).toBe(false);

    const both = await h.api('PATCH', `/api/channels/${ch.id}`, { handling: { autoAnswer: true, notificationTimeoutSec: null } });
    expect(both.status).toBe(200);
    expect((await json(both)).handling).toMatchObject({ autoAnswer: true, notificationTimeoutSec: null });
  });

  it('lets an api channel write first through a Telegram channel, not through another api channel', async () => {
    const tg = await json(await h.api('POST', '/api/channels', channelBody({ messenger: { provider: 'telegram', botToken: '123456789:AAH-abcdefghijklmnopqrstuvwxyz012' } })));
    const apiA = await h.api('POST', '/api/channels', channelBody({ messenger: { provider: 'api', callbackUrl: 'https://crm.example/a' }, writeFirst: { enabled: true, channelId: tg.id } }));
    expect(apiA.status).toBe(201);
    const a = await json(apiA);
    const apiB = await h.api('POST', '/api/channels', channelBody({ messenger: { provider: 'api', callbackUrl: 'https://crm.example/b' }, writeFirst: { enabled: true, channelId: a.id } }));
    expect(apiB.status).toBe(400);
    expect((await json(apiB)).field).toBe('writeFirst.channelId');
    // The telegram channel cannot be deleted while the api channel writes first through it…
    expect((await h.api('DELETE', `/api/channels/${tg.id}`)).status).toBe(409);
    // …nor become a channel that cannot write first.
    const toApi = await h.api('PATCH', `/api/channels/${tg.id}`, { messenger: { provider: 'api', callbackUrl: 'https://crm.example/c' }, writeFirst: { enabled: false } });
    expect(toApi.status).toBe(409);
    expect(await json(toApi)).toMatchObject({ code: 'conflict', field: 'messenger.provider' });
    expect(h.deps.services.channels.load(tg.id).messenger.provider).toBe('telegram');
    expect((await h.api('PATCH', `/api/channels/${a.id}`, { name: 'still valid' })).status).toBe(200);

    // A channel naming itself writes first through itself (stored as no channel), which never
    // keeps it from being deleted; once the api channel is gone, neither does anything else.
    const self = await h.api('PATCH', `/api/channels/${tg.id}`, { writeFirst: { enabled: true, channelId: tg.id } });
    expect(self.status).toBe(200);
    expect((await json(self)).writeFirst).toEqual({ enabled: true, channelId: null });
    expect((await h.api('DELETE', `/api/channels/${a.id}`)).status).toBe(204);
    expect((await h.api('DELETE', `/api/channels/${tg.id}`)).status).toBe(204);
  });

  it('refuses a body nested deeper than 32 levels with 400 naming where, before anything walks it', async () => {
    const deep = `{"name":"x","extra":${'['.repeat(5_000)}${']'.repeat(5_000)}}`;
    const res = await h.api('POST', '/api/channels', deep);
    expect(res.status).toBe(400);
    expect((await json(res)).field).toBe(`extra.${Array(31).fill('0').join('.')}`);
    const ch = await json(await h.api('POST', '/api/channels', channelBody()));
    expect((await h.api('PATCH', `/api/channels/${ch.id}`, deep)).status).toBe(400);
    expect((await json(await h.api('GET', '/api/channels'))).data).toHaveLength(1);
  });

  it('refuses a second channel for the same WhatsApp number', async () => {
    const body = channelBody();
    expect((await h.api('POST', '/api/channels', body)).status).toBe(201);
    const dup = await h.api('POST', '/api/channels', body);
    expect(dup.status).toBe(409);
    expect((await json(dup)).field).toBe('messenger.phoneNumberId');
  });

  it('rotates the webhook key and deletes a channel', async () => {
    const ch = await json(await h.api('POST', '/api/channels', channelBody()));
    const rotated = await json(await h.api('POST', `/api/channels/${ch.id}/rotate-webhook-key`));
    expect(rotated.webhookUrl).not.toBe(ch.webhookUrl);
    expect((await h.api('DELETE', `/api/channels/${ch.id}`)).status).toBe(204);
    expect((await h.api('GET', `/api/channels/${ch.id}`)).status).toBe(404);
    expect((await json(await h.api('GET', '/api/channels'))).data).toHaveLength(0);
  });

  it.each([
    ['no token', null, 401],
    ['wrong token', 'not-the-admin-token-at-all', 401],
  ])('answers %s with %s', async (_n, token, status) => {
    const res = await h.api('GET', '/api/channels', undefined, token);
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
  });

  it('refuses agents on admin routes with 403', async () => {
    const agent = await json(await h.api('POST', '/api/agents', { name: 'Bo', email: 'bo@example.com' }));
    const res = await h.api('POST', '/api/channels', channelBody(), agent.token);
    expect(res.status).toBe(403);
  });
});

describe('agents API', () => {
  it('creates an agent whose token is shown once and authenticates it', async () => {
    const res = await h.api('POST', '/api/agents', { name: 'Ana', email: 'ana@example.com' });
    expect(res.status).toBe(201);
    const agent = await json(res);
    expect(agent.token).toMatch(/^sbat_/);
    expect(agent).toMatchObject({ status: 'offline', substatus: null, load: 0 });
    const fetched = await json(await h.api('GET', `/api/agents/${agent.id}`));
    expect(fetched.token).toBeUndefined();
    expect(JSON.stringify(await json(await h.api('GET', '/api/agents')))).not.toContain(agent.token);

    const self = await h.api('PUT', `/api/agents/${agent.id}/status`, { status: 'online' }, agent.token);
    expect(self.status).toBe(200);
    expect(await json(self)).toMatchObject({ status: 'online', substatus: null });
    const busy = await json(await h.api('PUT', `/api/agents/${agent.id}/status`, { status: 'busy', substatus: 'lunch' }));
    expect(busy).toMatchObject({ status: 'busy', substatus: 'lunch' });
  });

  it('keeps agents to themselves', async () => {
    const a = await json(await h.api('POST', '/api/agents', { name: 'A', email: 'a@example.com' }));
    const b = await json(await h.api('POST', '/api/agents', { name: 'B', email: 'b@example.com' }));
    expect((await h.api('PUT', `/api/agents/${b.id}/status`, { status: 'online' }, a.token)).status).toBe(403);
    expect((await h.api('GET', `/api/agents/${b.id}`, undefined, a.token)).status).toBe(403);
    expect((await h.api('GET', '/api/agents', undefined, a.token)).status).toBe(403);
    expect((await h.api('PATCH', `/api/agents/${a.id}`, { name: 'AA' }, a.token)).status).toBe(403);
  });

  it.each([
    ['bad email', { name: 'X', email: 'nope' }, 'email'],
    ['empty name', { name: '', email: 'x@example.com' }, 'name'],
    ['unknown field', { name: 'X', email: 'x@example.com', role: 'admin' }, 'role'],
  ])('refuses %s', async (_n, body, field) => {
    const res = await h.api('POST', '/api/agents', body);
    expect(res.status).toBe(400);
    expect((await json(res)).field).toBe(field);
  });

  it('takes a channel with thousands of agents (written in chunks, under SQLite\'s variable limit)', async () => {
    const now = Date.now();
    const insert = h.deps.db.$client.prepare('INSERT INTO agents (id, name, email, token_hash, status_changed_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)');
    const ids = h.deps.db.$client.transaction(() =>
      Array.from({ length: 7000 }, (_, i) => {
        const id = `ag_bulk${String(i).padStart(5, '0')}`;
        insert.run(id, `Agent ${i}`, `bulk${i}@example.com`, `hash${i}`, now, now, now);
        return id;
      }),
    )();
    const res = await h.api('POST', '/api/channels', channelBody({ agentIds: ids }));
    expect(res.status).toBe(201);
    const id = (await json(res)).id;
    expect(h.deps.db.$client.prepare('SELECT count(*) FROM channel_agents WHERE channel_id = ?').pluck().get(id)).toBe(7000);
  });

  it('refuses a duplicate email and an unknown status', async () => {
    await h.api('POST', '/api/agents', { name: 'A', email: 'a@example.com' });
    expect((await h.api('POST', '/api/agents', { name: 'A2', email: 'a@example.com' })).status).toBe(409);
    expect((await h.api('POST', '/api/agents', { name: 'A3', email: 'A@Example.COM' })).status).toBe(409); // one mailbox
    expect((await json(await h.api('POST', '/api/agents', { name: 'D', email: 'Dora@Example.com' }))).email).toBe('dora@example.com');
    // Two at once (a double click): one is created, the other is a 409, not a 500.
    const both = await Promise.all(['B1', 'B2'].map((name) => h.api('POST', '/api/agents', { name, email: 'b@example.com' })));
    expect(both.map((r) => r.status).sort()).toEqual([201, 409]);
    expect((await json(both.find((r) => r.status === 409)!)).field).toBe('email');
    const a = await json(await h.api('POST', '/api/agents', { name: 'C', email: 'c@example.com' }));
    const res = await h.api('PUT', `/api/agents/${a.id}/status`, { status: 'away' });
    expect(res.status).toBe(400);
    expect((await json(res)).field).toBe('status');
  });

  it('patches an agent', async () => {
    const a = await json(await h.api('POST', '/api/agents', { name: 'A', email: 'a@example.com' }));
    const res = await h.api('PATCH', `/api/agents/${a.id}`, { name: 'Anna' });
    expect(await json(res)).toMatchObject({ name: 'Anna', email: 'a@example.com' });
    expect((await h.api('PATCH', '/api/agents/ag_nope', { name: 'x' })).status).toBe(404);
  });
});

describe('catalog API', () => {
  it('creates and lists completion codes and chatbots', async () => {
    expect((await h.api('POST', '/api/completion-codes', { code: 'sale', label: 'Sale' })).status).toBe(201);
    expect((await h.api('POST', '/api/completion-codes', { code: 'sale', label: 'Again' })).status).toBe(409);
    expect((await json(await h.api('GET', '/api/completion-codes'))).data).toHaveLength(1);
    const bot = await h.api('POST', '/api/chatbots', { name: 'Greeter', url: 'https://bot.example/hook' });
    expect(bot.status).toBe(201);
    expect((await h.api('POST', '/api/chatbots', { name: 'Bad', url: 'ftp://x' })).status).toBe(400);
    expect((await json(await h.api('GET', '/api/chatbots'))).data).toHaveLength(1);
  });
});

describe('health', () => {
  it('is up and ready with SQLite and Redis', async () => {
    expect((await h.app.request('/healthz')).status).toBe(200);
    const ready = await h.app.request('/readyz');
    expect(ready.status).toBe(200);
    expect(await json(ready)).toMatchObject({ checks: { sqlite: 'ok', redis: 'ok' } });
  });

  it('answers unknown routes with problem+json', async () => {
    const res = await h.app.request('/nope');
    expect(res.status).toBe(404);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
  });
});
