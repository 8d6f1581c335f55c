import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '../src/lib/ids.js';
import { bytesToHex, hmac } from '../src/lib/crypto.js';
import { deliveryJobSpec } from '../src/queue/delivery-jobs.js';
import { json } from './harness.js';
import { metaError, telegramError } from './fakes/index.js';
import {
  WABA_APP_SECRET,
  WAHA_HMAC,
  activeConversation,
  createAgent,
  createChannel,
  deliveryRow,
  messageRow,
  outboundHarness,
  settled,
  startFakes,
  waitFor,
  type Fakes,
  type OutboundHarness,
  type Provider,
  type TestChannel,
} from './outbound-helpers.js';

let fakes: Fakes;
let h: OutboundHarness;
beforeAll(async () => {
  fakes = await startFakes();
});
afterAll(async () => {
  await fakes.close();
});
afterEach(async () => {
  await h?.close();
  fakes.reset();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function setupConversation(provider: Provider, env: Record<string, string> = {}, from?: string) {
  h = outboundHarness(fakes, env);
  const agent = await createAgent(h);
  const ch = await createChannel(h, fakes, provider, { agentIds: [agent.id] });
  const to = from ?? (provider === 'telegram' ? '700000101' : provider === 'api' ? 'crm-7' : '4915100000101');
  const conv = await activeConversation(h, ch, agent.id, to);
  const reply = async (text = 'It ships today.') => {
    const res = await h.api('POST', `/api/conversations/${conv.conversationId}/messages`, { text }, agent.token);
    expect(res.status).toBe(202);
    return (await json(res)) as { messageId: string; deliveryId: string };
  };
  return { agent, ch, conv, reply };
}

function attemptsOf(deliveryId: string) {
  return h.sql.prepare('SELECT * FROM delivery_attempts WHERE delivery_id = ? ORDER BY id').all(deliveryId) as Array<Record<string, any>>;
}

describe('retries', () => {
  it('500 → 500 → 200 ends sent after 3 attempts, each logged in order', async () => {
    const { reply } = await setupConversation('whatsapp_business');
    fakes.waba.script([{ status: 500, body: { error: 'boom' } }, metaError(131000, { status: 500 })]);
    h.startWorker();
    const { deliveryId, messageId } = await reply();

    const d = await settled(h, deliveryId);
    expect(d).toMatchObject({ status: 'sent', attempts: 3, last_http_status: 200 });
    const log = attemptsOf(deliveryId);
    expect(log.map((a) => [a.cycle, a.attempt, a.outcome, a.http_status, a.provider_code])).toEqual([
      [0, 1, 'retry', 500, 'http_500'],
      [0, 2, 'retry', 500, '131000'],
      [0, 3, 'sent', 200, null],
    ]);
    for (const a of log) expect(a.duration_ms).toBeGreaterThanOrEqual(0);
    const times = fakes.waba.requests.map((r) => r.at);
    expect(times).toHaveLength(3);
    // 100 ms schedule: each retry waits at least that long.
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(95);
    expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(95);
    expect(messageRow(h, messageId).status).toBe('sent');

    const detail = await json(await h.api('GET', `/api/deliveries/${deliveryId}`));
    expect(detail).toMatchObject({ id: deliveryId, status: 'sent', attemptCount: 3, messageStatus: 'sent' });
    expect(detail.attempts).toHaveLength(3);
    expect(detail.attempts[0]).toMatchObject({ cycle: 0, attempt: 1, outcome: 'retry', httpStatus: 500, providerCode: 'http_500' });
    expect(typeof detail.attempts[0].at).toBe('number');
    expect(typeof detail.attempts[0].durationMs).toBe('number');
  });

  it('429 with Retry-After is honoured over a shorter schedule', async () => {
    const { reply } = await setupConversation('telegram');
    fakes.telegram.script(telegramError(429, 'Too Many Requests: retry after 1', { retry_after: 1 }));
    h.startWorker();
    const { deliveryId } = await reply();

    const retrying = await settled(h, deliveryId, ['retrying']);
    expect(retrying.next_attempt_at - attemptsOf(deliveryId)[0]!.at).toBeGreaterThanOrEqual(1000);
    expect(retrying).toMatchObject({ last_http_status: 429, last_error_code: '429' });
    await settled(h, deliveryId);
    const [first, second] = fakes.telegram.requests;
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(990);
    expect(attemptsOf(deliveryId).map((a) => a.outcome)).toEqual(['retry', 'sent']);
  });

  it('a permanent error is dead after one attempt, with its last error; the message is failed', async () => {
    const { reply } = await setupConversation('whatsapp_business');
    fakes.waba.script(metaError(131026, { message: 'Message undeliverable' }));
    h.startWorker();
    const { deliveryId, messageId } = await reply();

    const d = await settled(h, deliveryId);
    expect(d).toMatchObject({ status: 'dead', attempts: 1, last_error_code: '131026', last_http_status: 400, next_attempt_at: null });
    expect(d.last_error).toContain('Message undeliverable');
    expect(messageRow(h, messageId)).toMatchObject({ status: 'failed', error_code: '131026' });
    await sleep(300);
    expect(fakes.waba.requestCount).toBe(1);
    expect(attemptsOf(deliveryId).map((a) => a.outcome)).toEqual(['failed']);
  });

  it('a 131047 from Meta is reported as the template requirement', async () => {
    const { reply } = await setupConversation('whatsapp_business');
    fakes.waba.script(metaError(131047, { message: 'Re-engagement message' }));
    h.startWorker();
    const { deliveryId, messageId } = await reply();
    const d = await settled(h, deliveryId);
    expect(d).toMatchObject({ status: 'dead', last_error_code: '131047' });
    expect(d.last_error).toMatch(/^template_required: .*24-hour window.*template/);
    expect(messageRow(h, messageId)).toMatchObject({ status: 'failed', error_code: '131047' });
  });

  it('runs out of attempts: dead after schedule length + 1 tries', async () => {
    const { reply } = await setupConversation('api', { DELIVERY_RETRY_SCHEDULE: '100ms,100ms' });
    fakes.callback.setDefault({ status: 503 });
    h.startWorker();
    const { deliveryId } = await reply();
    const d = await settled(h, deliveryId);
    expect(d).toMatchObject({ status: 'dead', attempts: 3, last_error_code: 'http_503', last_http_status: 503 });
    expect(attemptsOf(deliveryId).map((a) => a.outcome)).toEqual(['retry', 'retry', 'failed']);
    // Every try carries the same idempotency key.
    expect(new Set(fakes.callback.requests.map((r) => r.headers['webhook-id']))).toEqual(new Set([deliveryId]));
  });

  it('a delivery whose channel was deleted is dead without calling anyone', async () => {
    const { reply, ch } = await setupConversation('telegram');
    const { deliveryId } = await reply();
    expect((await h.api('DELETE', `/api/channels/${ch.id}`)).status).toBe(204);
    h.startWorker();
    expect(await settled(h, deliveryId)).toMatchObject({ status: 'dead', last_error_code: 'channel_deleted' });
    expect(fakes.telegram.requestCount).toBe(0);
  });
});

describe('idempotency and recovery', () => {
  it('a job for a delivery already sent does nothing', async () => {
    const { reply } = await setupConversation('api');
    h.startWorker();
    const { deliveryId } = await reply();
    await settled(h, deliveryId);
    const spec = deliveryJobSpec({ deliveryId, cycle: 0, attempt: 1, runAt: 0 }, Date.now());
    await h.deps.queues.deliveries.add(spec.name, spec.data, { ...spec.opts, jobId: `${deliveryId}-dup` });
    await h.deps.queues.deliveries.add(spec.name, { ...spec.data, attempt: 2 }, { ...spec.opts, jobId: `${deliveryId}-dup2` });
    await sleep(400);
    expect(fakes.callback.requestCount).toBe(1);
    expect(attemptsOf(deliveryId)).toHaveLength(1);
  });

  it('crash between commit and enqueue: a committed delivery with no outbox row and no job is sent by the sweeper', async () => {
    const { ch, conv, agent } = await setupConversation('api');
    const now = Date.now();
    const messageId = newId('msg');
    const deliveryId = newId('dl');
    h.sql.transaction(() => {
      h.sql
        .prepare(
          `INSERT INTO messages (id, channel_id, conversation_id, direction, kind, text, details, status, agent_id, created_at, updated_at)
           VALUES (?, ?, ?, 'out', 'text', 'Recovered', ?, 'pending', ?, ?, ?)`,
        )
        .run(messageId, ch.id, conv.conversationId, JSON.stringify({ to: 'crm-7' }), agent.id, now, now);
      h.sql
        .prepare(
          `INSERT INTO deliveries (id, message_id, channel_id, status, attempts, next_attempt_at, enqueued_at, created_at, updated_at)
           VALUES (?, ?, ?, 'pending', 0, ?, NULL, ?, ?)`,
        )
        .run(deliveryId, messageId, ch.id, now, now, now);
    })();
    expect(h.sql.prepare('SELECT count(*) FROM outbox WHERE kind = ?').pluck().get('delivery')).toBe(0);

    h.startWorker({ sweepIntervalMs: 100 });
    expect(await settled(h, deliveryId)).toMatchObject({ status: 'sent', attempts: 1 });
    expect(fakes.callback.requests[0]!.body).toMatchObject({ data: { message: { id: messageId, text: 'Recovered' } } });
    expect(h.logs.text).toContain('sweeper re-queued deliveries that had no job');
  });

  it('a due delivery whose job vanished from Redis is re-queued once the grace passes', async () => {
    const { reply } = await setupConversation('api');
    const { deliveryId } = await reply();
    await h.deps.relay.drain();
    // Redis lost the job (e.g. restarted without persistence).
    await h.deps.queues.deliveries.obliterate({ force: true });
    expect(deliveryRow(h, deliveryId).enqueued_at).not.toBeNull();
    h.startWorker({ sweepIntervalMs: 100, sweepGraceMs: 300 });
    expect(await settled(h, deliveryId)).toMatchObject({ status: 'sent', attempts: 1 });
    expect(fakes.callback.requestCount).toBe(1);
  });
});

describe('statuses never move backwards', () => {
  async function postWabaStatus(ch: TestChannel, id: string, status: string) {
    const body = JSON.stringify({
      object: 'whatsapp_business_account',
      entry: [{ id: '1', changes: [{ field: 'messages', value: {
        messaging_product: 'whatsapp',
        metadata: { display_phone_number: '1555', phone_number_id: ch.messenger.phoneNumberId },
        statuses: [{ id, status, timestamp: String(Math.floor(Date.now() / 1000)), recipient_id: '4915100000101' }],
      } }] }],
    });
    const res = await h.app.request(new URL(ch.webhookUrl).pathname, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Hub-Signature-256': `sha256=${bytesToHex(await hmac('SHA-256', WABA_APP_SECRET, body))}` },
      body,
    });
    expect(res.status).toBe(200);
  }

  it('provider statuses after sent move forward only (delivered → read; never back to delivered or sent)', async () => {
    const { reply, ch } = await setupConversation('whatsapp_business');
    h.startWorker();
    const { deliveryId, messageId } = await reply();
    await settled(h, deliveryId);
    const wamid = messageRow(h, messageId).provider_message_id as string;
    expect(wamid).toMatch(/^wamid\./);
    const status = () => messageRow(h, messageId).status;

    await postWabaStatus(ch, wamid, 'delivered');
    expect(status()).toBe('delivered');
    await postWabaStatus(ch, wamid, 'sent');
    expect(status()).toBe('delivered');
    await postWabaStatus(ch, wamid, 'read');
    expect(status()).toBe('read');
    await postWabaStatus(ch, wamid, 'delivered');
    await postWabaStatus(ch, wamid, 'failed');
    expect(status()).toBe('read');
    // The delivery itself stays sent, and a replay is refused.
    expect(deliveryRow(h, deliveryId).status).toBe('sent');
  });

  it('WAHA acks after sent move forward only', async () => {
    const { reply, ch } = await setupConversation('whatsapp');
    h.startWorker();
    const { deliveryId, messageId } = await reply();
    await settled(h, deliveryId);
    const id = messageRow(h, messageId).provider_message_id as string;
    expect(id).toMatch(/^true_/);
    const ack = async (n: number) => {
      const body = JSON.stringify({ event: 'message.ack', session: 'default', payload: { id, ack: n } });
      const res = await h.app.request(new URL(ch.webhookUrl).pathname, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-Webhook-Hmac': bytesToHex(await hmac('SHA-512', WAHA_HMAC, body)) },
        body,
      });
      expect(res.status).toBe(200);
      return messageRow(h, messageId).status as string;
    };
    expect(await ack(3)).toBe('read');
    expect(await ack(2)).toBe('read');
    expect(await ack(1)).toBe('read');
    expect(await ack(-1)).toBe('read');
  });

  it('a late "sent" result never overwrites a status a webhook already advanced', async () => {
    const { reply } = await setupConversation('api');
    const { deliveryId, messageId } = await reply();
    h.sql.prepare("UPDATE messages SET status = 'read' WHERE id = ?").run(messageId);
    h.startWorker();
    await settled(h, deliveryId);
    expect(messageRow(h, messageId).status).toBe('read');
  });
});

