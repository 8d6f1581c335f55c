import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createFakeTelegram, telegramError, unusedUrl, type FakeServer, type ScriptedReply } from '../../../test/fakes/index.js';
import type { OutboundMessage, SendContext, SendResult } from '../types.js';
import { sendTelegram } from './send.js';

const TOKEN = '7123456789:AAHfakeBotTokenForTests_0123456789';
const cfg = { botToken: TOKEN };

let fake: FakeServer;
const results: SendResult[] = [];

beforeAll(async () => {
  fake = await createFakeTelegram({ botToken: TOKEN });
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
    to: '123456789',
    content: { text: 'It ships today.' },
    ...over,
  };
}

function context(over: Partial<SendContext> = {}): SendContext {
  return {
    fetch: globalThis.fetch,
    graphApiBaseUrl: 'http://127.0.0.1:9',
    telegramApiBaseUrl: fake.url,
    now: Date.now(),
    timeoutMs: 2000,
    ...over,
  };
}

async function send(msg = message(), ctx = context(), c = cfg) {
  const result = await sendTelegram(c, msg, ctx);
  results.push(result);
  return result;
}

describe('sendTelegram', () => {
  it('posts sendMessage and returns <chat_id>:<message_id> as the provider message id', async () => {
    const result = await send();

    expect(fake.requests).toHaveLength(1);
    const req = fake.requests[0]!;
    expect(req.method).toBe('POST');
    expect(req.path).toBe(`/bot${TOKEN}/sendMessage`);
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.body).toEqual({ chat_id: 123456789, text: 'It ships today.' });
    const id = (req.response as { result: { message_id: number } }).result.message_id;
    expect(result).toEqual({ ok: true, providerMessageId: `123456789:${id}`, httpStatus: 200 });
  });

  it('stores a group message id under the group chat id', async () => {
    const result = await send(message({ to: '-1001234567890' }));
    const id = (fake.requests[0]!.response as { result: { message_id: number } }).result.message_id;
    expect(result).toMatchObject({ ok: true, providerMessageId: `-1001234567890:${id}` });
  });

  it('uses the chat id sent when the answer has no chat', async () => {
    fake.script({ status: 200, body: { ok: true, result: { message_id: 77 } } });
    expect(await send()).toMatchObject({ ok: true, providerMessageId: '123456789:77' });
  });

  it.each([
    ['-1001234567890', -1001234567890],
    ['@shop_channel', '@shop_channel'],
  ])('sends chat_id %s as %j', async (to, chatId) => {
    expect((await send(message({ to }))).ok).toBe(true);
    expect(fake.requests[0]!.body).toMatchObject({ chat_id: chatId });
  });

  it('replies to a <chat_id>:<message_id> ref of the same chat', async () => {
    await send(message({ replyToProviderMessageId: '123456789:42' }));
    expect(fake.requests[0]!.body).toMatchObject({ reply_parameters: { message_id: 42, allow_sending_without_reply: true } });
  });

  it('does not quote a message of another chat', async () => {
    await send(message({ replyToProviderMessageId: '555:42' }));
    expect(fake.requests[0]!.body).toEqual({ chat_id: 123456789, text: 'It ships today.' });
  });

  it('replies to a bare numeric message id', async () => {
    await send(message({ replyToProviderMessageId: '42' }));
    expect(fake.requests[0]!.body).toEqual({
      chat_id: 123456789,
      text: 'It ships today.',
      reply_parameters: { message_id: 42, allow_sending_without_reply: true },
    });
  });

  it('ignores a reply target that is not a Telegram message id', async () => {
    await send(message({ replyToProviderMessageId: 'wamid.XYZ' }));
    expect(fake.requests[0]!.body).toEqual({ chat_id: 123456789, text: 'It ships today.' });
  });

  it('refuses templates without calling Telegram', async () => {
    const result = await send(message({ content: { template: { name: 'order_update', language: { code: 'en' } } } }));
    expect(result).toMatchObject({ ok: false, retryable: false, code: 'template_unsupported' });
    expect(fake.requestCount).toBe(0);
  });

  it('treats a 200 with an unreadable body as sent (no id)', async () => {
    fake.script({ status: 200, rawBody: 'not json' });
    expect(await send()).toEqual({ ok: true, providerMessageId: null, httpStatus: 200 });
  });

  type Expected = { retryable: boolean; code: string; httpStatus: number; retryAfterMs?: number };
  it.each<[string, ScriptedReply, Expected]>([
    [
      '429 retry_after 3',
      telegramError(429, 'Too Many Requests: retry after 3', { retry_after: 3 }),
      { retryable: true, code: '429', httpStatus: 429, retryAfterMs: 3000 },
    ],
    [
      '429 without parameters, Retry-After header',
      telegramError(429, 'Too Many Requests', undefined, { headers: { 'retry-after': '4' } }),
      { retryable: true, code: '429', httpStatus: 429, retryAfterMs: 4000 },
    ],
    ['403 blocked', telegramError(403, 'Forbidden: bot was blocked by the user'), { retryable: false, code: '403', httpStatus: 403 }],
    [
      "403 can't initiate",
      telegramError(403, "Forbidden: bot can't initiate conversation with a user"),
      { retryable: false, code: '403', httpStatus: 403 },
    ],
    ['403 deactivated', telegramError(403, 'Forbidden: user is deactivated'), { retryable: false, code: '403', httpStatus: 403 }],
    ['400 chat not found', telegramError(400, 'Bad Request: chat not found'), { retryable: false, code: '400', httpStatus: 400 }],
    [
      '400 migrated to supergroup',
      telegramError(400, 'Bad Request: group chat was upgraded to a supergroup chat', { migrate_to_chat_id: -1001234567890 }),
      { retryable: false, code: 'migrate_to_chat_id:-1001234567890', httpStatus: 400 },
    ],
    ['401 unauthorized', telegramError(401, 'Unauthorized'), { retryable: false, code: '401', httpStatus: 401 }],
    ['500 internal', telegramError(500, 'Internal Server Error'), { retryable: true, code: '500', httpStatus: 500 }],
    ['bare 502 from a proxy', { status: 502, rawBody: '<html>Bad Gateway</html>' }, { retryable: true, code: 'http_502', httpStatus: 502 }],
    ['bare 504', { status: 504 }, { retryable: true, code: 'http_504', httpStatus: 504 }],
  ])('classifies %s', async (_name, reply, expected) => {
    fake.script(reply);
    const result = await send();
    expect(result).toMatchObject({ ok: false, ...expected });
    if (expected.retryAfterMs === undefined) expect((result as { retryAfterMs?: number }).retryAfterMs).toBeUndefined();
  });

  it('says where a migrated group went', async () => {
    fake.script(telegramError(400, 'Bad Request: group chat was upgraded', { migrate_to_chat_id: -100777 }));
    const result = await send(message({ to: '-777' }));
    expect(result).toMatchObject({ ok: false, retryable: false, movedTo: '-100777' });
    if (!result.ok) expect(result.message).toContain('-100777');
  });

  it('follows only an integer chat id', async () => {
    fake.script({ status: 400, body: { ok: false, error_code: 400, description: 'Bad Request: group chat was upgraded', parameters: { migrate_to_chat_id: '@elsewhere' } } });
    const result = await send(message({ to: '-777' }));
    expect(result).toMatchObject({ ok: false, retryable: false, code: 'migrate_to_chat_id:@elsewhere' });
    expect((result as { movedTo?: string }).movedTo).toBeUndefined();
  });

  it('gets 401 from the fake with a wrong token', async () => {
    const result = await send(message(), context(), { botToken: '1:wrong' });
    expect(result).toMatchObject({ ok: false, retryable: false, code: '401' });
  });

  it('times out as retryable', async () => {
    fake.script({ delayMs: 1500 });
    expect(await send(message(), context({ timeoutMs: 100 }))).toMatchObject({ ok: false, retryable: true, code: 'timeout' });
  });

  it('reports a refused connection as a retryable network error', async () => {
    const result = await send(message(), context({ telegramApiBaseUrl: await unusedUrl() }));
    expect(result).toMatchObject({ ok: false, retryable: true, code: 'network' });
  });

  it('fails an unparseable base URL without quoting it (it would hold the token)', async () => {
    const result = await send(message(), context({ telegramApiBaseUrl: 'http://bad host' }));
    expect(result).toMatchObject({ ok: false, retryable: false, code: 'invalid_url' });
  });

  it('redacts the token from a thrown fetch error that quotes the URL', async () => {
    const leaky: typeof fetch = async (input) => {
      throw new TypeError('fetch failed', { cause: new Error(`connect to ${String(input)} refused`) });
    };
    const result = await send(message(), context({ fetch: leaky }));
    expect(result).toMatchObject({ ok: false, retryable: true, code: 'network' });
    if (!result.ok) expect(result.message).toContain('/bot[redacted]/sendMessage');
  });

  it('redacts the token when a description echoes it', async () => {
    fake.script(telegramError(400, `Bad Request: bot ${TOKEN} says no`));
    const result = await send();
    if (!result.ok) expect(result.message).toBe('Bad Request: bot [redacted] says no');
  });

  it('never returns the bot token in any result', () => {
    expect(results.length).toBeGreaterThan(20);
    expect(JSON.stringify(results)).not.toContain(TOKEN);
    expect(JSON.stringify(results)).not.toContain(encodeURIComponent(TOKEN));
  });
});
