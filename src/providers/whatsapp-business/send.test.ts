import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createFakeWaba, metaError, unusedUrl, type FakeServer, type ScriptedReply } from '../../../test/fakes/index.js';
import type { OutboundMessage, SendContext, SendResult } from '../types.js';
import { classifyMetaErrorCode, sendWhatsAppBusiness } from './send.js';

const TOKEN = 'EAAGtestAccessToken0123456789';
const PHONE_ID = '106540352242922';
const cfg = { phoneNumberId: PHONE_ID, accessToken: TOKEN };

let fake: FakeServer;
const results: SendResult[] = [];

beforeAll(async () => {
  fake = await createFakeWaba({ accessToken: TOKEN, phoneNumberId: PHONE_ID });
});
afterAll(async () => {
  await fake.close();
});
beforeEach(() => {
  fake.reset();
});

function message(over: Partial<OutboundMessage> = {}): OutboundMessage {
  return {
    messageId: 'msg_1',
    deliveryId: 'dl_1',
    conversationId: 'cv_1',
    agentId: 'ag_1',
    to: '4915112345678',
    content: { text: 'Your order shipped.' },
    ...over,
  };
}

function context(over: Partial<SendContext> = {}): SendContext {
  return {
    fetch: globalThis.fetch,
    graphApiBaseUrl: `${fake.url}/v23.0`,
    telegramApiBaseUrl: 'http://127.0.0.1:9',
    now: Date.now(),
    timeoutMs: 2000,
    ...over,
  };
}

async function send(msg = message(), ctx = context(), c: { phoneNumberId: string; accessToken: string } = cfg) {
  const result = await sendWhatsAppBusiness(c, msg, ctx);
  results.push(result);
  return result;
}

