/**
 * Shared setup for the outbound tests: fake providers, channels of each messenger, agents,
 * inbound webhooks signed as each provider signs them, and the delivery worker with short timers.
 */
import { expect } from 'vitest';
import { systemClock } from '../src/lib/clock.js';
import { bytesToHex, hmac } from '../src/lib/crypto.js';
import { startDeliveryWorker, type DeliveryWorker, type DeliveryWorkerOptions } from '../src/outbound/worker.js';
import { signStandardWebhook } from '../src/providers/api/sign.js';
import {
  createFakeCallbackReceiver,
  createFakeTelegram,
  createFakeWaba,
  createFakeWaha,
  type FakeServer,
} from './fakes/index.js';
import { channelBody, createHarness, json, type Harness } from './harness.js';

export const WABA_TOKEN = 'EAAG-outbound-secret-token';
export const WABA_APP_SECRET = 'waba-app-secret-xyz';
export const TG_TOKEN = '7123456789:AAHfakeBotTokenForOutbound_0123';
export const TG_SECRET = 'tg-secret-token-123';
export const WAHA_KEY = 'waha-api-key-secret';
export const WAHA_HMAC = 'waha-hmac-key-secret';

export interface Fakes {
  waba: FakeServer;
  telegram: FakeServer;
  waha: FakeServer;
  callback: FakeServer;
  reset(): void;
  close(): Promise<void>;
}

export async function startFakes(): Promise<Fakes> {
  const [waba, telegram, waha, callback] = await Promise.all([
    createFakeWaba({ accessToken: WABA_TOKEN }),
    createFakeTelegram({ botToken: TG_TOKEN }),
    createFakeWaha({ apiKey: WAHA_KEY }),
    createFakeCallbackReceiver(),
  ]);
  const all = [waba, telegram, waha, callback];
  return {
    waba,
    telegram,
    waha,
    callback,
    reset: () => all.forEach((f) => f.reset()),
    close: async () => {
      await Promise.all(all.map((f) => f.close()));
    },
  };
}

export interface OutboundHarness extends Harness {
  worker: DeliveryWorker | null;
  startWorker(opts?: DeliveryWorkerOptions): DeliveryWorker;
  sql: Harness['deps']['db']['$client'];
}

/** A harness on the real clock, pointed at the fakes, with a short retry schedule. */
export function outboundHarness(fakes: Fakes, env: Record<string, string> = {}): OutboundHarness {
  const h = createHarness({
    clock: systemClock,
    env: {
      GRAPH_API_BASE_URL: fakes.waba.url,
      TELEGRAM_API_BASE_URL: fakes.telegram.url,
      DELIVERY_RETRY_SCHEDULE: '100ms,100ms,100ms',
      LOG_LEVEL: 'debug',
      ...env,
    },
  });
  const oh = h as OutboundHarness;
  oh.worker = null;
  oh.sql = h.deps.db.$client;
  oh.startWorker = (opts = {}) => {
    h.deps.relay.start();
    oh.worker = startDeliveryWorker(h.deps, { sweepIntervalMs: 200, sweepGraceMs: 500, ...opts });
    return oh.worker;
  };
  const close = h.close.bind(h);
  oh.close = async () => {
    await oh.worker?.close();
    await close();
  };
  return oh;
}

export async function createAgent(h: Harness, name = 'Ana Agent'): Promise<{ id: string; token: string }> {
  const res = await h.api('POST', '/api/agents', { name, email: `${name.replaceAll(' ', '.').toLowerCase()}.${Math.random().toString(36).slice(2, 8)}@example.test` });
  expect(res.status).toBe(201);
  return json(res);
}

export type Provider = 'whatsapp_business' | 'telegram' | 'whatsapp' | 'api';

export function messengerFor(provider: Provider, fakes: Fakes): Record<string, unknown> {
  switch (provider) {
    case 'whatsapp_business':
      return {
        provider,
        phoneNumberId: String(100000 + Math.floor(Math.random() * 1e9)),
        accessToken: WABA_TOKEN,
        appSecret: WABA_APP_SECRET,
        verifyToken: 'verify-me',
      };
    case 'telegram':
      return { provider, botToken: TG_TOKEN, secretToken: TG_SECRET };
    case 'whatsapp':
      return { provider, baseUrl: fakes.waha.url, session: 'default', apiKey: WAHA_KEY, hmacKey: WAHA_HMAC };
    case 'api':
      return { provider, callbackUrl: `${fakes.callback.url}/hooks/switchboard` };
  }
}

export interface TestChannel {
  id: string;
  webhookUrl: string;
  messenger: Record<string, unknown>;
  /** The `whsec_` secret of an api channel (returned once at creation). */
  secret?: string;
}

export async function createChannel(
  h: Harness,
  fakes: Fakes,
  provider: Provider,
  overrides: Record<string, unknown> = {},
): Promise<TestChannel> {
  const messenger = messengerFor(provider, fakes);
  const res = await h.api(
    'POST',
    '/api/channels',
    channelBody({
      messenger,
      writeFirst: { enabled: provider !== 'api', channelId: null },
      handling: { utilization: 30, autoAssignLimit: 5, autoAnswer: true, notificationTimeoutSec: null, completionCodeIds: [], completionCodeTimeoutSec: null },
      ...overrides,
    }),
  );
  expect(res.status, await res.clone().text()).toBe(201);
  const ch = await json(res);
  return { id: ch.id, webhookUrl: ch.webhookUrl, messenger, secret: ch.messenger.secret };
}

