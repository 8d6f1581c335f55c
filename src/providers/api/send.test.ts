import { createHmac } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  createFakeCallbackReceiver,
  unusedUrl,
  verifyStandardWebhook,
  type FakeServer,
  type ScriptedReply,
} from '../../../test/fakes/index.js';
import type { OutboundMessage, SendContext, SendResult } from '../types.js';
import { sendApi } from './send.js';
import { signStandardWebhook } from './sign.js';
import { macEngines } from '../../../test/mac-engines.js';

const SECRET = `whsec_${Buffer.from('0123456789abcdef0123456789abcdef').toString('base64')}`;

let fake: FakeServer;
const results: SendResult[] = [];

beforeAll(async () => {
  fake = await createFakeCallbackReceiver({ secret: SECRET });
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.reset();
});

function config(over: Partial<{ callbackUrl: string; secret: string }> = {}) {
  return { callbackUrl: `${fake.url}/hooks/switchboard`, secret: SECRET, ...over };
}

function message(over: Partial<OutboundMessage> = {}): OutboundMessage {
  return {
    messageId: 'msg_abc',
    deliveryId: 'dl_xyz',
    conversationId: 'cv_123',
    agentId: 'ag_7',
    to: 'crm-42',
    content: { text: 'It ships today.' },
    ...over,
  };
}

function context(over: Partial<SendContext> = {}): SendContext {
  return {
    fetch: globalThis.fetch,
    graphApiBaseUrl: 'http://127.0.0.1:9',
    telegramApiBaseUrl: 'http://127.0.0.1:9',
    now: Date.now(),
    timeoutMs: 2000,
    ...over,
  };
}

async function send(msg = message(), ctx = context(), cfg = config()) {
  const result = await sendApi(cfg, msg, ctx);
  results.push(result);
  return result;
}

describe('signStandardWebhook', () => {
  it.each(macEngines)('matches the Standard Webhooks reference vector (%s)', async (_name, engine) => {
    const sig = await signStandardWebhook(
      'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      'msg_p5jXN8AQM9LWM0D4loKWxJek',
      1614265330,
      '{"test": 2432232314}',
      engine,
    );
    expect(sig).toBe('v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=');
  });

  it('accepts a bare base64 key like the reference libraries', async () => {
    const bare = SECRET.slice('whsec_'.length);
    expect(await signStandardWebhook(bare, 'a', 1, 'b')).toBe(await signStandardWebhook(SECRET, 'a', 1, 'b'));
  });

  it('rejects a secret that is not base64 without quoting it', async () => {
    const bad = 'whsec_not*base64!';
    await expect(signStandardWebhook(bad, 'a', 1, 'b')).rejects.toThrow(/not whsec_ followed by base64/);
    await expect(signStandardWebhook(bad, 'a', 1, 'b')).rejects.not.toThrow(bad);
  });
});

