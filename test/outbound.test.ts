import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { json } from './harness.js';
import { bytesToHex, hmac } from '../src/lib/crypto.js';
import { createOutboundWriter } from '../src/outbound/compose.js';
import { pauseFor } from '../src/outbound/worker.js';
import {
  TG_TOKEN,
  WABA_APP_SECRET,
  WABA_TOKEN,
  WAHA_KEY,
  activeConversation,
  createAgent,
  createChannel,
  inbound,
  deliveryRow,
  messageRow,
  outboundHarness,
  settled,
  waitFor,
  startFakes,
  type Fakes,
  type OutboundHarness,
  type Provider,
} from './outbound-helpers.js';
import { telegramError, verifyStandardWebhook } from './fakes/index.js';
import { expectHoldCountersConsistent } from './invariants.js';

let fakes: Fakes;
let h: OutboundHarness;
let open = false;
beforeAll(async () => {
  fakes = await startFakes();
});
afterAll(async () => {
  await fakes.close();
});
afterEach(async () => {
  // Write-first holds count toward the agent's load and per-channel counter like ACD assignments.
  if (open) expectHoldCountersConsistent(h.deps.db.$client);
  await h?.close();
  open = false;
  fakes.reset();
});

const template = { name: 'order_update', language: { code: 'en_US' }, components: [{ type: 'body', parameters: [{ type: 'text', text: 'Ana' }] }] };

function setup() {
  h = outboundHarness(fakes);
  open = true;
  h.startWorker();
  return h;
}

describe('agent replies, per messenger', () => {
  it('WhatsApp Business: 202, message + delivery committed, sent to the Graph API with the Bearer token, quoting the client', async () => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'whatsapp_business', { agentIds: [agent.id] });
    const { conversationId, inboundId, inboundMessageId } = await activeConversation(h, ch, agent.id, '4915112345678');

    const res = await h.api('POST', `/api/conversations/${conversationId}/messages`, { text: 'It ships today.', replyToMessageId: inboundMessageId }, agent.token);
    expect(res.status).toBe(202);
    const { messageId, deliveryId } = await json(res);
    expect(messageId).toMatch(/^msg_/);
    expect(deliveryId).toMatch(/^dl_/);

    const d = await settled(h, deliveryId);
    expect(d).toMatchObject({ status: 'sent', attempts: 1, channel_id: ch.id });
    const req = fakes.waba.requests.find((r) => r.method === 'POST')!;
    expect(req.path).toBe(`/${ch.messenger.phoneNumberId}/messages`);
    expect(req.headers.authorization).toBe(`Bearer ${WABA_TOKEN}`);
    expect(req.body).toEqual({
      messaging_product: 'whatsapp',
      recipient_type: 'individual',
      to: '4915112345678',
      type: 'text',
      text: { preview_url: false, body: 'It ships today.' },
      context: { message_id: inboundId },
    });
    const wamid = (req.response as { messages: Array<{ id: string }> }).messages[0]!.id;
    expect(messageRow(h, messageId)).toMatchObject({ direction: 'out', status: 'sent', provider_message_id: wamid, agent_id: agent.id, text: 'It ships today.' });

    const msgs = (await json(await h.api('GET', `/api/conversations/${conversationId}/messages`))).data;
    expect(msgs.map((m: any) => m.direction)).toEqual(['in', 'out']);
    // The reply is the conversation's newest message.
    expect((await json(await h.api('GET', `/api/conversations/${conversationId}`))).lastMessageAt).toBe(msgs[1].createdAt);
  });

  it('WhatsApp Business: templates go as type template, also outside the 24-hour window', async () => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'whatsapp_business', { agentIds: [agent.id] });
    const { conversationId } = await activeConversation(h, ch, agent.id, '4915100000001');
    h.sql.prepare('UPDATE contacts SET last_inbound_at = ?').run(Date.now() - 25 * 3600_000);

    const res = await h.api('POST', `/api/conversations/${conversationId}/messages`, { template }, agent.token);
    expect(res.status).toBe(202);
    const { deliveryId, messageId } = await json(res);
    await settled(h, deliveryId);
    expect(fakes.waba.requests.at(-1)!.body).toEqual({ messaging_product: 'whatsapp', to: '4915100000001', type: 'template', template });
    expect(messageRow(h, messageId)).toMatchObject({ kind: 'template', text: null, status: 'sent' });
  });

  it('Telegram: sends to the chat, quotes the client message, stores <chat_id>:<message_id>', async () => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'telegram', { agentIds: [agent.id] });
    const { conversationId, inboundId, inboundMessageId } = await activeConversation(h, ch, agent.id, '700000001');

    const res = await h.api('POST', `/api/conversations/${conversationId}/messages`, { text: 'Hi Ana!', replyToMessageId: inboundMessageId }, agent.token);
    expect(res.status).toBe(202);
    const { messageId, deliveryId } = await json(res);
    await settled(h, deliveryId);
    const req = fakes.telegram.requests.at(-1)!;
    expect(req.path).toBe(`/bot${TG_TOKEN}/sendMessage`);
    expect(req.body).toEqual({
      chat_id: 700000001,
      text: 'Hi Ana!',
      reply_parameters: { message_id: Number(inboundId.split(':')[1]), allow_sending_without_reply: true },
    });
    const sentId = (req.response as { result: { message_id: number } }).result.message_id;
    expect(messageRow(h, messageId)).toMatchObject({ status: 'sent', provider_message_id: `700000001:${sentId}` });
  });

  it('WhatsApp (WAHA): POST /api/sendText with X-Api-Key and chatId <digits>@c.us', async () => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'whatsapp', { agentIds: [agent.id] });
    const { conversationId, inboundId, inboundMessageId } = await activeConversation(h, ch, agent.id, '4915112340000');

    const res = await h.api('POST', `/api/conversations/${conversationId}/messages`, { text: 'Yes, in stock.', replyToMessageId: inboundMessageId }, agent.token);
    const { messageId, deliveryId } = await json(res);
    await settled(h, deliveryId);
    const req = fakes.waha.requests.at(-1)!;
    expect(req.path).toBe('/api/sendText');
    expect(req.headers['x-api-key']).toBe(WAHA_KEY);
    expect(req.body).toEqual({ session: 'default', chatId: '4915112340000@c.us', text: 'Yes, in stock.', reply_to: inboundId });
    expect(messageRow(h, messageId).provider_message_id).toBe((req.response as { id: string }).id);
  });

  it('api channel: a signed message.created to the callback URL, webhook-id = delivery id', async () => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'api', { agentIds: [agent.id] });
    const { conversationId } = await activeConversation(h, ch, agent.id, 'crm-42');

    const res = await h.api('POST', `/api/conversations/${conversationId}/messages`, { text: 'It ships today.' }, agent.token);
    const { messageId, deliveryId } = await json(res);
    await settled(h, deliveryId);
    const req = fakes.callback.requests.at(-1)!;
    expect(req.path).toBe('/hooks/switchboard');
    expect(req.headers['webhook-id']).toBe(deliveryId);
    expect(verifyStandardWebhook(ch.secret!, req.headers, req.rawBody)).toBe('ok');
    expect(req.body).toMatchObject({
      type: 'message.created',
      data: { conversationId, contact: { id: 'crm-42' }, message: { id: messageId, text: 'It ships today.', agentId: agent.id } },
    });
  });
});

