import { request as httpRequest, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { serve, type ServerType } from '@hono/node-server';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DB_FILE_NAME } from '../src/db/client.js';
import { FakeClock } from '../src/lib/clock.js';
import { bytesToHex, hmac } from '../src/lib/crypto.js';
import { signStandardWebhook } from '../src/providers/api/sign.js';
import { channelBody, createHarness, json, type Harness } from './harness.js';

let h: Harness;
beforeEach(() => {
  h = createHarness();
});
afterEach(async () => {
  await h.close();
});

const APP_SECRET = 'app-secret-abc123';
const enc = new TextEncoder();

async function wabaChannel(phoneNumberId = '106540352242922', extra: Record<string, unknown> = {}) {
  const res = await h.api(
    'POST',
    '/api/channels',
    channelBody({
      messenger: { provider: 'whatsapp_business', phoneNumberId, accessToken: 'tok', appSecret: APP_SECRET, verifyToken: 'verify-me' },
      ...extra,
    }),
  );
  expect(res.status).toBe(201);
  return json(res);
}

function keyOf(ch: { webhookUrl: string }): string {
  return new URL(ch.webhookUrl).pathname;
}

async function postWaba(ch: { webhookUrl: string }, body: string, secret = APP_SECRET, headers: Record<string, string> = {}) {
  const sig = bytesToHex(await hmac('SHA-256', secret, enc.encode(body)));
  return h.app.request(keyOf(ch), {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Hub-Signature-256': `sha256=${sig}`, ...headers },
    body,
  });
}

function wabaText(opts: { id: string; from?: string; body?: string; phoneNumberId?: string; name?: string; timestamp?: number }) {
  return JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [
      {
        id: '102290129340398',
        changes: [
          {
            field: 'messages',
            value: {
              messaging_product: 'whatsapp',
              metadata: { display_phone_number: '15550001111', phone_number_id: opts.phoneNumberId ?? '106540352242922' },
              contacts: [{ profile: { name: opts.name ?? 'Ana' }, wa_id: opts.from ?? '4915112345678' }],
              messages: [
                { from: opts.from ?? '4915112345678', id: opts.id, timestamp: String(opts.timestamp ?? 1767225600), type: 'text', text: { body: opts.body ?? 'Is my order shipped?' } },
              ],
            },
          },
        ],
      },
    ],
  });
}

/** Meta's notice that the user writing from `from` changed to number `to`. */
function numberChanged(id: string, from: string, to: string) {
  return JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [{ id: '1', changes: [{ field: 'messages', value: {
      messaging_product: 'whatsapp',
      metadata: { display_phone_number: '15550001111', phone_number_id: '106540352242922' },
      messages: [{ from, id, timestamp: '1767225660', type: 'system', system: { body: `User changed from ${from} to ${to}`, wa_id: to, type: 'user_changed_number' } }],
    } }] }],
  });
}

function wabaStatus(id: string, status: string, phoneNumberId = '106540352242922') {
  return JSON.stringify({
    object: 'whatsapp_business_account',
    entry: [
      {
        id: '1',
        changes: [
          {
            field: 'messages',
            value: {
              messaging_product: 'whatsapp',
              metadata: { display_phone_number: '15550001111', phone_number_id: phoneNumberId },
              statuses: [{ id, status, timestamp: '1767225700', recipient_id: '4915112345678' }],
            },
          },
        ],
      },
    ],
  });
}

async function conversationsOf(channelId: string) {
  return (await json(await h.api('GET', `/api/conversations?channelId=${channelId}`))).data as Array<Record<string, any>>;
}

function count(table: string): number {
  return (h.deps.db.$client.prepare(`SELECT count(*) FROM ${table}`).pluck().get() as number) ?? 0;
}