let seq = 0;
function nextId(): number {
  seq += 1;
  return Date.now() % 1_000_000_000 + seq;
}

/**
 * Posts an inbound text message to the channel as its provider would (signed); returns the provider
 * message id. `writtenAt` (ms, WhatsApp Business only) is when the client wrote it; default now.
 */
export async function inbound(h: Harness, ch: TestChannel, from: string, text = 'Hello?', { writtenAt = Date.now() } = {}): Promise<string> {
  const provider = ch.messenger.provider as Provider;
  const n = nextId();
  let body: string;
  let headers: Record<string, string> = {};
  let providerMessageId: string;
  switch (provider) {
    case 'whatsapp_business': {
      providerMessageId = `wamid.IN${n}`;
      body = JSON.stringify({
        object: 'whatsapp_business_account',
        entry: [{ id: '1', changes: [{ field: 'messages', value: {
          messaging_product: 'whatsapp',
          metadata: { display_phone_number: '15550001111', phone_number_id: ch.messenger.phoneNumberId },
          contacts: [{ profile: { name: 'Client' }, wa_id: from }],
          messages: [{ from, id: providerMessageId, timestamp: String(Math.floor(writtenAt / 1000)), type: 'text', text: { body: text } }],
        } }] }],
      });
      headers = { 'X-Hub-Signature-256': `sha256=${bytesToHex(await hmac('SHA-256', WABA_APP_SECRET, body))}` };
      break;
    }
    case 'telegram': {
      const messageId = n % 100000;
      providerMessageId = `${from}:${messageId}`;
      body = JSON.stringify({
        update_id: n,
        message: {
          message_id: messageId,
          from: { id: Number(from), is_bot: false, first_name: 'Client' },
          chat: { id: Number(from), type: 'private', first_name: 'Client' },
          date: Math.floor(Date.now() / 1000),
          text,
        },
      });
      headers = { 'X-Telegram-Bot-Api-Secret-Token': TG_SECRET };
      break;
    }
    case 'whatsapp': {
      providerMessageId = `false_${from}@c.us_3EB0${n}`;
      body = JSON.stringify({
        event: 'message',
        session: 'default',
        payload: { id: providerMessageId, timestamp: Math.floor(Date.now() / 1000), from: `${from}@c.us`, fromMe: false, body: text, hasMedia: false },
      });
      headers = { 'X-Webhook-Hmac': bytesToHex(await hmac('SHA-512', WAHA_HMAC, body)), 'X-Webhook-Hmac-Algorithm': 'sha512' };
      break;
    }
    case 'api': {
      providerMessageId = `ext-${n}`;
      body = JSON.stringify({ type: 'message.received', data: { contact: { id: from, name: 'Client' }, message: { id: providerMessageId, text } } });
      const ts = Math.floor(Date.now() / 1000);
      const id = `evt-${n}`;
      headers = { 'webhook-id': id, 'webhook-timestamp': String(ts), 'webhook-signature': await signStandardWebhook(ch.secret!, id, ts, body) };
      break;
    }
  }
  const res = await h.app.request(new URL(ch.webhookUrl).pathname, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body,
  });
  expect(res.status, await res.clone().text()).toBe(200);
  return providerMessageId;
}

/** The contact's latest conversation in the channel, put `active` with the agent (as ACD would). */
export function activate(h: OutboundHarness, channelId: string, agentId: string, utilization = 30): string {
  const conv = h.sql
    .prepare('SELECT id FROM conversations WHERE channel_id = ? ORDER BY created_at DESC, rowid DESC LIMIT 1')
    .pluck()
    .get(channelId) as string;
  h.sql.prepare("UPDATE conversations SET state = 'active', agent_id = ?, utilization = ? WHERE id = ?").run(agentId, utilization, conv);
  h.sql.prepare('UPDATE agents SET load = load + ? WHERE id = ?').run(utilization, agentId);
  h.sql
    .prepare(
      `INSERT INTO agent_channel_holds (channel_id, agent_id, held) VALUES (?, ?, 1)
       ON CONFLICT (channel_id, agent_id) DO UPDATE SET held = held + 1`,
    )
    .run(channelId, agentId);
  return conv;
}

/** An inbound message from `from`, then its conversation active with the agent. */
export async function activeConversation(h: OutboundHarness, ch: TestChannel, agentId: string, from: string, opts: { writtenAt?: number } = {}) {
  const inboundId = await inbound(h, ch, from, undefined, opts);
  const conversationId = activate(h, ch.id, agentId);
  const messageId = h.sql.prepare('SELECT id FROM messages WHERE provider_message_id = ?').pluck().get(inboundId) as string;
  return { conversationId, inboundId, inboundMessageId: messageId };
}

export async function waitFor<T>(what: string, fn: () => T | undefined | null | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export function deliveryRow(h: OutboundHarness, id: string): Record<string, any> {
  return h.sql.prepare('SELECT * FROM deliveries WHERE id = ?').get(id) as Record<string, any>;
}

export function messageRow(h: OutboundHarness, id: string): Record<string, any> {
  return h.sql.prepare('SELECT * FROM messages WHERE id = ?').get(id) as Record<string, any>;
}

/** Waits until the delivery reaches one of `statuses`. */
export function settled(h: OutboundHarness, deliveryId: string, statuses = ['sent', 'dead'], timeoutMs = 10_000) {
  return waitFor(`delivery ${deliveryId} to be ${statuses.join('/')}`, () => {
    const d = deliveryRow(h, deliveryId);
    return statuses.includes(d.status) ? d : undefined;
  }, timeoutMs);
}
