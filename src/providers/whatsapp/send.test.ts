import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createFakeWaha, unusedUrl, type FakeServer, type ScriptedReply } from '../../../test/fakes/index.js';
import type { OutboundMessage, SendContext, SendResult } from '../types.js';
import { sendWhatsApp, toWahaChatId } from './send.js';

const API_KEY = 'waha-api-key-0123456789abcdef';

let fake: FakeServer;
const results: SendResult[] = [];

beforeAll(async () => {
  fake = await createFakeWaha({ apiKey: API_KEY });
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.reset();
});

function config(over: Partial<{ baseUrl: string; session: string; apiKey: string }> = {}) {
  return { baseUrl: fake.url, session: 'default', apiKey: API_KEY, ...over };
}

function message(over: Partial<OutboundMessage> = {}): OutboundMessage {
  return {
    messageId: 'msg_1',
    deliveryId: 'dl_1',
    conversationId: 'cv_1',
    agentId: null,
    to: '4915112345678',
    content: { text: 'Hi' },
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
  const result = await sendWhatsApp(cfg, msg, ctx);
  results.push(result);
  return result;
}

describe('sendWhatsApp (WAHA)', () => {
  it('posts /api/sendText with the api key and returns the WAHA message id', async () => {
    const result = await send();

    expect(fake.requests).toHaveLength(1);
    const req = fake.requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.path).toBe('/api/sendText');
    expect(req.headers['x-api-key']).toBe(API_KEY);
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.body).toEqual({ session: 'default', chatId: '4915112345678@c.us', text: 'Hi' });
    const id = (req.response as { id: string }).id;
    expect(id).toMatch(/^true_4915112345678@c\.us_[0-9A-F]+$/);
    expect(result).toEqual({ ok: true, providerMessageId: id, httpStatus: 201 });
  });

  it('tolerates a trailing slash on baseUrl', async () => {
    await send(message(), context(), config({ baseUrl: `${fake.url}/` }));
    expect(fake.requests[0]!.path).toBe('/api/sendText');
  });

  it('adds reply_to when replying', async () => {
    await send(message({ replyToProviderMessageId: 'false_4915112345678@c.us_3EB0ABCDEF' }));
    expect(fake.requests[0]!.body).toEqual({
      session: 'default',
      chatId: '4915112345678@c.us',
      text: 'Hi',
      reply_to: 'false_4915112345678@c.us_3EB0ABCDEF',
    });
  });

  it('reads an object id (_serialized)', async () => {
    fake.script({ status: 200, body: { id: { fromMe: true, remote: '4915112345678@c.us', id: 'ABC', _serialized: 'true_4915112345678@c.us_ABC' } } });
    expect(await send()).toEqual({ ok: true, providerMessageId: 'true_4915112345678@c.us_ABC', httpStatus: 200 });
  });

  it('treats a 2xx without an id as sent (no id)', async () => {
    fake.script({ status: 201, rawBody: 'OK' });
    expect(await send()).toEqual({ ok: true, providerMessageId: null, httpStatus: 201 });
  });

  it('refuses templates without calling WAHA', async () => {
    const result = await send(message({ content: { template: { name: 't', language: { code: 'en' } } } }));
    expect(result).toMatchObject({ ok: false, retryable: false, code: 'template_unsupported' });
    expect(fake.requestCount).toBe(0);
  });

  it.each([
    ['4915112345678', '4915112345678@c.us'],
    ['+49 151 1234-5678', '4915112345678@c.us'],
    ['120363025555555555@g.us', '120363025555555555@g.us'],
    ['4915112345678@c.us', '4915112345678@c.us'],
    ['', undefined],
    ['+', undefined],
  ])('toWahaChatId(%j) → %j', (to, chatId) => {
    expect(toWahaChatId(to)).toBe(chatId);
  });

  it('fails a recipient without digits permanently', async () => {
    expect(await send(message({ to: 'n/a' }))).toMatchObject({ ok: false, retryable: false, code: 'invalid_recipient' });
    expect(fake.requestCount).toBe(0);
  });

  type Expected = { retryable: boolean; code: string; httpStatus: number; retryAfterMs?: number };
  it.each<[string, ScriptedReply, Expected]>([
    ['500', { status: 500, body: { statusCode: 500, message: 'Session not ready' } }, { retryable: true, code: 'http_500', httpStatus: 500 }],
    ['502 without body', { status: 502 }, { retryable: true, code: 'http_502', httpStatus: 502 }],
    ['429 with Retry-After', { status: 429, headers: { 'retry-after': '2' } }, { retryable: true, code: 'http_429', httpStatus: 429, retryAfterMs: 2000 }],
    ['401', { status: 401, body: { message: 'Unauthorized', statusCode: 401 } }, { retryable: false, code: 'http_401', httpStatus: 401 }],
    ['404 session', { status: 404, body: { message: 'Session "default" does not exist' } }, { retryable: false, code: 'http_404', httpStatus: 404 }],
    ['422 message array', { status: 422, body: { message: ['chatId must be a string'], error: 'Unprocessable Entity' } }, { retryable: false, code: 'http_422', httpStatus: 422 }],
  ])('classifies %s', async (_name, reply, expected) => {
    fake.script(reply);
    const result = await send();
    expect(result).toMatchObject({ ok: false, ...expected });
  });

  it('quotes WAHA error messages', async () => {
    fake.script({ status: 422, body: { message: ['chatId must be a string', 'text is empty'] } });
    const result = await send();
    if (!result.ok) expect(result.message).toBe('WAHA HTTP 422: chatId must be a string; text is empty');
  });

  it('gets 401 from the fake with a wrong api key', async () => {
    const result = await send(message(), context(), config({ apiKey: 'wrong' }));
    expect(result).toMatchObject({ ok: false, retryable: false, code: 'http_401', httpStatus: 401 });
  });

  it('times out as retryable', async () => {
    fake.script({ delayMs: 1500 });
    expect(await send(message(), context({ timeoutMs: 100 }))).toMatchObject({ ok: false, retryable: true, code: 'timeout' });
  });

  it('reports a refused connection as a retryable network error', async () => {
    const result = await send(message(), context(), config({ baseUrl: await unusedUrl() }));
    expect(result).toMatchObject({ ok: false, retryable: true, code: 'network' });
  });

  it('redacts the api key when an error echoes it', async () => {
    fake.script({ status: 401, body: { message: `Invalid key ${API_KEY}` } });
    const result = await send();
    if (!result.ok) expect(result.message).toBe('WAHA HTTP 401: Invalid key [redacted]');
  });

  it('never returns the api key in any result', () => {
    expect(results.length).toBeGreaterThan(12);
    expect(JSON.stringify(results)).not.toContain(API_KEY);
  });
});