describe('WhatsApp Business webhooks', () => {
  it('answers the verification handshake with the raw challenge, 403 on a wrong token', async () => {
    const ch = await wabaChannel();
    const ok = await h.app.request(`${keyOf(ch)}?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=verify-me`);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('1158201444');
    const bad = await h.app.request(`${keyOf(ch)}?hub.mode=subscribe&hub.challenge=1&hub.verify_token=nope`);
    expect(bad.status).toBe(403);
    expect((await h.app.request('/webhooks/unknown-key-000000000?hub.mode=subscribe')).status).toBe(404);
  });

  it('stores contact, conversation (channel type, queued), message and an outbox row; duplicates change nothing', async () => {
    const ch = await wabaChannel('106540352242922', { conversationType: 'social' });
    const body = wabaText({ id: 'wamid.AAA1', body: 'Grüße 😀' });
    const res = await postWaba(ch, body);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.text()).toBe('{"ok":true,"stored":1,"duplicates":0,"ignored":0}');
    const convs = await conversationsOf(ch.id);
    expect(convs).toHaveLength(1);
    expect(convs[0]).toMatchObject({ channelId: ch.id, type: 'social', state: 'queued', agentId: null });
    const msgs = (await json(await h.api('GET', `/api/conversations/${convs[0]!.id}/messages`))).data;
    expect(msgs).toEqual([
      expect.objectContaining({ direction: 'in', kind: 'text', text: 'Grüße 😀', providerMessageId: 'wamid.AAA1', status: 'received' }),
    ]);
    const contact = await json(await h.api('GET', `/api/contacts/${convs[0]!.contactId}`));
    expect(contact).toMatchObject({ name: 'Ana', phone: '4915112345678', reachable: true });
    expect(count('outbox') + ((await h.deps.queues.acd.getJobCounts('waiting')).waiting ?? 0)).toBeGreaterThan(0);

    const before = { messages: count('messages'), conversations: count('conversations'), contacts: count('contacts') };
    const dup = await postWaba(ch, body);
    expect(dup.status).toBe(200);
    expect({ messages: count('messages'), conversations: count('conversations'), contacts: count('contacts') }).toEqual(before);
  });

  it('a redelivered message changes no row, in an open conversation or a closed one', async () => {
    const ch = await wabaChannel();
    const rows = () => ({
      contacts: h.deps.db.$client.prepare('SELECT * FROM contacts ORDER BY id').all(),
      conversations: h.deps.db.$client.prepare('SELECT * FROM conversations ORDER BY id').all(),
      messages: h.deps.db.$client.prepare('SELECT * FROM messages ORDER BY id').all(),
      outbox: count('outbox'),
    });
    expect((await postWaba(ch, wabaText({ id: 'wamid.R1' }))).status).toBe(200);
    await h.deps.services.ingest.flush();
    // Redelivered later, with a new profile name: still the same message, so nothing moves.
    const open = rows();
    (h.clock as FakeClock).advance(60_000);
    const again = await postWaba(ch, wabaText({ id: 'wamid.R1', name: 'Ana Renamed' }));
    expect(again.status).toBe(200);
    expect(await json(again)).toMatchObject({ stored: 0, duplicates: 1 });
    expect(rows()).toEqual(open);

    h.deps.db.$client.prepare("UPDATE conversations SET state = 'closed'").run();
    const closed = rows();
    (h.clock as FakeClock).advance(60_000);
    const late = await postWaba(ch, wabaText({ id: 'wamid.R1', name: 'Ana Renamed' }));
    expect(await json(late)).toMatchObject({ stored: 0, duplicates: 1 });
    expect(rows()).toEqual(closed); // no new conversation for an old message
  });

  it('verifies the raw bytes: a body with escaped non-ASCII verifies as sent', async () => {
    const ch = await wabaChannel();
    const escaped = wabaText({ id: 'wamid.ESC', body: 'x' }).replace('"body":"x"', '"body":"Gr\\u00fc\\u00dfe \\ud83d\\ude00"');
    const res = await postWaba(ch, escaped);
    expect(res.status).toBe(200);
    const convs = await conversationsOf(ch.id);
    const msgs = (await json(await h.api('GET', `/api/conversations/${convs[0]!.id}/messages`))).data;
    expect(msgs[0].text).toBe('Grüße 😀');
  });

  it('joins the open conversation and starts a new one after it is closed', async () => {
    const ch = await wabaChannel();
    await postWaba(ch, wabaText({ id: 'wamid.1' }));
    await postWaba(ch, wabaText({ id: 'wamid.2', name: 'Ana K.' }));
    let convs = await conversationsOf(ch.id);
    expect(convs).toHaveLength(1);
    expect((await json(await h.api('GET', `/api/contacts/${convs[0]!.contactId}`))).name).toBe('Ana K.');
    h.deps.db.$client.prepare("UPDATE conversations SET state = 'closed'").run();
    (h.clock as FakeClock).advance(1_000);
    await postWaba(ch, wabaText({ id: 'wamid.3' }));
    convs = await conversationsOf(ch.id);
    expect(convs).toHaveLength(2);
    expect(convs[0]).toMatchObject({ state: 'queued' });
    expect(convs[0]!.contactId).toBe(convs[1]!.contactId);
  });

  it('a reaction after the close goes with the closed conversation; none opens one', async () => {
    const ch = await wabaChannel();
    await postWaba(ch, wabaText({ id: 'wamid.R1' }));
    h.deps.db.$client.prepare("UPDATE conversations SET state = 'closed'").run();
    const reaction = (id: string, from = '4915112345678') =>
      wabaText({ id, from }).replace(/"type":"text","text":\{"body":"[^"]*"\}/, '"type":"reaction","reaction":{"message_id":"wamid.OUT1","emoji":"👍"}');
    expect(reaction('x')).toContain('"type":"reaction"');
    expect(await json(await postWaba(ch, reaction('wamid.R2')))).toMatchObject({ stored: 1 });
    const convs = await conversationsOf(ch.id);
    expect(convs).toHaveLength(1);
    expect(convs[0]).toMatchObject({ state: 'closed' });
    const kinds = (await json(await h.api('GET', `/api/conversations/${convs[0]!.id}/messages`))).data.map((m: any) => m.kind);
    expect(kinds.sort()).toEqual(['reaction', 'text']);
    // From someone with no conversation at all: recorded as ignored, once.
    expect(await json(await postWaba(ch, reaction('wamid.R3', '4915199999999')))).toMatchObject({ stored: 0, ignored: 1 });
    expect(await json(await postWaba(ch, reaction('wamid.R3', '4915199999999')))).toMatchObject({ ignored: 0, duplicates: 1 });
    expect(await conversationsOf(ch.id)).toHaveLength(1);
    // A message after the close still starts a new conversation.
    expect(await json(await postWaba(ch, wabaText({ id: 'wamid.R4' })))).toMatchObject({ stored: 1 });
    expect((await conversationsOf(ch.id))[0]).toMatchObject({ state: 'queued' });
  });

  it('a webhook read before its channel was deleted, committed after, opens no conversation', async () => {
    const ch = await wabaChannel();
    const key = new URL(ch.webhookUrl).pathname.split('/').pop()!;
    const channel = h.deps.services.ingest.findChannelByKey(key)!; // as the route holds it, before the commit
    expect((await h.api('DELETE', `/api/channels/${ch.id}`)).status).toBe(204);
    const body = wabaText({ id: 'wamid.LATE1' });
    const headers = new Headers({ 'X-Hub-Signature-256': `sha256=${bytesToHex(await hmac('SHA-256', APP_SECRET, enc.encode(body)))}` });
    const result = await h.deps.services.ingest.receive(channel, headers, enc.encode(body));
    expect(result).toMatchObject({ stored: 0, ignored: 1, queued: 0 });
    expect(count('conversations')).toBe(0);
    expect((await postWaba(ch, wabaText({ id: 'wamid.LATE2' }))).status).toBe(404); // and the URL is gone
  });

  it('follows a user who changed numbers: replies and their next messages use the new one, with no alias for the old', async () => {
    const ch = await wabaChannel();
    await postWaba(ch, wabaText({ id: 'wamid.N1', from: '4915112345678' }));
    const contactId = (await conversationsOf(ch.id))[0]!.contactId;
    const changed = numberChanged('wamid.N2', '4915112345678', '4915199999999');
    expect(await json(await postWaba(ch, changed))).toMatchObject({ stored: 1 });
    expect(await json(await h.api('GET', `/api/contacts/${contactId}`))).toMatchObject({ providerContactId: '4915199999999', phone: '4915199999999' });
    // The next message, from the new number, is the same contact in its open conversation.
    await postWaba(ch, wabaText({ id: 'wamid.N3', from: '4915199999999' }));
    const convs = await conversationsOf(ch.id);
    expect(convs).toHaveLength(1);
    expect(convs[0]!.contactId).toBe(contactId);
    // Someone new at the old number is someone new.
    await postWaba(ch, wabaText({ id: 'wamid.N4', from: '4915112345678', name: 'Bo' }));
    expect(count('contacts')).toBe(2);
    // Meta redelivers the old notice: a duplicate changes nothing, the new owner keeps the old number.
    expect(await json(await postWaba(ch, changed))).toMatchObject({ stored: 0, duplicates: 1 });
    const phones = h.deps.db.$client.prepare('SELECT provider_contact_id, phone FROM contacts ORDER BY provider_contact_id').all();
    expect(phones).toEqual([
      { provider_contact_id: '4915112345678', phone: '4915112345678' },
      { provider_contact_id: '4915199999999', phone: '4915199999999' },
    ]);
  });

  it('a number change to a number that wrote first retires the old id, so the old number reaches no one through it', async () => {
    const ch = await wabaChannel();
    await postWaba(ch, wabaText({ id: 'wamid.M1', from: '4915112345678' }));
    await postWaba(ch, wabaText({ id: 'wamid.M2', from: '4915199999999' })); // the new number, before the notice
    const changed = numberChanged('wamid.M3', '4915112345678', '4915199999999');
    expect((await postWaba(ch, changed)).status).toBe(200);
    const rows = h.deps.db.$client.prepare('SELECT provider_contact_id, phone FROM contacts ORDER BY created_at').all() as Array<{ provider_contact_id: string; phone: string }>;
    expect(rows[0]!.provider_contact_id).toMatch(/^4915112345678@moved-\d+$/);
    expect(rows[0]!.phone).toBe('4915199999999');
    expect(rows[1]).toEqual({ provider_contact_id: '4915199999999', phone: '4915199999999' });
    await postWaba(ch, wabaText({ id: 'wamid.M4', from: '4915112345678', name: 'Someone else' }));
    expect(count('contacts')).toBe(3); // the old number's new owner is a contact of their own
  });

  it('keeps one contact when its sender later comes with a business-scoped user id', async () => {
    const ch = await wabaChannel();
    await postWaba(ch, wabaText({ id: 'wamid.P1' }));
    const withUserId = (id: string) =>
      wabaText({ id }).replace('"wa_id":"4915112345678"}', '"wa_id":"4915112345678","user_id":"US.13491208655302741918"}');
    expect(withUserId('x')).toContain('"user_id":"US.13491208655302741918"');
    expect((await postWaba(ch, withUserId('wamid.P2'))).status).toBe(200);
    expect((await postWaba(ch, withUserId('wamid.P3'))).status).toBe(200);
    expect(count('contacts')).toBe(1);
    const convs = await conversationsOf(ch.id);
    expect(convs).toHaveLength(1);
    const contactRow = h.deps.db.$client.prepare('SELECT provider_contact_id, phone FROM contacts').get();
    expect(contactRow).toEqual({ provider_contact_id: 'US.13491208655302741918', phone: '4915112345678' });
    expect(count('messages')).toBe(3);
  });

  it("tells the conversation's agent about a new message while it is offered or active, not after", async () => {
    const ch = await wabaChannel();
    const agent = await json(await h.api('POST', '/api/agents', { name: 'Ana', email: 'ana@example.com' }));
    await postWaba(ch, wabaText({ id: 'wamid.E1' }));
    const events = () =>
      (h.deps.db.$client.prepare("SELECT payload FROM outbox WHERE kind = 'event'").pluck().all() as string[]).map((p) => JSON.parse(p));
    expect(events()).toEqual([]);
    const conv = (await conversationsOf(ch.id))[0]!;
    h.deps.db.$client.prepare("UPDATE conversations SET state = 'active', agent_id = ? WHERE id = ?").run(agent.id, conv.id);
    await postWaba(ch, wabaText({ id: 'wamid.E2' }));
    expect(events()).toEqual([{ agentId: agent.id, event: 'message', data: { conversationId: conv.id } }]);
    h.deps.db.$client.prepare("UPDATE conversations SET state = 'wrapup' WHERE id = ?").run(conv.id);
    await postWaba(ch, wabaText({ id: 'wamid.E3' }));
    expect(events()).toHaveLength(1);
    expect(count('messages')).toBe(3);
  });

  it('starts conversations in the bot state when the channel has a chatbot', async () => {
    const bot = await json(await h.api('POST', '/api/chatbots', { name: 'Greeter', url: 'https://bot.example/hook' }));
    const ch = await wabaChannel('106540352242922', { chatbotId: bot.id });
    await postWaba(ch, wabaText({ id: 'wamid.B1' }));
    expect((await conversationsOf(ch.id))[0]).toMatchObject({ state: 'bot' });
  });

  it('hands the chatbot\'s conversations to ACD when the channel loses its chatbot', async () => {
    const bot = await json(await h.api('POST', '/api/chatbots', { name: 'Greeter', url: 'https://bot.example/hook' }));
    const ch = await wabaChannel('106540352242922', { chatbotId: bot.id });
    await postWaba(ch, wabaText({ id: 'wamid.B1' }));
    const [withBot] = await conversationsOf(ch.id);
    expect(withBot).toMatchObject({ state: 'bot' });

    expect((await h.api('PATCH', `/api/channels/${ch.id}`, { name: 'Support, no bot' })).status).toBe(200);
    expect((await conversationsOf(ch.id))[0]).toMatchObject({ state: 'bot' }); // other changes leave them be
    expect((await h.api('PATCH', `/api/channels/${ch.id}`, { chatbotId: null })).status).toBe(200);
    expect((await conversationsOf(ch.id))[0]).toMatchObject({ id: withBot!.id, state: 'queued' });
    const history = h.deps.db.$client.prepare('SELECT from_state, to_state, reason FROM conversation_history WHERE conversation_id = ? ORDER BY id').all(withBot!.id);
    expect(history).toEqual([
      { from_state: null, to_state: 'bot', reason: 'inbound_message' },
      { from_state: 'bot', to_state: 'queued', reason: 'chatbot_removed' },
    ]);
    await postWaba(ch, wabaText({ id: 'wamid.B2' })); // the contact writes on: the same conversation, now queued
    expect(await conversationsOf(ch.id)).toHaveLength(1);
  });

  it('routes each change by phone number id to the channel of that number (same app secret)', async () => {
    const a = await wabaChannel('1001');
    const b = await wabaChannel('1002');
    const other = await wabaChannel('1003');
    h.deps.db.$client.prepare("UPDATE channels SET messenger = json_set(messenger, '$.appSecret', 'different') WHERE id = ?").run(other.id);
    const payload = JSON.parse(wabaText({ id: 'wamid.R1', phoneNumberId: '1002' }));
    payload.entry[0].changes.push(JSON.parse(wabaText({ id: 'wamid.R2', phoneNumberId: '1003' })).entry[0].changes[0]);
    payload.entry[0].changes.push(JSON.parse(wabaText({ id: 'wamid.R3', phoneNumberId: '9999' })).entry[0].changes[0]);
    const res = await postWaba(a, JSON.stringify(payload));
    expect(res.status).toBe(200);
    expect(await conversationsOf(a.id)).toHaveLength(0);
    expect(await conversationsOf(b.id)).toHaveLength(1);
    expect(await conversationsOf(other.id)).toHaveLength(0);
    expect(count("inbound_events WHERE outcome = 'ignored'")).toBe(2);
  });

  it('moves outbound statuses forward only and ignores unknown ids', async () => {
    const ch = await wabaChannel();
    await postWaba(ch, wabaText({ id: 'wamid.IN' }));
    const conv = (await conversationsOf(ch.id))[0]!;
    const now = Date.now();
    h.deps.db.$client
      .prepare(
        "INSERT INTO messages (id, channel_id, conversation_id, direction, kind, text, provider_message_id, status, created_at, updated_at) VALUES ('msg_out1', ?, ?, 'out', 'text', 'hi', 'wamid.OUT', 'sent', ?, ?)",
      )
      .run(ch.id, conv.id, now, now);
    const status = () => h.deps.db.$client.prepare("SELECT status FROM messages WHERE id = 'msg_out1'").pluck().get();
    expect((await postWaba(ch, wabaStatus('wamid.OUT', 'read'))).status).toBe(200);
    expect(status()).toBe('read');
    expect((await postWaba(ch, wabaStatus('wamid.OUT', 'delivered'))).status).toBe(200);
    expect(status()).toBe('read');
    expect((await postWaba(ch, wabaStatus('wamid.OUT', 'sent'))).status).toBe(200);
    expect(status()).toBe('read');
    expect((await postWaba(ch, wabaStatus('wamid.UNKNOWN', 'delivered'))).status).toBe(200);
  });

  it.each([
    ['missing signature', async (ch: any, body: string) => h.app.request(keyOf(ch), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body }), 401],
    ['wrong secret', async (ch: any, body: string) => postWaba(ch, body, 'wrong-secret'), 401],
    ['garbled signature', async (ch: any, body: string) => postWaba(ch, body, APP_SECRET, { 'X-Hub-Signature-256': 'sha256=zz' }), 401],
  ])('refuses a %s with %s and stores nothing', async (_n, send, status) => {
    const ch = await wabaChannel();
    const res = await send(ch, wabaText({ id: 'wamid.X' }));
    expect(res.status).toBe(status);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    expect(count('messages') + count('contacts') + count('conversations') + count('inbound_events')).toBe(0);
  });

  it.each([
    ['malformed JSON', '{"object":"whatsapp_business_account",', 'invalid_json', undefined],
    ['wrong object', JSON.stringify({ object: 'page', entry: [] }), 'validation_failed', 'object'],
    ['message without id', wabaText({ id: 'x' }).replace('"id":"x",', ''), 'validation_failed', 'entry.0.changes.0.value.messages.0.id'],
  ])('answers %s with 400 naming the field and stores nothing', async (_n, body, code, field) => {
    const ch = await wabaChannel();
    const res = await postWaba(ch, body);
    expect(res.status).toBe(400);
    const p = await json(res);
    expect(p.code).toBe(code);
    if (field) expect(p.field).toBe(field);
    expect(count('messages') + count('contacts') + count('inbound_events')).toBe(0);
  });

  it('applies a channel change to the next webhook, whether made through this gateway or by another process', async () => {
    const ch = await wabaChannel();
    expect((await postWaba(ch, wabaText({ id: 'wamid.CH1' }))).status).toBe(200); // the channel is now cached

    // Through the API (this process's connection): the new secret applies at once.
    const messenger = { provider: 'whatsapp_business', phoneNumberId: '106540352242922', accessToken: 'tok', appSecret: 'rotated-1', verifyToken: 'verify-me' };
    expect((await h.api('PATCH', `/api/channels/${ch.id}`, { messenger })).status).toBe(200);
    expect((await postWaba(ch, wabaText({ id: 'wamid.CH2' }))).status).toBe(401);
    expect((await postWaba(ch, wabaText({ id: 'wamid.CH3' }), 'rotated-1')).status).toBe(200);

    // Another process on the same file (a second connection): seen from the next event-loop turn on.
    const other = new Database(path.join(h.config.dataDir, DB_FILE_NAME));
    try {
      const row = other.prepare('SELECT messenger FROM channels WHERE id = ?').pluck().get(ch.id) as string;
      other.prepare('UPDATE channels SET messenger = ? WHERE id = ?').run(JSON.stringify({ ...JSON.parse(row), appSecret: 'rotated-2' }), ch.id);
      await new Promise((r) => setImmediate(r));
      expect((await postWaba(ch, wabaText({ id: 'wamid.CH4' }), 'rotated-1')).status).toBe(401);
      expect((await postWaba(ch, wabaText({ id: 'wamid.CH5' }), 'rotated-2')).status).toBe(200);
      other.prepare('UPDATE channels SET deleted_at = 1 WHERE id = ?').run(ch.id);
      await new Promise((r) => setImmediate(r));
      expect((await postWaba(ch, wabaText({ id: 'wamid.CH6' }), 'rotated-2')).status).toBe(404);
    } finally {
      other.close();
    }
    const stored = h.deps.db.$client.prepare("SELECT provider_message_id FROM messages WHERE provider_message_id LIKE 'wamid.CH%' ORDER BY 1").pluck().all();
    expect(stored).toEqual(['wamid.CH1', 'wamid.CH3', 'wamid.CH5']);
  });

  it('answers 404 for an unknown key and 413 for a body over 1 MiB, even without Content-Length', async () => {
    expect((await h.app.request('/webhooks/nope-nope-nope-nope', { method: 'POST', body: '{}' })).status).toBe(404);
    const ch = await wabaChannel();
    const big = JSON.stringify({ object: 'whatsapp_business_account', entry: [], pad: 'x'.repeat(1024 * 1024) });
    expect((await postWaba(ch, big)).status).toBe(413);
    const chunks = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 20; i++) controller.enqueue(new Uint8Array(64 * 1024).fill(32));
        controller.close();
      },
    });
    const streamed = await h.app.request(keyOf(ch), { method: 'POST', body: chunks, duplex: 'half' } as RequestInit);
    expect(streamed.status).toBe(413);
    expect(count('messages')).toBe(0);
  });

  it('refuses a message whose copied provider data nests too deep (400, nothing stored), and stores one within the limit', async () => {
    const ch = await wabaChannel();
    // Written as text: JSON.stringify itself cannot go that deep.
    const nested = (levels: number) => `${'['.repeat(levels)}"x"${']'.repeat(levels)}`;
    const contactsMessage = (id: string, extra: string) =>
      JSON.stringify({
        object: 'whatsapp_business_account',
        entry: [{ id: '1', changes: [{ field: 'messages', value: {
          messaging_product: 'whatsapp',
          metadata: { display_phone_number: '15550001111', phone_number_id: '106540352242922' },
          contacts: [{ profile: { name: 'Ana' }, wa_id: '4915112345678' }],
          messages: [{ from: '4915112345678', id, timestamp: '1767225600', type: 'contacts',
            contacts: [{ name: { formatted_name: 'Bob' }, phones: [{ phone: '+1 555 0100', wa_id: '15550100' }], extra: 'EXTRA' }] }],
        } }] }],
      }).replace('"EXTRA"', extra);
    const rows = () => ['messages', 'contacts', 'conversations', 'outbox', 'inbound_events'].map(count);
    const before = rows();
    // Deep enough that storing it overflowed the stack (a 500) before the check.
    const res = await postWaba(ch, contactsMessage('wamid.deep', nested(100_000)));
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toContain('application/problem+json');
    const problem = await json(res);
    expect(problem.field).toBe('(body)');
    expect(problem.detail).toContain('nested more than 32 levels deep');
    expect(rows()).toEqual(before);

    expect((await postWaba(ch, contactsMessage('wamid.shallow', nested(20)))).status).toBe(200);
    expect(count("messages WHERE provider_message_id = 'wamid.shallow'")).toBe(1);
  });

  it('records events it does not handle as ignored and answers 200', async () => {
    const ch = await wabaChannel();
    const body = JSON.stringify({
      object: 'whatsapp_business_account',
      entry: [{ id: '1', changes: [{ field: 'message_template_status_update', value: { event: 'APPROVED' } }] }],
    });
    const res = await postWaba(ch, body);
    expect(res.status).toBe(200);
    expect(count("inbound_events WHERE outcome = 'ignored'")).toBe(1);
    expect(count('messages')).toBe(0);
  });
});