describe('sendWhatsAppBusiness', () => {
  it('posts a text message and returns the wamid', async () => {
    const result = await send();

    expect(fake.requests).toHaveLength(1);
    const req = fake.requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.path).toBe(`/v23.0/${PHONE_ID}/messages`);
    expect(req.headers['authorization']).toBe(`Bearer ${TOKEN}`);
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.body).toEqual({
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to: '4915112345678',
      type: 'text',
      text: { preview_url: false, body: 'Your order shipped.' },
    });
    const wamid = (req.response as { messages: { id: string }[] }).messages[0]!.id;
    expect(wamid).toMatch(/^wamid\./);
    expect(result).toEqual({ ok: true, providerMessageId: wamid, httpStatus: 200 });
  });

  it('quotes the message it replies to', async () => {
    await send(message({ replyToProviderMessageId: 'wamid.HBgN-AA=' }));
    expect(fake.requests[0]!.body).toMatchObject({ type: 'text', context: { message_id: 'wamid.HBgN-AA=' } });
  });

  it('sends a template with its components', async () => {
    const components = [{ type: 'body', parameters: [{ type: 'text', text: 'Ana' }] }];
    const result = await send(
      message({ content: { template: { name: 'order_update', language: { code: 'en_US' }, components } } }),
    );
    expect(result.ok).toBe(true);
    expect(fake.requests[0]!.body).toEqual({
      messaging_product: 'whatsapp',
      to: '4915112345678',
      type: 'template',
      template: { name: 'order_update', language: { code: 'en_US' }, components },
    });
  });

  it('omits components when the template has none', async () => {
    await send(message({ content: { template: { name: 'hello_world', language: { code: 'en' } } } }));
    expect(fake.requests[0]!.body).toEqual({
      messaging_product: 'whatsapp',
      to: '4915112345678',
      type: 'template',
      template: { name: 'hello_world', language: { code: 'en' } },
    });
  });

  it('treats a 200 with an unreadable body as sent (no id) rather than risk a duplicate', async () => {
    fake.script({ status: 200, rawBody: '{"messages":' });
    expect(await send()).toEqual({ ok: true, providerMessageId: null, httpStatus: 200 });
  });

  type Expected = { retryable: boolean; code: string; httpStatus: number; retryAfterMs?: number };
  it.each<[string, ScriptedReply, Expected]>([
    ['131047 re-engagement', metaError(131047), { retryable: false, code: '131047', httpStatus: 400 }],
    ['130429 throughput', metaError(130429), { retryable: true, code: '130429', httpStatus: 429 }],
    ['130429 sent as HTTP 400 (code wins)', metaError(130429, { status: 400 }), { retryable: true, code: '130429', httpStatus: 400 }],
    ['190 token expired', metaError(190), { retryable: false, code: '190', httpStatus: 401 }],
    ['0 auth', metaError(0), { retryable: false, code: '0', httpStatus: 401 }],
    ['10 permission', metaError(10), { retryable: false, code: '10', httpStatus: 403 }],
    ['250 permission range', metaError(250), { retryable: false, code: '250', httpStatus: 403 }],
    ['100 invalid parameter', metaError(100), { retryable: false, code: '100', httpStatus: 400 }],
    ['131026 undeliverable', metaError(131026), { retryable: false, code: '131026', httpStatus: 400 }],
    ['132001 template missing', metaError(132001), { retryable: false, code: '132001', httpStatus: 400 }],
    ['368 blocked for policy', metaError(368), { retryable: false, code: '368', httpStatus: 400 }],
    ['131000 generic sent as HTTP 500', metaError(131000), { retryable: true, code: '131000', httpStatus: 500 }],
    ['131000 generic sent as HTTP 400 (code wins)', metaError(131000, { status: 400 }), { retryable: true, code: '131000', httpStatus: 400 }],
    ['131056 pair rate limit', metaError(131056), { retryable: true, code: '131056', httpStatus: 400 }],
    ['131048 spam rate limit', metaError(131048), { retryable: true, code: '131048', httpStatus: 400 }],
    ['131052 media download', metaError(131052), { retryable: true, code: '131052', httpStatus: 400 }],
    ['131057 maintenance waits a minute', metaError(131057), { retryable: true, code: '131057', httpStatus: 400, retryAfterMs: 60_000 }],
    [
      '131057 with Retry-After',
      metaError(131057, { headers: { 'retry-after': '90' } }),
      { retryable: true, code: '131057', httpStatus: 400, retryAfterMs: 90_000 },
    ],
    [
      '4 app rate limit with Retry-After: 7',
      metaError(4, { headers: { 'Retry-After': '7' } }),
      { retryable: true, code: '4', httpStatus: 429, retryAfterMs: 7000 },
    ],
    ['unknown code on HTTP 500 → retry', metaError(999_001, { status: 500 }), { retryable: true, code: '999001', httpStatus: 500 }],
    ['unknown code on HTTP 400 → fail', metaError(999_001, { status: 400 }), { retryable: false, code: '999001', httpStatus: 400 }],
    ['bare 500', { status: 500 }, { retryable: true, code: 'http_500', httpStatus: 500 }],
    ['503 with HTML', { status: 503, rawBody: '<html>down</html>', headers: { 'content-type': 'text/html' } }, { retryable: true, code: 'http_503', httpStatus: 503 }],
    ['bare 429 with Retry-After: 7', { status: 429, headers: { 'retry-after': '7' } }, { retryable: true, code: 'http_429', httpStatus: 429, retryAfterMs: 7000 }],
    ['bare 408', { status: 408 }, { retryable: true, code: 'http_408', httpStatus: 408 }],
    ['400 with malformed body', { status: 400, rawBody: '{"error":' }, { retryable: false, code: 'http_400', httpStatus: 400 }],
    ['3xx is not followed', { status: 302, headers: { location: '/elsewhere' } }, { retryable: false, code: 'http_302', httpStatus: 302 }],
  ])('classifies %s', async (_name, reply, expected) => {
    fake.script(reply);
    const result = await send();
    expect(result).toMatchObject({ ok: false, ...expected });
    if (expected.retryAfterMs === undefined) expect((result as { retryAfterMs?: number }).retryAfterMs).toBeUndefined();
    expect(fake.requests).toHaveLength(1);
  });

  it('puts Meta message, details and fbtrace_id in the message', async () => {
    fake.script(metaError(131047, { message: 'Re-engagement message', details: 'More than 24 hours have passed' }));
    const result = await send();
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.message).toContain('131047');
    expect(result.message).toContain('Re-engagement message');
    expect(result.message).toContain('More than 24 hours have passed');
    expect(result.message).toMatch(/fbtrace_id A[0-9A-F]+/);
  });

  it('parses Retry-After given as an HTTP date', async () => {
    const now = Date.now();
    fake.script(metaError(130429, { headers: { 'retry-after': new Date(now + 30_000).toUTCString() } }));
    const result = await send(message(), context({ now }));
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.retryAfterMs).toBeGreaterThan(28_000);
    expect(result.retryAfterMs).toBeLessThanOrEqual(30_000);
  });

  it('is told apart by the fake when the token is wrong (190, permanent)', async () => {
    const result = await send(message(), context(), { ...cfg, accessToken: 'wrong-token' });
    expect(result).toMatchObject({ ok: false, retryable: false, code: '190', httpStatus: 401 });
  });

  it('times out as retryable when the provider is slower than timeoutMs', async () => {
    fake.script({ delayMs: 1500 });
    const started = Date.now();
    const result = await send(message(), context({ timeoutMs: 100 }));
    expect(result).toMatchObject({ ok: false, retryable: true, code: 'timeout' });
    expect(Date.now() - started).toBeLessThan(1500);
  });

  it('reports a refused connection as a retryable network error', async () => {
    const result = await send(message(), context({ graphApiBaseUrl: await unusedUrl() }));
    expect(result).toMatchObject({ ok: false, retryable: true, code: 'network' });
    if (!result.ok) expect(result.message).toContain('ECONNREFUSED');
  });

  it('reports a dropped connection as a retryable network error', async () => {
    fake.script({ drop: true });
    expect(await send()).toMatchObject({ ok: false, retryable: true, code: 'network' });
  });

  it('redacts the token when Meta echoes it back', async () => {
    fake.script(metaError(190, { message: `Malformed access token ${TOKEN}` }));
    const result = await send();
    expect(result).toMatchObject({ ok: false, code: '190' });
    if (!result.ok) expect(result.message).toContain('[redacted]');
  });

  it('redacts the token from a thrown fetch error', async () => {
    const leaky: typeof fetch = async (input) => {
      throw new TypeError(`request to ${String(input)} failed with Bearer ${TOKEN}`);
    };
    const result = await send(message(), context({ fetch: leaky }));
    expect(result).toMatchObject({ ok: false, retryable: true, code: 'network' });
  });

  it('never returns the access token in any result', () => {
    expect(results.length).toBeGreaterThan(30);
    expect(JSON.stringify(results)).not.toContain(TOKEN);
  });
});

describe('classifyMetaErrorCode', () => {
  it.each([
    [131047, 'permanent'],
    [130429, 'retryable'],
    [200, 'permanent'],
    [299, 'permanent'],
    [300, undefined],
    [80007, 'retryable'],
    [131053, 'retryable'],
    [132012, 'permanent'],
  ] as const)('%i → %s', (code, expected) => {
    expect(classifyMetaErrorCode(code)).toBe(expected);
  });
});