describe('a Telegram group that became a supergroup (PROTOCOLS.md §2.3: store the new id, retry once)', () => {
  const upgraded = (to: number) => telegramError(400, 'Bad Request: group chat was upgraded to a supergroup chat', { migrate_to_chat_id: to });
  const contactIds = () => h.sql.prepare('SELECT provider_contact_id FROM contacts ORDER BY provider_contact_id').pluck().all();

  it('follows the chat to its new id at once: the reply is sent there, and the contact lives there from now on', async () => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'telegram', { agentIds: [agent.id] });
    const { conversationId } = await activeConversation(h, ch, agent.id, '-700000080');
    fakes.telegram.script(upgraded(-100700000080));

    const { messageId, deliveryId } = await json(await h.api('POST', `/api/conversations/${conversationId}/messages`, { text: 'Still there?' }, agent.token));
    expect(await settled(h, deliveryId)).toMatchObject({ status: 'sent', attempts: 2 });
    expect(fakes.telegram.requests.map((r) => (r.body as { chat_id: number }).chat_id)).toEqual([-700000080, -100700000080]);
    const sentId = (fakes.telegram.requests.at(-1)!.response as { result: { message_id: number } }).result.message_id;
    expect(messageRow(h, messageId)).toMatchObject({ status: 'sent', provider_message_id: `-100700000080:${sentId}` });
    expect(JSON.parse(messageRow(h, messageId).details)).toMatchObject({ to: '-100700000080', migratedFrom: '-700000080' });
    expect(contactIds()).toEqual(['-100700000080']);
    const detail = await json(await h.api('GET', `/api/deliveries/${deliveryId}`));
    expect(detail.attempts[0]).toMatchObject({ outcome: 'retry', providerCode: 'migrate_to_chat_id:-100700000080' });
    expect(detail.attempts[0].error).toContain('the next attempt goes to -100700000080');

    // The group now writes from its new id: the same contact, the same conversation.
    await inbound(h, ch, '-100700000080', 'Yes, here');
    expect(h.sql.prepare('SELECT count(*) FROM conversations').pluck().get()).toBe(1);
    expect(h.sql.prepare("SELECT count(*) FROM messages WHERE conversation_id = ? AND direction = 'in'").pluck().get(conversationId)).toBe(2);
  });

  it('follows once: a second move ends the delivery dead, with the contact at the first new id', async () => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'telegram', { agentIds: [agent.id] });
    const { conversationId } = await activeConversation(h, ch, agent.id, '-700000081');
    fakes.telegram.script([upgraded(-100700000081), upgraded(-100700000082)]);

    const { messageId, deliveryId } = await json(await h.api('POST', `/api/conversations/${conversationId}/messages`, { text: 'Hello?' }, agent.token));
    expect(await settled(h, deliveryId)).toMatchObject({ status: 'dead', attempts: 2, last_error_code: 'migrate_to_chat_id:-100700000082' });
    expect(fakes.telegram.requests.map((r) => (r.body as { chat_id: number }).chat_id)).toEqual([-700000081, -100700000081]);
    expect(messageRow(h, messageId)).toMatchObject({ status: 'failed' });
    expect(contactIds()).toEqual(['-100700000081']);
  });

  it('follows a move on the last attempt of the schedule too, and a write-first to the old id reaches the moved contact', async () => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'telegram', { agentIds: [agent.id] });
    // A positive (private-chat) id for the old chat: Telegram's 20-per-minute limit for groups
    // would space these five attempts 3 s apart; the store follows the move the same way.
    const { conversationId } = await activeConversation(h, ch, agent.id, '700000084');
    // DELIVERY_RETRY_SCHEDULE here has 3 retries: 4 attempts, the last one told the chat moved.
    fakes.telegram.script([{ status: 502 }, { status: 502 }, { status: 502 }, upgraded(-100700000084)]);

    const { deliveryId } = await json(await h.api('POST', `/api/conversations/${conversationId}/messages`, { text: 'Hello?' }, agent.token));
    expect(await settled(h, deliveryId, ['sent', 'dead'], 20_000)).toMatchObject({ status: 'sent', attempts: 5 });
    expect((fakes.telegram.requests.at(-1)!.body as { chat_id: number }).chat_id).toBe(-100700000084);
    expect(contactIds()).toEqual(['-100700000084']);

    // The agent copies the old id from a CRM: the moved contact and its open conversation, sent to the new id.
    const wf = await h.api('POST', `/api/channels/${ch.id}/write-first`, { to: '700000084', text: 'One more thing' }, agent.token);
    expect(wf.status).toBe(202);
    const written = await json(wf);
    expect(written.conversationId).toBe(conversationId);
    await settled(h, written.deliveryId);
    expect((fakes.telegram.requests.at(-1)!.body as { chat_id: number }).chat_id).toBe(-100700000084);
    expect(contactIds()).toEqual(['-100700000084']);
  });

  it('leaves the contact where it is when the new chat is a contact already; the message still goes there', async () => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'telegram', { agentIds: [agent.id] });
    await inbound(h, ch, '-100700000083', 'written in the supergroup first');
    const { conversationId } = await activeConversation(h, ch, agent.id, '-700000083');
    fakes.telegram.script(upgraded(-100700000083));

    const { deliveryId } = await json(await h.api('POST', `/api/conversations/${conversationId}/messages`, { text: 'Hi' }, agent.token));
    expect(await settled(h, deliveryId)).toMatchObject({ status: 'sent', attempts: 2 });
    expect((fakes.telegram.requests.at(-1)!.body as { chat_id: number }).chat_id).toBe(-100700000083);
    expect(contactIds()).toEqual(['-100700000083', '-700000083']);
  });
});