describe('Telegram webhooks', () => {
  async function tgChannel() {
    return json(
      await h.api('POST', '/api/channels', channelBody({ messenger: { provider: 'telegram', botToken: '123456789:AAH-abcdefghijklmnopqrstuvwxyz012', secretToken: 'tg-secret_1' } })),
    );
  }
  const post = (ch: any, body: unknown, secret = 'tg-secret_1') =>
    h.app.request(keyOf(ch), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...(secret ? { 'X-Telegram-Bot-Api-Secret-Token': secret } : {}) },
      body: JSON.stringify(body),
    });
  const update = (updateId: number, text: string, messageId = updateId, date = 1767225600) => ({
    update_id: updateId,
    message: { message_id: messageId, from: { id: 777, is_bot: false, first_name: 'Ana', username: 'ana_k' }, chat: { id: 777, type: 'private', first_name: 'Ana', username: 'ana_k' }, date, text },
  });
  /** my_chat_member: the user blocked the bot (`kicked`) or unblocked it (`member`) at `date`. */
  const member = (updateId: number, status: 'kicked' | 'member', date = 1767225700) => ({
    update_id: updateId,
    my_chat_member: {
      chat: { id: 777, type: 'private', first_name: 'Ana' },
      from: { id: 777, is_bot: false, first_name: 'Ana' },
      date,
      old_chat_member: { user: { id: 1, is_bot: true, first_name: 'bot' }, status: status === 'kicked' ? 'member' : 'kicked' },
      new_chat_member: { user: { id: 1, is_bot: true, first_name: 'bot' }, status },
    },
  });

  it('forgets an update id after the retention period, so an id Telegram reuses later is not dropped', async () => {
    const ch = await tgChannel();
    const clock = h.clock as FakeClock;
    expect((await post(ch, update(200, 'first'))).status).toBe(200);
    expect(await json(await post(ch, update(200, 'first')))).toMatchObject({ stored: 0, duplicates: 1 });
    clock.advance(6 * 86_400_000);
    expect((await post(ch, update(201, 'six days later'))).status).toBe(200);
    clock.advance(86_400_000 + 1); // update 200 is now past the default 7 days, update 201 is not

    expect(await h.deps.retention.sweep()).toBe(1);
    expect(h.deps.db.$client.prepare('SELECT dedupe_key FROM inbound_events').pluck().all()).toEqual(['update:201']);
    expect(await h.deps.retention.sweep()).toBe(0);
    // After a week without updates Telegram may start again at any id, this one included.
    expect(await json(await post(ch, update(200, 'a new update with an old id', 9001)))).toMatchObject({ stored: 1, duplicates: 0 });
    expect(await json(await post(ch, update(201, 'six days later')))).toMatchObject({ stored: 0, duplicates: 1 });
  });

  it('stores messages, dedupes on update_id, and refuses a wrong secret token', async () => {
    const ch = await tgChannel();
    expect((await post(ch, update(100, '/start order-4711'))).status).toBe(200);
    expect((await post(ch, update(100, '/start order-4711'))).status).toBe(200);
    expect((await post(ch, update(101, 'hello?'))).status).toBe(200);
    expect((await post(ch, update(102, 'x'), 'wrong'))).toHaveProperty('status', 401);
    expect((await post(ch, update(103, 'x'), ''))).toHaveProperty('status', 401);
    const convs = await conversationsOf(ch.id);
    expect(convs).toHaveLength(1);
    const msgs = (await json(await h.api('GET', `/api/conversations/${convs[0]!.id}/messages`))).data;
    expect(msgs.map((m: any) => m.text)).toEqual(['/start order-4711', 'hello?']);
    const contact = await json(await h.api('GET', `/api/contacts/${convs[0]!.contactId}`));
    expect(contact).toMatchObject({ providerContactId: '777', username: 'ana_k', name: 'Ana' });
  });

  it('marks a contact unreachable when the bot is blocked and reachable when unblocked', async () => {
    const ch = await tgChannel();
    await post(ch, update(1, 'hi'));
    const contactId = (await conversationsOf(ch.id))[0]!.contactId;
    expect((await post(ch, member(2, 'kicked'))).status).toBe(200);
    expect((await json(await h.api('GET', `/api/contacts/${contactId}`))).reachable).toBe(false);
    expect((await post(ch, member(3, 'member'))).status).toBe(200);
    expect((await json(await h.api('GET', `/api/contacts/${contactId}`))).reachable).toBe(true);
  });

  it('applies blocks, unblocks and messages by when they happened, not by when they arrive', async () => {
    const ch = await tgChannel();
    await post(ch, update(1, 'hi', 1, 1767225600));
    const contactId = (await conversationsOf(ch.id))[0]!.contactId;
    const reachable = async () => (await json(await h.api('GET', `/api/contacts/${contactId}`))).reachable;

    // Unblocked at :800, then a retried block from :700 arrives: still reachable.
    await post(ch, member(11, 'member', 1767225800));
    await post(ch, member(10, 'kicked', 1767225700));
    expect(await reachable()).toBe(true);
    // Blocked at :900; a message sent at :850 arrives late: stored, but still blocked.
    await post(ch, member(12, 'kicked', 1767225900));
    expect(await json(await post(ch, update(13, 'sent before the block', 13, 1767225850)))).toMatchObject({ stored: 1 });
    expect(await reachable()).toBe(false);
    // A message at :1000 makes it reachable; a block from :950 arriving after it does not undo that.
    await post(ch, update(14, 'sent after the block', 14, 1767226000));
    expect(await reachable()).toBe(true);
    await post(ch, member(15, 'kicked', 1767225950));
    expect(await reachable()).toBe(true); // the message at :1000 is newer than the block
    // A block in the same second as the last message still blocks (it came after it).
    await post(ch, member(16, 'kicked', 1767226000));
    expect(await reachable()).toBe(false);
  });

  it('a button pressed before a block but delivered after it leaves the contact blocked (a press has no date)', async () => {
    const ch = await tgChannel();
    await post(ch, update(1, 'hi', 1, 1767225600));
    const contactId = (await conversationsOf(ch.id))[0]!.contactId;
    expect((await post(ch, member(3, 'kicked', 1767225700))).status).toBe(200);
    const press = {
      update_id: 2,
      callback_query: {
        id: '4000000000000000001',
        from: { id: 777, is_bot: false, first_name: 'Ana' },
        message: { message_id: 1, chat: { id: 777, type: 'private', first_name: 'Ana' }, date: 1767225600, text: 'pick a slot' },
        chat_instance: '-1',
        data: 'slot:am',
      },
    };
    expect(await json(await post(ch, press))).toMatchObject({ stored: 1 });
    expect((await json(await h.api('GET', `/api/contacts/${contactId}`))).reachable).toBe(false);
  });

  it('opens no conversation for service messages (the bot added to a group), and records them as ignored', async () => {
    const ch = await tgChannel();
    const group = { id: -4000000099, type: 'group', title: 'Order 4712' };
    const from = { id: 777, is_bot: false, first_name: 'Ana' };
    const bot = { id: 123456789, is_bot: true, first_name: 'Shop Bot' };
    const added = { update_id: 1, message: { message_id: 1, from, chat: group, date: 1767225600, new_chat_members: [bot] } };
    expect(await json(await post(ch, added))).toMatchObject({ stored: 0, ignored: 1 });
    expect(await json(await post(ch, { ...added, update_id: 2 }))).toMatchObject({ stored: 0, ignored: 0, duplicates: 1 });
    expect(await json(await post(ch, { update_id: 3, message: { message_id: 2, from, chat: group, date: 1767225601, new_chat_title: 'Order 4712 (urgent)' } }))).toMatchObject({ ignored: 1 });
    expect(await conversationsOf(ch.id)).toHaveLength(0);
    expect(count('contacts')).toBe(0);
    // Someone writing in the group does open one.
    expect(await json(await post(ch, { update_id: 4, message: { message_id: 3, from, chat: group, date: 1767225602, text: 'where is it?' } }))).toMatchObject({ stored: 1 });
    expect(await conversationsOf(ch.id)).toHaveLength(1);
  });

  it('an edit after the close (a live location moving on) goes with the closed conversation, with its coordinates', async () => {
    const ch = await tgChannel();
    await post(ch, update(1, 'here I am'));
    h.deps.db.$client.prepare("UPDATE conversations SET state = 'closed'").run();
    const moved = {
      update_id: 2,
      edited_message: {
        message_id: 1,
        from: { id: 777, is_bot: false, first_name: 'Ana' },
        chat: { id: 777, type: 'private', first_name: 'Ana' },
        date: 1767225600,
        edit_date: 1767225660,
        location: { latitude: 52.54, longitude: 13.42, live_period: 900 },
      },
    };
    expect(await json(await post(ch, moved))).toMatchObject({ stored: 1 });
    const convs = await conversationsOf(ch.id);
    expect(convs).toHaveLength(1);
    expect(convs[0]).toMatchObject({ state: 'closed' });
    const edit = (await json(await h.api('GET', `/api/conversations/${convs[0]!.id}/messages`))).data.find((m: any) => m.kind === 'edit');
    expect(edit).toMatchObject({ text: '52.54,13.42' });
    const row = h.deps.db.$client.prepare("SELECT details FROM messages WHERE kind = 'edit'").pluck().get() as string;
    expect(JSON.parse(row)).toMatchObject({ latitude: 52.54, longitude: 13.42, editedMessageId: '777:1' });
  });

  it('a contact who writes again is reachable again, in its open conversation or a new one', async () => {
    const ch = await tgChannel();
    await post(ch, update(1, 'hi'));
    const contactId = (await conversationsOf(ch.id))[0]!.contactId;
    const reachable = async () => (await json(await h.api('GET', `/api/contacts/${contactId}`))).reachable;
    expect((await post(ch, member(2, 'kicked', 1767225700))).status).toBe(200);
    expect(await reachable()).toBe(false);
    expect((await post(ch, update(3, 'back again', 3, 1767225800))).status).toBe(200);
    expect(await reachable()).toBe(true);

    h.deps.db.$client.prepare("UPDATE conversations SET state = 'closed'").run();
    expect((await post(ch, member(4, 'kicked', 1767225900))).status).toBe(200);
    expect(await reachable()).toBe(false);
    expect((await post(ch, update(5, 'new question', 5, 1767226000))).status).toBe(200);
    expect(await conversationsOf(ch.id)).toHaveLength(2);
    expect(await reachable()).toBe(true);
  });

  it('follows a group that became a supergroup: one contact, one conversation, whichever notice comes first', async () => {
    const ch = await tgChannel();
    const group = { id: -4000000001, type: 'group', title: 'Order 4711' };
    const supergroup = { id: -1004000000001, type: 'supergroup', title: 'Order 4711' };
    const from = { id: 777, is_bot: false, first_name: 'Ana' };
    const say = (updateId: number, chat: object, text: string) => ({ update_id: updateId, message: { message_id: updateId, from, chat, date: 1767225600, text } });
    const notice = (updateId: number, chat: object, field: object) => ({ update_id: updateId, message: { message_id: updateId, from, chat, date: 1767225700, ...field } });
    const contacts = () => h.deps.db.$client.prepare('SELECT provider_contact_id FROM contacts').pluck().all();

    expect((await post(ch, say(1, group, 'is my order shipped?'))).status).toBe(200);
    // Telegram tells the new chat first here; the old chat's notice then finds nothing left to move.
    expect((await post(ch, notice(2, supergroup, { migrate_from_chat_id: group.id }))).status).toBe(200);
    expect(contacts()).toEqual(['-1004000000001']);
    expect((await post(ch, notice(3, group, { migrate_to_chat_id: supergroup.id }))).status).toBe(200);
    expect(contacts()).toEqual(['-1004000000001']);
    expect((await post(ch, say(4, supergroup, 'hello from the supergroup'))).status).toBe(200);

    const convs = await conversationsOf(ch.id);
    expect(convs).toHaveLength(1);
    const msgs = (await json(await h.api('GET', `/api/conversations/${convs[0]!.id}/messages`))).data;
    expect(msgs.map((m: any) => m.text)).toEqual(['is my order shipped?', 'hello from the supergroup']);
    // A chat that is a contact already is not merged into: both stay as they are.
    expect((await post(ch, say(5, { id: -4000000002, type: 'group', title: 'Other' }, 'hi'))).status).toBe(200);
    expect((await post(ch, notice(6, { id: -4000000002, type: 'group', title: 'Other' }, { migrate_to_chat_id: supergroup.id }))).status).toBe(200);
    expect(contacts().sort()).toEqual(['-1004000000001', '-4000000002']);
  });

  it('a move absorbs a contact the new chat got without conversations, and late messages from the old chat follow it', async () => {
    const ch = await tgChannel();
    const group = { id: -4000000003, type: 'group', title: 'Order 4712' };
    const supergroup = { id: -1004000000003, type: 'supergroup', title: 'Order 4712' };
    const from = { id: 777, is_bot: false, first_name: 'Ana' };
    const bot = { id: 1, is_bot: true, first_name: 'bot' };
    const contacts = () => h.deps.db.$client.prepare('SELECT provider_contact_id FROM contacts').pluck().all();

    expect((await post(ch, { update_id: 1, message: { message_id: 1, from, chat: group, date: 1767225600, text: 'first' } })).status).toBe(200);
    // Telegram adds the bot to the new supergroup: a contact for it, without conversations.
    const joined = { chat: supergroup, from, date: 1767225700, old_chat_member: { user: bot, status: 'left' }, new_chat_member: { user: bot, status: 'member' } };
    expect((await post(ch, { update_id: 2, my_chat_member: joined })).status).toBe(200);
    expect(contacts().sort()).toEqual(['-1004000000003', '-4000000003']);
    expect((await post(ch, { update_id: 3, message: { message_id: 3, from, chat: group, date: 1767225700, migrate_to_chat_id: supergroup.id } })).status).toBe(200);
    expect(contacts()).toEqual(['-1004000000003']);

    // A message written in the old group before the move, delivered late: the same contact.
    expect((await post(ch, { update_id: 4, message: { message_id: 4, from, chat: group, date: 1767225650, text: 'late' } })).status).toBe(200);
    expect(contacts()).toEqual(['-1004000000003']);
    const convs = await conversationsOf(ch.id);
    expect(convs).toHaveLength(1);
    const msgs = (await json(await h.api('GET', `/api/conversations/${convs[0]!.id}/messages`))).data;
    expect(msgs.map((m: any) => m.text)).toEqual(['first', 'late']);
    expect(await json(await h.api('GET', `/api/contacts/${convs[0]!.contactId}`))).toMatchObject({ providerContactId: '-1004000000003', name: 'Order 4712' });
  });

  it('records unknown update kinds as ignored', async () => {
    const ch = await tgChannel();
    expect((await post(ch, { update_id: 9, new_update_kind: { x: 1 } })).status).toBe(200);
    expect(count("inbound_events WHERE outcome = 'ignored'")).toBe(1);
  });
});

