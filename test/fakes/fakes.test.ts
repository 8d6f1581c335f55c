import { afterEach, describe, expect, it } from 'vitest';
import {
  createFakeCallbackReceiver,
  createFakeTelegram,
  createFakeWaba,
  createFakeWaha,
  metaError,
  telegramError,
  type FakeServer,
} from './index.js';

const open: FakeServer[] = [];
async function track<T extends FakeServer>(p: Promise<T>): Promise<T> {
  const f = await p;
  open.push(f);
  return f;
}
afterEach(async () => {
  await Promise.all(open.splice(0).map((f) => f.close()));
});

const wabaBody = { messaging_product: 'whatsapp', to: '4915112345678', type: 'text', text: { body: 'x' } };
function postJson(url: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

describe('fake servers', () => {
  it('binds 127.0.0.1 on a free port', async () => {
    const fake = await track(createFakeWaba());
    expect(fake.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(fake.port).toBeGreaterThan(0);
  });

  it('answers from the script in order, then falls back to success with fresh ids', async () => {
    const fake = await track(createFakeWaba({ accessToken: 't' }));
    fake.script([{ status: 500 }, metaError(131047)]);
    expect(fake.pending).toBe(2);
    const auth = { authorization: 'Bearer t' };
    const statuses: number[] = [];
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) {
      const res = await postJson(`${fake.url}/v23.0/123/messages`, wabaBody, auth);
      statuses.push(res.status);
      if (res.ok) ids.push(((await res.json()) as { messages: { id: string }[] }).messages[0]!.id);
    }
    expect(statuses).toEqual([500, 400, 200, 200]);
    expect(new Set(ids).size).toBe(2);
    expect(fake.pending).toBe(0);
    expect(fake.requests.map((r) => r.status)).toEqual([500, 400, 200, 200]);
  });

  it('serves WABA with and without a version segment, and checks the bearer token', async () => {
    const fake = await track(createFakeWaba({ accessToken: 't', phoneNumberId: '123' }));
    expect((await postJson(`${fake.url}/123/messages`, wabaBody, { authorization: 'Bearer t' })).status).toBe(200);
    const bad = await postJson(`${fake.url}/v23.0/123/messages`, wabaBody, { authorization: 'Bearer nope' });
    expect(bad.status).toBe(401);
    expect(((await bad.json()) as { error: { code: number } }).error.code).toBe(190);
    const wrongPhone = await postJson(`${fake.url}/v23.0/999/messages`, wabaBody, { authorization: 'Bearer t' });
    expect(((await wrongPhone.json()) as { error: { code: number } }).error.code).toBe(100);
  });

  it('does not consume the script on requests its checks reject', async () => {
    const fake = await track(createFakeWaba({ accessToken: 't' }));
    fake.script({ status: 503 });
    expect((await postJson(`${fake.url}/v23.0/1/messages`, wabaBody)).status).toBe(401);
    expect((await postJson(`${fake.url}/v23.0/1/messages`, wabaBody, { authorization: 'Bearer t' })).status).toBe(503);
  });

  it('records unknown routes as 404', async () => {
    const fake = await track(createFakeWaha());
    expect((await postJson(`${fake.url}/nope`, {})).status).toBe(404);
    expect(fake.requests[0]).toMatchObject({ path: '/nope', status: 404 });
  });

  it('records headers, parsed body, raw body and time', async () => {
    const fake = await track(createFakeWaha({ apiKey: 'k' }));
    const before = Date.now();
    const body = { session: 'default', chatId: '49@c.us', text: 'hi' };
    const res = await postJson(`${fake.url}/api/sendText`, body, { 'x-api-key': 'k' });
    expect(res.status).toBe(201);
    const req = fake.requests[0]!;
    expect(req.headers['x-api-key']).toBe('k');
    expect(req.body).toEqual(body);
    expect(req.rawBody).toBe(JSON.stringify(body));
    expect(req.at).toBeGreaterThanOrEqual(before);
    expect(req.response).toMatchObject({ fromMe: true, to: '49@c.us', body: 'hi' });
  });

  it('can skip bodies, or recording altogether, while counting', async () => {
    const slim = await track(createFakeTelegram({ recordBodies: false }));
    await postJson(`${slim.url}/bot1:a/sendMessage`, { chat_id: 1, text: 'x' });
    expect(slim.requests[0]).toMatchObject({ body: undefined, rawBody: '', status: 200 });
    expect(slim.requests[0]!.response).toBeUndefined();

    const none = await track(createFakeTelegram({ recordRequests: false }));
    await postJson(`${none.url}/bot1:a/sendMessage`, { chat_id: 1, text: 'x' });
    await postJson(`${none.url}/bot1:a/sendMessage`, { chat_id: 1, text: 'y' });
    expect(none.requests).toHaveLength(0);
    expect(none.requestCount).toBe(2);
  });

  it('applies latencyMs to every answer, and delayMs per scripted answer', async () => {
    const fake = await track(createFakeTelegram({ latencyMs: 60 }));
    const t = Date.now();
    await postJson(`${fake.url}/bot1:a/sendMessage`, { chat_id: 1, text: 'x' });
    expect(Date.now() - t).toBeGreaterThanOrEqual(55);
    fake.script({ delayMs: 0 });
    await postJson(`${fake.url}/bot1:a/sendMessage`, { chat_id: 1, text: 'x' });
    expect(fake.requests.map((r) => r.status)).toEqual([200, 200]);
  });

  it('sends malformed bodies and drops connections on request', async () => {
    const fake = await track(createFakeWaha());
    fake.script([{ status: 200, rawBody: '{"id":' }, { drop: true }]);
    const res = await postJson(`${fake.url}/api/sendText`, { session: 's', chatId: 'c', text: 't' }, { 'x-api-key': 'k' });
    expect(await res.text()).toBe('{"id":');
    await expect(postJson(`${fake.url}/api/sendText`, { session: 's', chatId: 'c', text: 't' }, { 'x-api-key': 'k' })).rejects.toThrow();
  });

  it('setDefault replaces the success answer until reset', async () => {
    const fake = await track(createFakeTelegram());
    fake.setDefault((req) => ((req.body as { chat_id: number }).chat_id === 13 ? telegramError(403, 'Forbidden') : { status: 200 }));
    expect((await postJson(`${fake.url}/bot1:a/sendMessage`, { chat_id: 13, text: 'x' })).status).toBe(403);
    expect((await postJson(`${fake.url}/bot1:a/sendMessage`, { chat_id: 14, text: 'x' })).status).toBe(200);
    fake.setDefault({ status: 502 });
    expect((await postJson(`${fake.url}/bot1:a/sendMessage`, { chat_id: 14, text: 'x' })).status).toBe(502);
    fake.reset();
    expect(fake.requests).toHaveLength(0);
    expect((await postJson(`${fake.url}/bot1:a/sendMessage`, { chat_id: 14, text: 'x' })).status).toBe(200);
  });

  it('Telegram: checks the token, validates the body and numbers messages', async () => {
    const fake = await track(createFakeTelegram({ botToken: '1:good' }));
    expect((await postJson(`${fake.url}/bot1:bad/sendMessage`, { chat_id: 1, text: 'x' })).status).toBe(401);
    expect((await postJson(`${fake.url}/bot1:good/sendMessage`, { chat_id: 1 })).status).toBe(400);
    const a = (await (await postJson(`${fake.url}/bot1:good/sendMessage`, { chat_id: 5, text: 'x' })).json()) as {
      result: { message_id: number; chat: { id: number }; text: string };
    };
    const b = (await (await postJson(`${fake.url}/bot1:good/sendMessage`, { chat_id: 5, text: 'y' })).json()) as typeof a;
    expect(b.result.message_id).toBe(a.result.message_id + 1);
    expect(a.result).toMatchObject({ chat: { id: 5 }, text: 'x' });
  });

  it('callback receiver: rejects missing, wrong and stale signatures', async () => {
    const secret = `whsec_${Buffer.from('k'.repeat(32)).toString('base64')}`;
    const fake = await track(createFakeCallbackReceiver({ secret }));
    expect((await postJson(`${fake.url}/x`, {})).status).toBe(401);
    const now = Math.floor(Date.now() / 1000);
    const headers = { 'webhook-id': 'dl_1', 'webhook-timestamp': String(now), 'webhook-signature': 'v1,AAAA' };
    expect((await postJson(`${fake.url}/x`, {}, headers)).status).toBe(401);
    const { createHmac } = await import('node:crypto');
    const sign = (ts: number) =>
      createHmac('sha256', Buffer.from('k'.repeat(32))).update(`dl_1.${ts}.{}`).digest('base64');
    const good = { ...headers, 'webhook-signature': `v1,AAAA v1,${sign(now)}` };
    expect((await postJson(`${fake.url}/x`, {}, good)).status).toBe(200);
    const stale = { ...headers, 'webhook-timestamp': String(now - 600), 'webhook-signature': `v1,${sign(now - 600)}` };
    expect((await postJson(`${fake.url}/x`, {}, stale)).status).toBe(401);
    expect(fake.requests.map((r) => r.response)).toEqual([
      { error: 'missing_headers' },
      { error: 'bad_signature' },
      { ok: true },
      { error: 'stale_timestamp' },
    ]);
  });

  it('closes even with a delayed answer in flight', async () => {
    const fake = await createFakeWaha();
    fake.script({ delayMs: 10_000 });
    const pending = postJson(`${fake.url}/api/sendText`, { session: 's', chatId: 'c', text: 't' }, { 'x-api-key': 'k' }).catch(
      (e: unknown) => e,
    );
    await new Promise((r) => setTimeout(r, 50));
    const t = Date.now();
    await fake.close();
    expect(Date.now() - t).toBeLessThan(1000);
    expect(await pending).toBeInstanceOf(Error);
  });
});