describe('order: messages to one recipient go out as written', () => {
  const texts = (reqs: Array<{ method: string; status?: number; body: unknown }>) =>
    reqs.filter((r) => r.method === 'POST').map((r) => [(r.body as any).text.body, r.status]);

  it('a retried first reply still goes before the next two, which wait for it (heldBehind), then follow', async () => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'whatsapp_business', { agentIds: [agent.id] });
    const { conversationId } = await activeConversation(h, ch, agent.id, '4915100000050');
    const other = await activeConversation(h, ch, agent.id, '4915100000051');
    fakes.waba.script([{ status: 500 }, { status: 500 }]); // the first two calls fail (retryable)

    const send = async (conv: string, text: string) =>
      (await json(await h.api('POST', `/api/conversations/${conv}/messages`, { text }, agent.token))).deliveryId as string;
    const first = await send(conversationId, 'one');
    const second = await send(conversationId, 'two');
    const third = await send(conversationId, 'three');
    expect(deliveryRow(h, second)).toMatchObject({ held_behind: first, enqueued_at: null });
    expect(deliveryRow(h, third)).toMatchObject({ held_behind: second });
    expect((await json(await h.api('GET', `/api/deliveries/${third}`))).heldBehind).toBe(second);
    for (const d of [first, second, third]) expect(await settled(h, d)).toMatchObject({ status: 'sent', held_behind: null });
    expect(deliveryRow(h, first)).toMatchObject({ attempts: 3 });
    expect(texts(fakes.waba.requests)).toEqual([['one', 500], ['one', 500], ['one', 200], ['two', 200], ['three', 200]]);

    // Another recipient never waits for this one's chain.
    fakes.waba.script([{ status: 500 }]);
    const a = await send(conversationId, 'four');
    const b = await send(other.conversationId, 'to someone else');
    expect(deliveryRow(h, b)).toMatchObject({ held_behind: null });
    await settled(h, a);
    await settled(h, b);
  });

  it('a delivery that ends dead lets the next one go; a dead one replayed goes at once', async () => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'whatsapp_business', { agentIds: [agent.id] });
    const { conversationId } = await activeConversation(h, ch, agent.id, '4915100000052');
    // Permanent: invalid parameter (131008) ends the first one dead after one attempt.
    fakes.waba.script({ status: 400, body: { error: { message: 'Required parameter is missing', type: 'OAuthException', code: 131008 } } });
    const send = async (text: string) =>
      (await json(await h.api('POST', `/api/conversations/${conversationId}/messages`, { text }, agent.token))).deliveryId as string;
    const first = await send('broken');
    const second = await send('fine');
    expect(await settled(h, first)).toMatchObject({ status: 'dead' });
    expect(await settled(h, second)).toMatchObject({ status: 'sent' });
    const third = await send('later');
    expect(deliveryRow(h, third).held_behind).toBeNull();
    await settled(h, third);
    expect((await h.api('POST', `/api/deliveries/${first}/replay`)).status).toBe(202);
    expect(await settled(h, first)).toMatchObject({ status: 'sent', held_behind: null });
  });

  it('replies stored in one transaction, in one millisecond, still wait in a line, each behind the one before', async () => {
    h = outboundHarness(fakes);
    open = true;
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'whatsapp_business', { agentIds: [agent.id] });
    const { conversationId } = await activeConversation(h, ch, agent.id, '4915100000054');
    const store = createOutboundWriter(h.sql);
    const now = Date.now();
    // Ids order only by the millisecond; ten lines of three make a wrong pick show up.
    for (let line = 0; line < 10; line++) {
      const ids = h.sql.transaction(() =>
        ['a', 'b', 'c'].map((text) => store({ channelId: ch.id, conversationId, agentId: agent.id, content: { text }, details: { to: `49151000001${line}` } }, now).deliveryId),
      )();
      expect(ids.map((id) => deliveryRow(h, id).held_behind)).toEqual([null, ids[0], ids[1]]);
    }
  });

  it('the sweeper lets go of a delivery held behind one that ended without releasing it', async () => {
    h = outboundHarness(fakes);
    open = true;
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'whatsapp_business', { agentIds: [agent.id] });
    const { conversationId } = await activeConversation(h, ch, agent.id, '4915100000053');
    const send = async (text: string) =>
      (await json(await h.api('POST', `/api/conversations/${conversationId}/messages`, { text }, agent.token))).deliveryId as string;
    const first = await send('one');
    const second = await send('two');
    expect(deliveryRow(h, second).held_behind).toBe(first);
    // As if the first had ended some way that released nothing (an operator's UPDATE, say).
    h.sql.prepare("UPDATE deliveries SET status = 'dead' WHERE id = ?").run(first);
    h.startWorker();
    expect(await settled(h, second)).toMatchObject({ status: 'sent', held_behind: null });
  });
});