describe('WAHA webhooks', () => {
  async function wahaChannel() {
    return json(
      await h.api('POST', '/api/channels', channelBody({ messenger: { provider: 'whatsapp', baseUrl: 'http://127.0.0.1:1', session: 'default', apiKey: 'waha-key', hmacKey: 'my-secret-key' } })),
    );
  }
  async function post(ch: any, body: unknown, key = 'my-secret-key') {
    const raw = JSON.stringify(body);
    const sig = bytesToHex(await hmac('SHA-512', key, enc.encode(raw)));
    return h.app.request(keyOf(ch), {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Webhook-Hmac': sig, 'X-Webhook-Hmac-Algorithm': 'sha512' },
      body: raw,
    });
  }
  const msg = (id: string, fromMe = false) => ({
    event: 'message',
    session: 'default',
    engine: 'NOWEB',
    payload: { id, timestamp: 1767225600, from: '4915112345678@c.us', fromMe, to: '4930111111@c.us', body: 'Hi', hasMedia: false },
  });

  it('stores incoming messages, ignores fromMe, and applies acks to outbound messages', async () => {
    const ch = await wahaChannel();
    expect((await post(ch, msg('false_4915112345678@c.us_3EB0A'))).status).toBe(200);
    expect(await json(await post(ch, msg('true_4915112345678@c.us_3EB0B', true)))).toMatchObject({ stored: 0, ignored: 1, duplicates: 0 });
    // Redelivered, an ignored event with an id is a duplicate: nothing more is recorded.
    const recorded = count("inbound_events WHERE outcome = 'ignored'");
    expect(await json(await post(ch, msg('true_4915112345678@c.us_3EB0B', true)))).toMatchObject({ stored: 0, ignored: 0, duplicates: 1 });
    expect(count("inbound_events WHERE outcome = 'ignored'")).toBe(recorded);
    expect(count('messages')).toBe(1);
    const conv = (await conversationsOf(ch.id))[0]!;
    expect((await json(await h.api('GET', `/api/contacts/${conv.contactId}`))).phone).toBe('4915112345678');
    const now = Date.now();
    h.deps.db.$client
      .prepare(
        "INSERT INTO messages (id, channel_id, conversation_id, direction, kind, text, provider_message_id, status, created_at, updated_at) VALUES ('msg_o', ?, ?, 'out', 'text', 'yo', 'true_4915112345678@c.us_OUT', 'sent', ?, ?)",
      )
      .run(ch.id, conv.id, now, now);
    const ack = { event: 'message.ack', session: 'default', payload: { id: 'true_4915112345678@c.us_OUT', from: '4915112345678@c.us', fromMe: true, ack: 2, ackName: 'DEVICE' } };
    expect((await post(ch, ack)).status).toBe(200);
    expect(h.deps.db.$client.prepare("SELECT status FROM messages WHERE id = 'msg_o'").pluck().get()).toBe('delivered');
    expect((await post(ch, msg('false_x_1'), 'wrong-key')).status).toBe(401);
  });
});