describe('replay', () => {
  it('replays one dead delivery with the same id and a new attempt cycle; 409 once it is sent', async () => {
    const { reply } = await setupConversation('api');
    fakes.callback.setDefault({ status: 400 });
    h.startWorker();
    const { deliveryId, messageId } = await reply();
    await settled(h, deliveryId);
    expect(messageRow(h, messageId).status).toBe('failed');

    fakes.callback.setDefault(null);
    const res = await h.api('POST', `/api/deliveries/${deliveryId}/replay`);
    expect(res.status).toBe(202);
    expect(await json(res)).toMatchObject({ id: deliveryId, status: 'pending', attemptCount: 0, replays: 1 });
    const d = await settled(h, deliveryId);
    expect(d).toMatchObject({ status: 'sent', attempts: 1, replays: 1 });
    expect(attemptsOf(deliveryId).map((a) => [a.cycle, a.attempt, a.outcome])).toEqual([
      [0, 1, 'failed'],
      [1, 1, 'sent'],
    ]);
    expect(fakes.callback.requests.map((r) => r.headers['webhook-id'])).toEqual([deliveryId, deliveryId]);
    expect(messageRow(h, messageId)).toMatchObject({ status: 'sent', error_code: null });
    expect(h.logs.text).toContain('delivery replayed');

    const again = await h.api('POST', `/api/deliveries/${deliveryId}/replay`);
    expect(again.status).toBe(409);
    expect((await json(again)).code).toBe('conflict');
    await sleep(200);
    expect(fakes.callback.requestCount).toBe(2);
    expect((await h.api('POST', '/api/deliveries/dl_unknown/replay')).status).toBe(404);
  });

  it('refuses (409) to replay a delivery whose attempt is waiting on the provider: it would send twice', async () => {
    const { reply } = await setupConversation('api');
    fakes.callback.script({ status: 200, delayMs: 1_500 });
    h.startWorker();
    const { deliveryId } = await reply();
    await waitFor('the attempt to reach the provider', () => fakes.callback.requestCount === 1);
    expect(deliveryRow(h, deliveryId).sending_until).toBeGreaterThan(Date.now());
    const res = await h.api('POST', `/api/deliveries/${deliveryId}/replay`);
    expect(res.status).toBe(409);
    expect((await json(res)).detail).toMatch(/waiting on the provider.*send it twice/);
    expect(await json(await h.api('POST', '/api/deliveries/replay', { filter: { status: 'pending' } }))).toEqual({ matched: 1, replayed: 0, dryRun: false });
    expect(await settled(h, deliveryId)).toMatchObject({ status: 'sent', replays: 0, sending_until: null });
    await sleep(200);
    expect(fakes.callback.requestCount).toBe(1);
  });

  it('replaying a retrying delivery starts a new cycle now; the old cycle’s delayed job then does nothing', async () => {
    const { reply } = await setupConversation('api');
    fakes.callback.script({ status: 503, headers: { 'retry-after': '1' } });
    h.startWorker();
    const { deliveryId } = await reply();
    await settled(h, deliveryId, ['retrying']);
    const res = await h.api('POST', '/api/deliveries/replay', { filter: { status: 'retrying' } });
    expect(await json(res)).toEqual({ matched: 1, replayed: 1, dryRun: false });
    expect(await settled(h, deliveryId)).toMatchObject({ status: 'sent', replays: 1, attempts: 1 });
    await sleep(1_300); // the cycle-0 attempt-2 job fires now, and must change nothing
    expect(fakes.callback.requestCount).toBe(2);
    expect(attemptsOf(deliveryId).map((a) => [a.cycle, a.attempt, a.outcome])).toEqual([
      [0, 1, 'retry'],
      [1, 1, 'sent'],
    ]);
  });

  it('bulk replay by filter: a dry run counts and sends nothing; then replays only the matches', async () => {
    h = outboundHarness(fakes);
    const agent = await createAgent(h);
    const a = await createChannel(h, fakes, 'api', { agentIds: [agent.id] });
    const b = await createChannel(h, fakes, 'api', { agentIds: [agent.id] });
    const convA = await activeConversation(h, a, agent.id, 'crm-a');
    const convB = await activeConversation(h, b, agent.id, 'crm-b');
    fakes.callback.setDefault({ status: 400 });
    h.startWorker();
    const send = async (conversationId: string) =>
      (await json(await h.api('POST', `/api/conversations/${conversationId}/messages`, { text: 'x' }, agent.token))).deliveryId as string;
    const inA = await Promise.all([1, 2, 3].map(() => send(convA.conversationId)));
    const inB = await Promise.all([1, 2].map(() => send(convB.conversationId)));
    for (const id of [...inA, ...inB]) await settled(h, id);
    const sentBefore = fakes.callback.requestCount;
    fakes.callback.setDefault(null);

    const dry = await h.api('POST', '/api/deliveries/replay', { filter: { status: 'dead', channelId: a.id, errorCode: 'http_400', since: '1h' }, dryRun: true });
    expect(dry.status).toBe(200);
    expect(await json(dry)).toEqual({ matched: 3, replayed: 0, dryRun: true });
    await sleep(400);
    expect(fakes.callback.requestCount).toBe(sentBefore);
    for (const id of inA) expect(deliveryRow(h, id).status).toBe('dead');

    const none = await json(await h.api('POST', '/api/deliveries/replay', { filter: { channelId: a.id, errorCode: 'http_500' } }));
    expect(none).toEqual({ matched: 0, replayed: 0, dryRun: false });

    const limited = await h.api('POST', '/api/deliveries/replay', { filter: { channelId: a.id }, limit: 2 });
    expect(limited.status).toBe(202);
    expect(await json(limited)).toEqual({ matched: 3, replayed: 2, dryRun: false });
    const rest = await json(await h.api('POST', '/api/deliveries/replay', { filter: { status: 'dead', channelId: a.id } }));
    expect(rest).toEqual({ matched: 1, replayed: 1, dryRun: false });
    for (const id of inA) expect(await settled(h, id)).toMatchObject({ status: 'sent', replays: 1 });
    for (const id of inB) expect(deliveryRow(h, id).status).toBe('dead');

    const refused = await h.api('POST', '/api/deliveries/replay', { filter: { status: 'sent' } });
    expect(refused.status).toBe(400);
    expect((await json(refused)).field).toBe('filter.status');
    const badTime = await h.api('POST', '/api/deliveries/replay', { filter: { since: 'yesterday' } });
    expect(badTime.status).toBe(400);
    expect((await json(badTime)).field).toBe('filter.since');
  });
});