describe('a failure the provider reports after accepting the message', () => {
  it('a failed status (131047) ends the sent delivery dead with the code, findable and replayable', async () => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'whatsapp_business', { agentIds: [agent.id] });
    const { conversationId } = await activeConversation(h, ch, agent.id, '4915100000070');
    const { deliveryId, messageId } = await json(await h.api('POST', `/api/conversations/${conversationId}/messages`, { text: 'Still there?' }, agent.token));
    await settled(h, deliveryId);
    const wamid = messageRow(h, messageId).provider_message_id as string;
    const body = JSON.stringify({
      object: 'whatsapp_business_account',
      entry: [{ id: '1', changes: [{ field: 'messages', value: {
        messaging_product: 'whatsapp',
        metadata: { display_phone_number: '15550001111', phone_number_id: ch.messenger.phoneNumberId },
        statuses: [{ id: wamid, status: 'failed', timestamp: String(Math.floor(Date.now() / 1000)), recipient_id: '4915100000070',
          errors: [{ code: 131047, title: 'Re-engagement message', message: 'Re-engagement message' }] }],
      } }] }],
    });
    const res = await h.app.request(new URL(ch.webhookUrl).pathname, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Hub-Signature-256': `sha256=${bytesToHex(await hmac('SHA-256', WABA_APP_SECRET, body))}` },
      body,
    });
    expect(res.status).toBe(200);
    expect(messageRow(h, messageId)).toMatchObject({ status: 'failed', error_code: '131047' });
    expect(deliveryRow(h, deliveryId)).toMatchObject({ status: 'dead', last_error_code: '131047' });
    expect(deliveryRow(h, deliveryId).last_error).toMatch(/^template_required:/);
    const attempts = (await json(await h.api('GET', `/api/deliveries/${deliveryId}`))).attempts;
    expect(attempts.map((a: any) => [a.outcome, a.providerCode])).toEqual([['sent', null], ['failed', '131047']]);
    expect(attempts[1].error).toContain(wamid); // kept through a replay, which clears it from the message
    const dead = (await json(await h.api('GET', `/api/deliveries?status=dead&errorCode=131047&channelId=${ch.id}`))).data;
    expect(dead.map((d: any) => d.id)).toEqual([deliveryId]);
    expect((await h.api('POST', `/api/deliveries/${deliveryId}/replay`)).status).toBe(202);
    await waitFor('the replay to be sent', () => deliveryRow(h, deliveryId).status === 'sent');
    const again = messageRow(h, messageId);
    expect(again.status).toBe('sent');
    expect(again.provider_message_id).not.toBe(wamid); // the new send's id, which its statuses will name
  });
});

describe('an api channel\'s callback that answers 410 Gone (PROTOCOLS.md §4: disable the endpoint)', () => {
  it('is not called again until the channel\'s messenger settings are PATCHed; its deliveries end dead at once', async () => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'api', { agentIds: [agent.id] });
    const { conversationId } = await activeConversation(h, ch, agent.id, 'crm-410');
    const send = async (text: string) =>
      (await json(await h.api('POST', `/api/conversations/${conversationId}/messages`, { text }, agent.token))).deliveryId as string;
    const calls = () => fakes.callback.requests.filter((r) => r.method === 'POST').length;
    fakes.callback.script({ status: 410 });
    const first = await send('one');
    expect(await settled(h, first)).toMatchObject({ status: 'dead', last_error_code: 'gone' });
    const disabledAt = (await json(await h.api('GET', `/api/channels/${ch.id}`))).callbackDisabledAt;
    expect(typeof disabledAt).toBe('number');
    const before = calls();

    const second = await send('two');
    expect(await settled(h, second)).toMatchObject({ status: 'dead', last_error_code: 'endpoint_disabled' });
    expect(calls()).toBe(before); // not called

    expect((await h.api('PATCH', `/api/channels/${ch.id}`, { messenger: { provider: 'api', callbackUrl: ch.messenger.callbackUrl } })).status).toBe(200);
    expect((await json(await h.api('GET', `/api/channels/${ch.id}`))).callbackDisabledAt).toBeNull();
    expect((await h.api('POST', `/api/deliveries/${second}/replay`)).status).toBe(202);
    expect(await settled(h, second)).toMatchObject({ status: 'sent' });
  });
});