describe('api channel webhooks', () => {
  it('verifies Standard Webhooks signatures with a 5-minute window and dedupes on message id', async () => {
    const created = await json(
      await h.api('POST', '/api/channels', channelBody({ messenger: { provider: 'api', callbackUrl: 'https://crm.example/hook' }, writeFirst: { enabled: false, channelId: null } })),
    );
    const secret = created.messenger.secret as string;
    const body = JSON.stringify({ type: 'message.received', data: { contact: { id: 'crm-42', name: 'Iryna', phone: '+380501234567' }, message: { id: 'ext-1001', text: 'Where is my order?' } } });
    const send = async (tsSec: number, id = 'evt_1', sec = secret) =>
      h.app.request(keyOf(created), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'webhook-id': id, 'webhook-timestamp': String(tsSec), 'webhook-signature': await signStandardWebhook(sec, id, tsSec, body) },
        body,
      });
    const nowSec = Math.floor(h.clock.now() / 1000);
    expect((await send(nowSec - 301)).status).toBe(401);
    expect((await send(nowSec + 301)).status).toBe(401);
    expect((await send(nowSec, 'evt_1', 'whsec_' + btoa('another-secret-another-secret'))).status).toBe(401);
    expect(count('messages')).toBe(0);
    expect((await send(nowSec)).status).toBe(200);
    expect((await send(nowSec - 10, 'evt_2')).status).toBe(200);
    expect(count('messages')).toBe(1);
    const conv = (await conversationsOf(created.id))[0]!;
    expect(await json(await h.api('GET', `/api/contacts/${conv.contactId}`))).toMatchObject({ providerContactId: 'crm-42', phone: '380501234567' });
  });

  it('keeps two CRM contacts apart when they share a phone number (the id is the contact)', async () => {
    const created = await json(
      await h.api('POST', '/api/channels', channelBody({ messenger: { provider: 'api', callbackUrl: 'https://crm.example/hook' }, writeFirst: { enabled: false, channelId: null } })),
    );
    const send = async (eventId: string, contact: Record<string, string>, messageId: string) => {
      const body = JSON.stringify({ type: 'message.received', data: { contact, message: { id: messageId, text: 'hello' } } });
      const ts = Math.floor(h.clock.now() / 1000);
      return h.app.request(keyOf(created), {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'webhook-id': eventId, 'webhook-timestamp': String(ts), 'webhook-signature': await signStandardWebhook(created.messenger.secret, eventId, ts, body) },
        body,
      });
    };
    expect((await send('evt_a', { id: 'crm-42', name: 'Iryna', phone: '+380501234567' }, 'ext-1')).status).toBe(200);
    expect((await send('evt_b', { id: 'crm-43', name: 'Oleh', phone: '+380501234567' }, 'ext-2')).status).toBe(200);
    const contacts = h.deps.db.$client.prepare('SELECT provider_contact_id, name FROM contacts WHERE channel_id = ? ORDER BY provider_contact_id').all(created.id);
    expect(contacts).toEqual([{ provider_contact_id: 'crm-42', name: 'Iryna' }, { provider_contact_id: 'crm-43', name: 'Oleh' }]);
    expect(await conversationsOf(created.id)).toHaveLength(2);
  });
});