describe('sendApi', () => {
  it('posts a signed message.created event and returns our message id', async () => {
    const now = Date.now();
    const result = await send(message(), context({ now }));

    expect(result).toEqual({ ok: true, providerMessageId: 'msg_abc', httpStatus: 200 });
    expect(fake.requests).toHaveLength(1);
    const req = fake.requests[0]!;
    expect(req.status).toBe(200); // the fake verified the signature
    expect(req.method).toBe('POST');
    expect(req.path).toBe('/hooks/switchboard');
    expect(req.rawBody).toBe(
      JSON.stringify({
        type: 'message.created',
        timestamp: new Date(now).toISOString(),
        data: {
          conversationId: 'cv_123',
          contact: { id: 'crm-42' },
          message: { id: 'msg_abc', text: 'It ships today.', agentId: 'ag_7' },
        },
      }),
    );
    const ts = String(Math.floor(now / 1000));
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers['webhook-id']).toBe('dl_xyz');
    expect(req.headers['webhook-timestamp']).toBe(ts);
    const key = Buffer.from(SECRET.slice('whsec_'.length), 'base64');
    const expected = createHmac('sha256', key).update(`dl_xyz.${ts}.${req.rawBody}`).digest('base64');
    expect(req.headers['webhook-signature']).toBe(`v1,${expected}`);
    expect(verifyStandardWebhook(SECRET, req.headers, req.rawBody)).toBe('ok');
  });

  it('sends agentId null for messages without an agent', async () => {
    await send(message({ agentId: null }));
    expect(fake.requests[0]!.body).toMatchObject({ data: { message: { agentId: null } } });
  });

  it('keeps webhook-id across retries while the timestamp and signature change', async () => {
    const now = Date.now();
    await send(message(), context({ now: now - 5000 }));
    await send(message(), context({ now }));
    const [a, b] = fake.requests;
    expect(a!.headers['webhook-id']).toBe('dl_xyz');
    expect(b!.headers['webhook-id']).toBe('dl_xyz');
    expect(a!.headers['webhook-timestamp']).not.toBe(b!.headers['webhook-timestamp']);
    expect(a!.headers['webhook-signature']).not.toBe(b!.headers['webhook-signature']);
    expect([a!.status, b!.status]).toEqual([200, 200]);
  });

  it('is refused by a receiver holding another secret', async () => {
    const other = `whsec_${Buffer.from('another-secret-another-secret!!').toString('base64')}`;
    const result = await send(message(), context(), config({ secret: other }));
    expect(result).toMatchObject({ ok: false, retryable: false, code: 'http_401', httpStatus: 401 });
    expect(fake.requests[0]!.response).toEqual({ error: 'bad_signature' });
  });

  it('fails an invalid secret permanently without sending', async () => {
    const result = await send(message(), context(), config({ secret: 'whsec_###' }));
    expect(result).toMatchObject({ ok: false, retryable: false, code: 'invalid_secret' });
    expect(fake.requestCount).toBe(0);
  });

  it('refuses templates without sending', async () => {
    const result = await send(message({ content: { template: { name: 't', language: { code: 'en' } } } }));
    expect(result).toMatchObject({ ok: false, retryable: false, code: 'template_unsupported' });
    expect(fake.requestCount).toBe(0);
  });

  it.each([200, 201, 202, 204])('treats %i as delivered', async (status) => {
    fake.script({ status });
    expect(await send()).toEqual({ ok: true, providerMessageId: 'msg_abc', httpStatus: status });
  });

  type Expected = { retryable: boolean; code: string; httpStatus: number; retryAfterMs?: number };
  it.each<[string, ScriptedReply, Expected]>([
    ['410 gone', { status: 410 }, { retryable: false, code: 'gone', httpStatus: 410 }],
    ['503 with webhook-delivery: abort-message (stop retrying this one)', { status: 503, headers: { 'webhook-delivery': 'abort-message' } }, { retryable: false, code: 'aborted_by_receiver', httpStatus: 503 }],
    ['503 with Retry-After: 5', { status: 503, headers: { 'retry-after': '5' } }, { retryable: true, code: 'http_503', httpStatus: 503, retryAfterMs: 5000 }],
    ['429 with Retry-After: 120', { status: 429, headers: { 'retry-after': '120' } }, { retryable: true, code: 'http_429', httpStatus: 429, retryAfterMs: 120_000 }],
    ['502', { status: 502 }, { retryable: true, code: 'http_502', httpStatus: 502 }],
    ['504', { status: 504 }, { retryable: true, code: 'http_504', httpStatus: 504 }],
    ['500', { status: 500, body: { error: 'boom' } }, { retryable: true, code: 'http_500', httpStatus: 500 }],
    ['408', { status: 408 }, { retryable: true, code: 'http_408', httpStatus: 408 }],
    ['400', { status: 400 }, { retryable: false, code: 'http_400', httpStatus: 400 }],
    ['404', { status: 404 }, { retryable: false, code: 'http_404', httpStatus: 404 }],
    ['422', { status: 422 }, { retryable: false, code: 'http_422', httpStatus: 422 }],
  ])('classifies %s', async (_name, reply, expected) => {
    fake.script(reply);
    const result = await send();
    expect(result).toMatchObject({ ok: false, ...expected });
    if (expected.retryAfterMs === undefined) expect((result as { retryAfterMs?: number }).retryAfterMs).toBeUndefined();
  });

  it.each([301, 302, 307, 308])('fails a %i redirect without following it', async (status) => {
    fake.script({ status, headers: { location: `${fake.url}/moved` } });
    const result = await send();
    expect(result).toMatchObject({ ok: false, retryable: false, code: `http_${status}`, httpStatus: status });
    expect(fake.requestCount).toBe(1);
  });

  it('times out as retryable', async () => {
    fake.script({ delayMs: 1500 });
    expect(await send(message(), context({ timeoutMs: 100 }))).toMatchObject({ ok: false, retryable: true, code: 'timeout' });
  });

  it('reports a refused connection as a retryable network error', async () => {
    const result = await send(message(), context(), config({ callbackUrl: `${await unusedUrl()}/hook` }));
    expect(result).toMatchObject({ ok: false, retryable: true, code: 'network' });
  });

  it('fails an unparseable callback URL permanently', async () => {
    const result = await send(message(), context(), config({ callbackUrl: 'not a url' }));
    expect(result).toMatchObject({ ok: false, retryable: false, code: 'invalid_url' });
  });

  it('never returns the secret in any result', () => {
    expect(results.length).toBeGreaterThan(20);
    expect(JSON.stringify(results)).not.toContain(SECRET);
    expect(JSON.stringify(results)).not.toContain(SECRET.slice('whsec_'.length));
  });
});