describe('the provider says the sender is over its throughput', () => {
  it('pauses by Meta\'s code for WhatsApp Business, by a 429 elsewhere; a chat for Telegram and WAHA', () => {
    const fail = (code: string, httpStatus: number, retryAfterMs?: number) => ({ ok: false as const, retryable: true, code, message: 'x', httpStatus, retryAfterMs });
    expect(pauseFor('whatsapp_business', fail('130429', 400))).toEqual({ scope: 'sender', ms: 1_000 });
    expect(pauseFor('whatsapp_business', fail('131056', 429))).toBeNull(); // one recipient's pair limit, even as a 429
    expect(pauseFor('whatsapp_business', fail('http_503', 503))).toBeNull();
    expect(pauseFor('telegram', fail('429', 429, 35_000))).toEqual({ scope: 'chat', ms: 35_000 });
    expect(pauseFor('whatsapp', fail('http_429', 429))).toEqual({ scope: 'chat', ms: 1_000 });
    expect(pauseFor('api', fail('http_429', 429, 600_000))).toEqual({ scope: 'sender', ms: 60_000 });
    expect(pauseFor('api', { ok: true, providerMessageId: null, httpStatus: 200 })).toBeNull();
  });

  it('WhatsApp Business 130429: every message of that number waits (global throttle), not only the one that got it', async () => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'whatsapp_business', { agentIds: [agent.id] });
    const a = await activeConversation(h, ch, agent.id, '4915100000060');
    const b = await activeConversation(h, ch, agent.id, '4915100000061');
    fakes.waba.script({ status: 400, body: { error: { message: '(#130429) Rate limit hit', type: 'OAuthException', code: 130429 } } });
    const send = async (conv: string, text: string) =>
      (await json(await h.api('POST', `/api/conversations/${conv}/messages`, { text }, agent.token))).deliveryId as string;
    const first = await send(a.conversationId, 'to A');
    await waitFor('the 130429 answer', () => deliveryRow(h, first).status === 'retrying');
    const limitedAt = fakes.waba.requests.find((r) => r.status === 400)!.at;
    const second = await send(b.conversationId, 'to B'); // another recipient: no ordering in the way
    await settled(h, second);
    await settled(h, first);
    const toB = fakes.waba.requests.find((r) => r.method === 'POST' && (r.body as any).to === '4915100000061')!;
    expect(toB.at - limitedAt).toBeGreaterThanOrEqual(900); // held by the sender's pause (1 s)
    expect(deliveryRow(h, second)).toMatchObject({ status: 'sent', attempts: 1 }); // waited; no attempt spent
  });
});