describe('read API', () => {
  it('paginates conversations newest first and filters by state', async () => {
    const ch = await wabaChannel();
    for (let i = 0; i < 5; i++) {
      await postWaba(ch, wabaText({ id: `wamid.P${i}`, from: `49151000000${i}` }));
    }
    const first = await json(await h.api('GET', `/api/conversations?channelId=${ch.id}&limit=2`));
    expect(first.data).toHaveLength(2);
    const second = await json(await h.api('GET', `/api/conversations?channelId=${ch.id}&limit=2&cursor=${first.nextCursor}`));
    const third = await json(await h.api('GET', `/api/conversations?channelId=${ch.id}&limit=2&cursor=${second.nextCursor}`));
    expect(third.nextCursor).toBeNull();
    const ids = [...first.data, ...second.data, ...third.data].map((c: any) => c.id);
    expect(new Set(ids).size).toBe(5);
    expect((await json(await h.api('GET', `/api/conversations?state=closed`))).data).toHaveLength(0);
    const bad = await h.api('GET', '/api/conversations?state=weird');
    expect(bad.status).toBe(400);
    expect((await json(bad)).field).toBe('state');
    expect((await h.api('GET', '/api/conversations', undefined, null)).status).toBe(401);
  });

  it("gives each conversation's newest message time as lastMessageAt; a message leaves updatedAt alone", async () => {
    const ch = await wabaChannel();
    const started = h.clock.now();
    await postWaba(ch, wabaText({ id: 'wamid.L1' }));
    const [created] = await conversationsOf(ch.id);
    expect(created).toMatchObject({ createdAt: started, updatedAt: started, lastMessageAt: started });

    (h.clock as FakeClock).advance(60_000);
    const later = started + 60_000;
    await postWaba(ch, wabaText({ id: 'wamid.L2', timestamp: Math.floor(later / 1000) - 5 })); // written 5 s before it arrived
    const one = await json(await h.api('GET', `/api/conversations/${created!.id}`));
    expect(one).toMatchObject({ updatedAt: started, lastMessageAt: later });
    expect((await conversationsOf(ch.id))[0]).toMatchObject({ updatedAt: started, lastMessageAt: later });
    // The contact, though, keeps its inbound time current (the WhatsApp 24-hour window needs it):
    // when the message was written, by the provider's clock, not when it arrived.
    expect(await json(await h.api('GET', `/api/contacts/${created!.contactId}`))).toMatchObject({ lastInboundAt: (Math.floor(later / 1000) - 5) * 1000 });

    // A redelivery is a duplicate: nothing moves.
    (h.clock as FakeClock).advance(60_000);
    await postWaba(ch, wabaText({ id: 'wamid.L2' }));
    expect(await json(await h.api('GET', `/api/conversations/${created!.id}`))).toMatchObject({ updatedAt: started, lastMessageAt: later });
  });
});