describe('ops API', () => {
  it('is admin only: agents get 403, no token 401', async () => {
    const { agent, reply } = await setupConversation('api');
    const { deliveryId } = await reply();
    const calls: Array<[string, string, unknown?]> = [
      ['GET', '/api/deliveries'],
      ['GET', `/api/deliveries/${deliveryId}`],
      ['POST', `/api/deliveries/${deliveryId}/replay`],
      ['POST', '/api/deliveries/replay', { filter: {} }],
    ];
    for (const [method, path, body] of calls) {
      expect((await h.api(method, path, body, agent.token)).status, `${method} ${path}`).toBe(403);
      expect((await h.api(method, path, body, null)).status, `${method} ${path}`).toBe(401);
      expect((await h.api(method, path, body, 'sbat_wrong-token')).status, `${method} ${path}`).toBe(401);
    }
  });

  it('lists newest first with filters and a cursor; 404 for an unknown id', async () => {
    const { reply, ch } = await setupConversation('api');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await reply(`m${i}`)).deliveryId);
    h.sql.prepare("UPDATE deliveries SET status = 'dead', last_error_code = 'http_410' WHERE id IN (?, ?)").run(ids[1], ids[3]);
    const base = Date.now() - 10_000;
    ids.forEach((id, i) => h.sql.prepare('UPDATE deliveries SET created_at = ? WHERE id = ?').run(base + i, id));

    const page1 = await json(await h.api('GET', '/api/deliveries?limit=2'));
    expect(page1.data.map((d: any) => d.id)).toEqual([ids[4], ids[3]]);
    const page2 = await json(await h.api('GET', `/api/deliveries?limit=2&cursor=${page1.nextCursor}`));
    expect(page2.data.map((d: any) => d.id)).toEqual([ids[2], ids[1]]);
    const page3 = await json(await h.api('GET', `/api/deliveries?limit=2&cursor=${page2.nextCursor}`));
    expect(page3.data.map((d: any) => d.id)).toEqual([ids[0]]);
    expect(page3.nextCursor).toBeNull();

    const dead = await json(await h.api('GET', `/api/deliveries?status=dead&channelId=${ch.id}&errorCode=http_410`));
    expect(dead.data.map((d: any) => d.id)).toEqual([ids[3], ids[1]]);
    expect(dead.data[0]).toMatchObject({ status: 'dead', channelId: ch.id, lastErrorCode: 'http_410', messageStatus: 'pending' });
    expect(dead.data[0]).not.toHaveProperty('text');
    const windowed = await json(await h.api('GET', `/api/deliveries?since=${base + 2}&until=${new Date(base + 3).toISOString()}`));
    expect(windowed.data.map((d: any) => d.id)).toEqual([ids[3], ids[2]]);
    expect((await json(await h.api('GET', '/api/deliveries?since=1h'))).data).toHaveLength(5);
    expect((await json(await h.api('GET', '/api/deliveries?channelId=ch_other'))).data).toHaveLength(0);

    // An impossible day is refused, not rolled forward (2024-02-30 would be 1 March); a duration
    // reaching back before 1970 means from the start.
    for (const q of ['until=2024-04-31', 'since=2024-02-30T00:00:00Z']) {
      const res = await h.api('GET', `/api/deliveries?${q}`);
      expect(res.status, q).toBe(400);
      expect((await json(res)).field).toBe(q.split('=')[0]);
    }
    expect((await h.api('GET', '/api/deliveries?until=2024-02-29')).status).toBe(200);
    expect((await json(await h.api('GET', '/api/deliveries?since=60000d'))).data).toHaveLength(5);
    const longAgo = await h.api('POST', '/api/deliveries/replay', { filter: { since: '60000d' }, dryRun: true });
    expect(longAgo.status).toBe(200);

    const bad = await h.api('GET', '/api/deliveries?status=lost');
    expect(bad.status).toBe(400);
    expect((await json(bad)).field).toBe('status');
    expect((await h.api('GET', '/api/deliveries/dl_nope')).status).toBe(404);
  });
});

describe('rate limits', () => {
  it('Telegram: at most one message per second to one chat; waiting counts no attempt', async () => {
    const { reply } = await setupConversation('telegram');
    const sent = [await reply('one'), await reply('two'), await reply('three')];
    h.startWorker();
    for (const s of sent) expect(await settled(h, s.deliveryId)).toMatchObject({ status: 'sent', attempts: 1 });
    const times = fakes.telegram.requests.map((r) => r.at).sort((x, y) => x - y);
    expect(times).toHaveLength(3);
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(900);
    expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(900);
    for (const s of sent) expect(attemptsOf(s.deliveryId)).toHaveLength(1);
  });
});