describe('reply rules', () => {
  it('403 for another agent, 409 when the conversation is not active, 404 for an unknown one; the admin may write', async () => {
    setup();
    const agent = await createAgent(h, 'Owner');
    const other = await createAgent(h, 'Other');
    const ch = await createChannel(h, fakes, 'telegram', { agentIds: [agent.id, other.id] });
    const { conversationId } = await activeConversation(h, ch, agent.id, '700000002');
    const path = `/api/conversations/${conversationId}/messages`;

    const forbidden = await h.api('POST', path, { text: 'hi' }, other.token);
    expect(forbidden.status).toBe(403);
    expect(forbidden.headers.get('content-type')).toContain('application/problem+json');
    expect((await h.api('POST', path, { text: 'hi' }, null)).status).toBe(401);
    expect((await h.api('POST', '/api/conversations/cv_missing/messages', { text: 'hi' }, agent.token)).status).toBe(404);

    const byAdmin = await h.api('POST', path, { text: 'From the supervisor' });
    expect(byAdmin.status).toBe(202);
    expect(messageRow(h, (await json(byAdmin)).messageId).agent_id).toBe(agent.id);

    for (const state of ['wrapup', 'closed', 'queued', 'offered']) {
      h.sql.prepare('UPDATE conversations SET state = ? WHERE id = ?').run(state, conversationId);
      const res = await h.api('POST', path, { text: 'hi' }, agent.token);
      expect(res.status, state).toBe(409);
      expect((await json(res)).code).toBe('conversation_not_active');
    }
    expect(h.sql.prepare("SELECT count(*) FROM messages WHERE direction = 'out'").pluck().get()).toBe(1);
  });

  it.each<[string, unknown, number, string]>([
    ['no content', {}, 400, 'text'],
    ['both text and template', { text: 'a', template }, 400, 'template'],
    ['blank text', { text: '   ' }, 400, 'text'],
    ['text over 4096 characters', { text: 'x'.repeat(4097) }, 400, 'text'],
    ['an unknown field', { text: 'a', html: '<b>' }, 400, 'html'],
    ['a template without language', { template: { name: 'x' } }, 400, 'template.language'],
    ['a template on Telegram', { template }, 400, 'template'],
    // As text: too deep for JSON.stringify, which is what made storing it a 500.
    ['template components nested 100,000 levels deep', `{"template":{"name":"x","language":{"code":"en"},"components":${'['.repeat(100_000)}${']'.repeat(100_000)}}}`, 400, `template.components.${Array(30).fill('0').join('.')}`],
    ['a reply to a message of another conversation', { text: 'a', replyToMessageId: 'msg_nope' }, 400, 'replyToMessageId'],
  ])('refuses %s and stores nothing', async (_name, body, status, field) => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'telegram', { agentIds: [agent.id] });
    const { conversationId } = await activeConversation(h, ch, agent.id, '700000003');
    const res = await h.api('POST', `/api/conversations/${conversationId}/messages`, body, agent.token);
    expect(res.status).toBe(status);
    expect((await json(res)).field).toBe(field);
    expect(h.sql.prepare('SELECT count(*) FROM deliveries').pluck().get()).toBe(0);
  });

  it('WhatsApp Business 24-hour rule: free text refused before sending (422 template_required, field text) when the last inbound is old or absent', async () => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'whatsapp_business', { agentIds: [agent.id] });
    const { conversationId } = await activeConversation(h, ch, agent.id, '4915100000002');
    const path = `/api/conversations/${conversationId}/messages`;

    h.sql.prepare('UPDATE contacts SET last_inbound_at = ?').run(Date.now() - 23 * 3600_000);
    expect((await h.api('POST', path, { text: 'within the window' }, agent.token)).status).toBe(202);

    for (const last of [Date.now() - 24 * 3600_000 - 60_000, null]) {
      h.sql.prepare('UPDATE contacts SET last_inbound_at = ?').run(last);
      const res = await h.api('POST', path, { text: 'too late' }, agent.token);
      expect(res.status).toBe(422);
      const problem = await json(res);
      expect(problem).toMatchObject({ code: 'template_required', field: 'text' });
      expect(problem.detail).toMatch(/24 hours/);
      expect(problem.detail).toMatch(/template/);
    }
    expect(h.sql.prepare('SELECT count(*) FROM deliveries').pluck().get()).toBe(1);
  });

  it('WhatsApp Business 24-hour rule: the window counts from when the client wrote, not from when Meta delivered it', async () => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'whatsapp_business', { agentIds: [agent.id] });
    // Meta retries a webhook for up to 7 days: this one was written 30 hours ago and arrives now.
    const { conversationId } = await activeConversation(h, ch, agent.id, '4915100000003', { writtenAt: Date.now() - 30 * 3600_000 });
    const res = await h.api('POST', `/api/conversations/${conversationId}/messages`, { text: 'sorry for the wait' }, agent.token);
    expect(res.status).toBe(422);
    expect(await json(res)).toMatchObject({ code: 'template_required', field: 'text' });
    expect((await h.api('POST', `/api/conversations/${conversationId}/messages`, { template }, agent.token)).status).toBe(202);
  });
});