/**
 * Under Node the webhook body is read from the IncomingMessage itself (src/http/routes/webhooks.ts),
 * not through the Web Request that app.request() above goes through: the same answers over a real
 * HTTP server, whether the body comes in one chunk or many, too large, or cut off.
 */
describe('webhook bodies over a real Node HTTP server', () => {
  let server: ServerType;
  let port: number;
  beforeEach(async () => {
    server = await new Promise<ServerType>((resolve) => {
      const s = serve({ fetch: h.app.fetch, port: 0, hostname: '127.0.0.1' }, () => resolve(s));
    });
    port = (server.address() as AddressInfo).port;
  });
  afterEach(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  /** POSTs `parts` as they are (one write each; chunked unless `length` is given) and reads the answer. */
  function post(pathname: string, parts: Uint8Array[], headers: Record<string, string>, opts: { length?: number; abortAfter?: number } = {}) {
    return new Promise<{ status: number; body: string } | 'aborted'>((resolve, reject) => {
      const req = httpRequest(
        { host: '127.0.0.1', port, path: pathname, method: 'POST', headers: { ...headers, ...(opts.length !== undefined ? { 'Content-Length': String(opts.length) } : {}) } },
        (res: IncomingMessage) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => resolve({ status: res.statusCode!, body }));
        },
      );
      req.on('error', (err) => (opts.abortAfter !== undefined ? resolve('aborted') : reject(err)));
      (async () => {
        for (const [i, part] of parts.entries()) {
          if (opts.abortAfter === i) {
            req.destroy();
            resolve('aborted');
            return;
          }
          req.write(part);
          await new Promise((r) => setTimeout(r, 5));
        }
        req.end();
      })().catch(reject);
    });
  }

  async function signedHeaders(body: Uint8Array) {
    return { 'Content-Type': 'application/json', 'X-Hub-Signature-256': `sha256=${bytesToHex(await hmac('SHA-256', APP_SECRET, body))}` };
  }

  it('stores a webhook sent in one piece and one sent in many, verified over the joined bytes', async () => {
    const ch = await wabaChannel();
    const one = enc.encode(wabaText({ id: 'wamid.node.1', body: 'Grüße 😀' }));
    expect(await post(keyOf(ch), [one], await signedHeaders(one), { length: one.byteLength })).toMatchObject({ status: 200 });

    const many = enc.encode(wabaText({ id: 'wamid.node.2', body: 'in ' + 'pieces '.repeat(200) }));
    const parts = [many.subarray(0, 7), many.subarray(7, 500), many.subarray(500, 501), many.subarray(501)];
    expect(await post(keyOf(ch), parts, await signedHeaders(many))).toMatchObject({ status: 200 });
    const bad = await post(keyOf(ch), parts, await signedHeaders(one));
    expect(bad).toMatchObject({ status: 401 });
    // An empty body (no chunk at all) ends too: signed, it is a 400 for not being JSON.
    const empty = new Uint8Array(0);
    const none = await post(keyOf(ch), [], await signedHeaders(empty), { length: 0 });
    expect(none).toMatchObject({ status: 400 });
    expect(JSON.parse((none as { body: string }).body)).toMatchObject({ code: 'invalid_json' });

    const convs = await conversationsOf(ch.id);
    const texts = (await json(await h.api('GET', `/api/conversations/${convs[0]!.id}/messages`))).data.map((m: { text: string }) => m.text);
    expect(texts).toEqual(expect.arrayContaining(['Grüße 😀', 'in ' + 'pieces '.repeat(200)]));
    expect(count('messages')).toBe(2);
  });

  it('answers 413 to a chunked body past 1 MiB, and to a declared one, storing nothing', async () => {
    const ch = await wabaChannel();
    const chunk = new Uint8Array(64 * 1024).fill(32);
    const headers = { 'Content-Type': 'application/json', 'X-Hub-Signature-256': `sha256=${'0'.repeat(64)}` };
    const streamed = await post(keyOf(ch), Array.from({ length: 20 }, () => chunk), headers);
    expect(streamed).toMatchObject({ status: 413 });
    expect(JSON.parse((streamed as { body: string }).body)).toMatchObject({ code: 'payload_too_large' });
    const declared = await post(keyOf(ch), [chunk], headers, { length: 2 * 1024 * 1024 });
    expect(declared).toMatchObject({ status: 413 });
    expect(count('messages')).toBe(0);
  });

  it('stores nothing for a body cut off by the client, and keeps serving', async () => {
    const ch = await wabaChannel();
    const body = enc.encode(wabaText({ id: 'wamid.node.cut' }));
    expect(await post(keyOf(ch), [body.subarray(0, 100), body.subarray(100)], await signedHeaders(body), { length: body.byteLength, abortAfter: 1 })).toBe('aborted');
    await new Promise((r) => setTimeout(r, 100));
    expect(count('messages')).toBe(0);
    const next = enc.encode(wabaText({ id: 'wamid.node.after' }));
    expect(await post(keyOf(ch), [next], await signedHeaders(next), { length: next.byteLength })).toMatchObject({ status: 200 });
    expect(count('messages')).toBe(1);
  });
});