describe('write first', () => {
  it.each<[Provider, string, Record<string, unknown>, string]>([
    ['whatsapp_business', '+49 151 2345-6789', { template }, '4915123456789'],
    ['telegram', '700000010', { text: 'Hello from the shop' }, '700000010'],
    ['whatsapp', '4915100000010', { text: 'Hello from the shop' }, '4915100000010'],
  ])('%s: 202 {conversationId, messageId, deliveryId}; contact created, conversation active with the agent, load counted, sent', async (provider, to, content, recipient) => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, provider, { agentIds: [agent.id] });
    const res = await h.api('POST', `/api/channels/${ch.id}/write-first`, { to, name: 'New Client', ...content }, agent.token);
    expect(res.status, await res.clone().text()).toBe(202);
    const out = await json(res);
    expect(out).toMatchObject({ conversationId: expect.stringMatching(/^cv_/), messageId: expect.stringMatching(/^msg_/), deliveryId: expect.stringMatching(/^dl_/) });

    const conv = await json(await h.api('GET', `/api/conversations/${out.conversationId}`));
    expect(conv).toMatchObject({ channelId: ch.id, state: 'active', agentId: agent.id, utilization: 30 });
    const contact = await json(await h.api('GET', `/api/contacts/${conv.contactId}`));
    expect(contact).toMatchObject({ channelId: ch.id, providerContactId: recipient, name: 'New Client', lastInboundAt: null });
    expect((await json(await h.api('GET', `/api/agents/${agent.id}`))).load).toBe(30);
    const history = (await json(await h.api('GET', `/api/conversations/${out.conversationId}/history`))).data;
    expect(history).toEqual([expect.objectContaining({ from: null, to: 'active', agentId: agent.id, reason: 'write_first' })]);

    await settled(h, out.deliveryId);
    expect(messageRow(h, out.messageId).status).toBe('sent');
    const fake = provider === 'whatsapp_business' ? fakes.waba : provider === 'telegram' ? fakes.telegram : fakes.waha;
    const body = fake.requests.at(-1)!.body as Record<string, unknown>;
    if (provider === 'whatsapp_business') expect(body).toMatchObject({ to: recipient, type: 'template' });
    if (provider === 'telegram') expect(body).toMatchObject({ chat_id: Number(recipient) });
    if (provider === 'whatsapp') expect(body).toMatchObject({ chatId: `${recipient}@c.us` });

    // The client's answer joins the agent's conversation.
    await inbound(h, ch, recipient);
    const convs = (await json(await h.api('GET', `/api/conversations?channelId=${ch.id}`))).data;
    expect(convs).toHaveLength(1);
    expect((await json(await h.api('GET', `/api/conversations/${out.conversationId}/messages`))).data).toHaveLength(2);
  });

  it('commits message, delivery, outbox rows and the agent’s assigned event before any job exists', async () => {
    h = outboundHarness(fakes); // no relay, no worker
    open = true;
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'telegram', { agentIds: [agent.id] });
    const out = await json(await h.api('POST', `/api/channels/${ch.id}/write-first`, { to: '700000011', text: 'hi' }, agent.token));
    const rows = h.sql.prepare("SELECT kind, payload FROM outbox WHERE kind IN ('delivery', 'event')").all() as Array<{ kind: string; payload: string }>;
    expect(rows.map((r) => [r.kind, JSON.parse(r.payload)])).toEqual(
      expect.arrayContaining([
        ['delivery', { deliveryId: out.deliveryId, cycle: 0, attempt: 1, runAt: expect.any(Number) }],
        ['event', { agentId: agent.id, event: 'assigned', data: { conversationId: out.conversationId, channelId: ch.id, writeFirst: true } }],
      ]),
    );
    expect(h.sql.prepare('SELECT status, attempts, enqueued_at IS NOT NULL AS queued FROM deliveries').get()).toEqual({ status: 'pending', attempts: 0, queued: 1 });
    expect(await h.deps.queues.deliveries.getJobCounts('waiting', 'delayed', 'active')).toEqual({ waiting: 0, delayed: 0, active: 0 });
  });

  it('WhatsApp Business: free text to a new contact is refused (no 24-hour window yet), nothing stored', async () => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'whatsapp_business', { agentIds: [agent.id] });
    const res = await h.api('POST', `/api/channels/${ch.id}/write-first`, { to: '4915100000011', text: 'hi' }, agent.token);
    expect(res.status).toBe(422);
    expect(await json(res)).toMatchObject({ code: 'template_required', field: 'text' });
    expect(h.sql.prepare('SELECT count(*) FROM conversations').pluck().get()).toBe(0);
    expect(h.sql.prepare('SELECT count(*) FROM contacts').pluck().get()).toBe(0);
  });

  it('an api channel writes first through its Telegram channel: contact and conversation live in the sending channel', async () => {
    setup();
    const agent = await createAgent(h);
    const tg = await createChannel(h, fakes, 'telegram', { agentIds: [] });
    const api = await createChannel(h, fakes, 'api', { agentIds: [agent.id], writeFirst: { enabled: true, channelId: tg.id } });
    const res = await h.api('POST', `/api/channels/${api.id}/write-first`, { to: '700000020', text: 'Hello' }, agent.token);
    expect(res.status, await res.clone().text()).toBe(202);
    const out = await json(res);
    expect(out.channelId).toBe(tg.id);
    const conv = await json(await h.api('GET', `/api/conversations/${out.conversationId}`));
    expect(conv).toMatchObject({ channelId: tg.id, state: 'active', agentId: agent.id });
    const history = (await json(await h.api('GET', `/api/conversations/${out.conversationId}/history`))).data;
    expect(history[0].reason).toBe(`write_first_from:${api.id}`);
    expect(JSON.parse(messageRow(h, out.messageId).details)).toMatchObject({ to: '700000020', writeFirstFromChannelId: api.id });
    await settled(h, out.deliveryId);
    expect(fakes.telegram.requests.at(-1)!.body).toMatchObject({ chat_id: 700000020, text: 'Hello' });
    expect(fakes.callback.requestCount).toBe(0);
  });

  it('reuses the contact and the agent’s open conversation; another agent’s open conversation is a 409', async () => {
    setup();
    const agent = await createAgent(h, 'First');
    const other = await createAgent(h, 'Second');
    const ch = await createChannel(h, fakes, 'telegram', { agentIds: [agent.id, other.id] });
    const path = `/api/channels/${ch.id}/write-first`;
    const a = await json(await h.api('POST', path, { to: '700000030', text: 'one' }, agent.token));
    const b = await json(await h.api('POST', path, { to: '700000030', text: 'two' }, agent.token));
    expect(b.conversationId).toBe(a.conversationId);
    expect((await json(await h.api('GET', `/api/agents/${agent.id}`))).load).toBe(30);
    const clash = await h.api('POST', path, { to: '700000030', text: 'three' }, other.token);
    expect(clash.status).toBe(409);
    expect((await json(clash)).detail).toContain(a.conversationId);
    expect(h.sql.prepare('SELECT count(*) FROM contacts').pluck().get()).toBe(1);

    // Once closed, writing first starts a new conversation with the same contact.
    expect((await h.api('POST', `/api/conversations/${a.conversationId}/close`, undefined, agent.token)).status).toBe(200);
    expect((await json(await h.api('GET', `/api/agents/${agent.id}`))).load).toBe(0);
    const c = await json(await h.api('POST', path, { to: '700000030', text: 'four' }, other.token));
    expect(c.conversationId).not.toBe(a.conversationId);
    expect(h.sql.prepare('SELECT count(DISTINCT contact_id) FROM conversations').pluck().get()).toBe(1);
  });

  it('reuses a WhatsApp Business contact known by phone (it wrote before), within the window free text is fine', async () => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'whatsapp_business', { agentIds: [agent.id] });
    await inbound(h, ch, '4915100000040');
    h.sql.prepare("UPDATE conversations SET state = 'closed'").run();
    const res = await h.api('POST', `/api/channels/${ch.id}/write-first`, { to: '+4915100000040', text: 'Following up' }, agent.token);
    expect(res.status).toBe(202);
    expect(h.sql.prepare('SELECT count(*) FROM contacts').pluck().get()).toBe(1);
  });

  it.each<[string, (ctx: { ch: string; agent: { id: string; token: string }; outsider: { id: string; token: string } }) => [string, unknown, string | null], number, string]>([
    ['write-first disabled', ({ agent }) => ['DISABLED', { to: '700000050', text: 'x' }, agent.token], 422, 'write_first_disabled'],
    ['an agent not of the channel', ({ ch, outsider }) => [ch, { to: '700000050', text: 'x' }, outsider.token], 403, 'forbidden'],
    ['an agent writing as another', ({ ch, agent, outsider }) => [ch, { to: '700000050', text: 'x', agentId: outsider.id }, agent.token], 403, 'forbidden'],
    ['the admin without agentId', ({ ch }) => [ch, { to: '700000050', text: 'x' }, 'ADMIN'], 400, 'validation_failed'],
    ['no token', ({ ch }) => [ch, { to: '700000050', text: 'x' }, null], 401, 'unauthorized'],
    ['a chat id that is not a number', ({ ch, agent }) => [ch, { to: '@someone', text: 'x' }, agent.token], 400, 'validation_failed'],
    ['missing to', ({ ch, agent }) => [ch, { text: 'x' }, agent.token], 400, 'validation_failed'],
    ['an unknown channel', ({ agent }) => ['ch_nope', { to: '700000050', text: 'x' }, agent.token], 404, 'not_found'],
  ])('refuses %s', async (_name, make, status, code) => {
    setup();
    const agent = await createAgent(h, 'Member');
    const outsider = await createAgent(h, 'Outsider');
    const ch = await createChannel(h, fakes, 'telegram', { agentIds: [agent.id] });
    const off = await createChannel(h, fakes, 'telegram', { agentIds: [agent.id], writeFirst: { enabled: false, channelId: null } });
    const [target, body, token] = make({ ch: ch.id, agent, outsider });
    const res = await h.api('POST', `/api/channels/${target === 'DISABLED' ? off.id : target}/write-first`, body, token === 'ADMIN' ? undefined : token);
    expect(res.status).toBe(status);
    expect((await json(res)).code).toBe(code);
    expect(h.sql.prepare('SELECT count(*) FROM conversations').pluck().get()).toBe(0);
  });

  it('validates phone numbers for WhatsApp', async () => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'whatsapp', { agentIds: [agent.id] });
    for (const to of ['abc', '123', '+1 234 567 890 123 456 7', '0151 12345678', '+0151 12345678']) {
      const res = await h.api('POST', `/api/channels/${ch.id}/write-first`, { to, text: 'x' }, agent.token);
      expect(res.status, to).toBe(400);
      expect((await json(res)).field).toBe('to');
    }
    // One client, however the number is written: one contact, one conversation.
    const first = await h.api('POST', `/api/channels/${ch.id}/write-first`, { to: '+49 151 12345678', text: 'x' }, agent.token);
    expect(first.status).toBe(202);
    for (const to of ['0049 151 12345678', '+49 (0)151 12345678', '0049 (0) 151-123 456 78']) {
      const res = await h.api('POST', `/api/channels/${ch.id}/write-first`, { to, text: 'y' }, agent.token);
      expect(res.status, to).toBe(202);
    }
    expect(h.sql.prepare('SELECT provider_contact_id FROM contacts').pluck().all()).toEqual(['4915112345678']);
    expect(h.sql.prepare('SELECT count(*) FROM conversations').pluck().get()).toBe(1);
  });

  it('spells a Telegram chat id one way: 0700000030 is 700000030', async () => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'telegram', { agentIds: [agent.id] });
    for (const to of ['700000030', '0700000030', ' 700000030 ']) {
      expect((await h.api('POST', `/api/channels/${ch.id}/write-first`, { to, text: 'x' }, agent.token)).status, to).toBe(202);
    }
    expect(h.sql.prepare('SELECT provider_contact_id FROM contacts').pluck().all()).toEqual(['700000030']);
    expect(h.sql.prepare('SELECT count(*) FROM conversations').pluck().get()).toBe(1);
  });

  it('the admin writes first for a named agent of the channel', async () => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'telegram', { agentIds: [agent.id] });
    const res = await h.api('POST', `/api/channels/${ch.id}/write-first`, { to: '700000060', text: 'x', agentId: agent.id });
    expect(res.status).toBe(202);
    const conv = await json(await h.api('GET', `/api/conversations/${(await json(res)).conversationId}`));
    expect(conv.agentId).toBe(agent.id);
  });
});

describe('secrets', () => {
  it('never puts tokens in responses or logs', async () => {
    setup();
    const agent = await createAgent(h);
    const ch = await createChannel(h, fakes, 'telegram', { agentIds: [agent.id] });
    fakes.telegram.script({ status: 400, body: { ok: false, error_code: 400, description: `Bad Request: token ${TG_TOKEN} rejected` } });
    const out = await json(await h.api('POST', `/api/channels/${ch.id}/write-first`, { to: '700000070', text: 'x' }, agent.token));
    await settled(h, out.deliveryId);
    const detail = await (await h.api('GET', `/api/deliveries/${out.deliveryId}`)).text();
    expect(detail).toContain('[redacted]');
    expect(detail).not.toContain(TG_TOKEN);
    expect(h.logs.text).not.toContain(TG_TOKEN);
    expect(h.logs.text).not.toContain(TG_TOKEN.split(':')[1]);
  });
});
