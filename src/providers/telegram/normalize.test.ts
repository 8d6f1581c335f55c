import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SchemaError, type NormalizedEvent } from '../types.js';
import { normalizeTelegram, parseTelegramMessageRef, telegramMessageRef } from './normalize.js';

const dir = new URL('./fixtures/', import.meta.url);
const load = (name: string): any => JSON.parse(readFileSync(new URL(`${name}.json`, dir), 'utf8'));

const t0 = 1767225600000;
const ana = { providerContactId: '700000001', name: 'Ana Lima', username: 'ana_l' };
const priv = { chatType: 'private' };
type Msg = Extract<NormalizedEvent, { type: 'message' }>;
const message = (id: string, kind: string, text: string | null, details: Record<string, unknown>, extra: Partial<Msg> = {}): NormalizedEvent =>
  ({ type: 'message', providerMessageId: id, contact: ana, kind, text, details, sentAt: t0, ...extra }) as NormalizedEvent;

const cases: [string, number, NormalizedEvent[]][] = [
  ['private_text', 880000001, [message('700000001:41', 'text', '/start order-4711', priv)]],
  ['reply_text', 880000002, [message('700000001:43', 'text', 'that one', { ...priv, replyToMessageId: '700000001:42' })]],
  ['forwarded_text', 880000003, [message('700000001:44', 'text', 'look at this', { ...priv, forwarded: true })]],
  [
    'edited_message',
    880000004,
    [
      message('edit:700000001:41:1767225630', 'edit', '/start order-4712', { ...priv, editedMessageId: '700000001:41', editDate: 1767225630 }, { sentAt: t0 + 30_000 }),
    ],
  ],
  ['photo_caption', 880000005, [message('700000001:45', 'image', 'scratch on the lid', { ...priv, fileId: 'SBphotoL', fileUniqueId: 'SBuL', width: 1280, height: 960 })]],
  [
    'document',
    880000006,
    [
      message('700000001:46', 'document', 'receipt', {
        ...priv,
        fileId: 'SBdoc1',
        fileUniqueId: 'SBudoc1',
        filename: 'receipt.pdf',
        mimeType: 'application/pdf',
        fileSize: 48211,
      }),
    ],
  ],
  ['voice', 880000007, [message('700000001:47', 'voice', null, { ...priv, fileId: 'SBvoice1', fileUniqueId: 'SBuvoice1', mimeType: 'audio/ogg', fileSize: 9100, duration: 4 })]],
  [
    'audio',
    880000008,
    [message('700000001:48', 'audio', null, { ...priv, fileId: 'SBaudio1', fileUniqueId: 'SBuaudio1', mimeType: 'audio/mpeg', fileSize: 2900000, duration: 181 })],
  ],
  ['video', 880000009, [message('700000001:49', 'video', null, { ...priv, fileId: 'SBvideo1', fileUniqueId: 'SBuvideo1', mimeType: 'video/mp4', fileSize: 880000, duration: 12 })]],
  [
    'video_note',
    880000010,
    [message('700000001:50', 'video', null, { ...priv, fileId: 'SBnote1', fileUniqueId: 'SBunote1', fileSize: 120000, duration: 6, videoNote: true })],
  ],
  ['sticker', 880000011, [message('700000001:51', 'sticker', '🎉', { ...priv, fileId: 'SBsticker1', fileUniqueId: 'SBusticker1', emoji: '🎉', setName: 'sb_party' })]],
  [
    'contact_own_number',
    880000012,
    // The shared number lands in details only: the contact's phone stays unknown.
    [message('700000001:52', 'contacts', 'Ana Lima', { ...priv, phoneNumber: '+5511999990001', firstName: 'Ana', lastName: 'Lima', userId: 700000001 })],
  ],
  ['location', 880000013, [message('700000001:53', 'location', '-23.55052,-46.633308', { ...priv, latitude: -23.55052, longitude: -46.633308 })]],
  ['poll_unsupported', 880000014, [message('700000001:54', 'unsupported', null, { ...priv, keys: ['poll'] })]],
  [
    'group_message',
    880000015,
    [
      message(
        '-1002000000001:900',
        'text',
        'any news on my order?',
        { chatType: 'supergroup', threadId: 7, from: { id: 700000001, name: 'Ana Lima', username: 'ana_l' } },
        { contact: { providerContactId: '-1002000000001', name: 'Shop Support' } },
      ),
    ],
  ],
  [
    'callback_with_message',
    880000016,
    [
      message(
        'cbq:3000000000000000001',
        'callback',
        'slot:am',
        { callbackQueryId: '3000000000000000001', data: 'slot:am', messageId: '700000001:60', chatInstance: '-4000000000000000001' },
        { sentAt: t0 },
      ),
    ],
  ],
  [
    'callback_inline',
    880000017,
    [
      message(
        'cbq:3000000000000000002',
        'callback',
        'rate:5',
        { callbackQueryId: '3000000000000000002', data: 'rate:5', inlineMessageId: 'SBinline1', chatInstance: '-4000000000000000002' },
        { sentAt: 0 },
      ),
    ],
  ],
  ['my_chat_member_kicked', 880000018, [{ type: 'reachability', contact: ana, reachable: false, at: t0 + 600_000 }]],
  ['my_chat_member_unblocked', 880000019, [{ type: 'reachability', contact: ana, reachable: true, at: t0 + 700_000 }]],
  ['channel_post', 880000020, [{ type: 'ignored', reason: 'update kind "channel_post" not handled' }]],
  ['unknown_kind', 880000021, [{ type: 'ignored', reason: 'update kind "message_reaction_count" not handled' }]],
  ['multi_kind_nonconformant', 880000022, [message('700000001:55', 'text', 'first wins', priv)]],
  // A group that became a supergroup: a service message in each chat, both naming the same move.
  ['group_migrate_to', 880000023, [{ type: 'moved', contact: { providerContactId: '-4000000001', name: 'Order 4711', username: undefined }, to: '-1004000000001', at: t0 + 600_000 }]],
  ['supergroup_migrate_from', 880000024, [{ type: 'moved', contact: { providerContactId: '-4000000001', name: 'Order 4711', username: undefined }, to: '-1004000000001', at: t0 + 600_000 }]],
  // The bot added to a group: a service message, not a person writing. No conversation.
  ['service_new_chat_members', 880000025, [{ type: 'ignored', reason: 'service message "new_chat_members"', dedupeKey: '-4000000099:1' }]],
];

describe('normalizeTelegram', () => {
  it('has a case for every fixture', () => {
    const files = readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();
    expect(cases.map(([name]) => name).sort()).toEqual(files);
  });

  it.each(cases)('%s', (name, updateId, expected) => {
    const result = normalizeTelegram(load(name));
    expect(result.dedupeKey).toBe(`update:${updateId}`);
    expect(result.events).toEqual(expected);
  });

  it('never reports a phone for a Telegram contact', () => {
    for (const [name] of cases) {
      for (const e of normalizeTelegram(load(name)).events) {
        if (e.type === 'message' || e.type === 'reachability') expect(e.contact.phone).toBeUndefined();
      }
    }
  });

  it('dates a callback by receivedAt when given', () => {
    const [event] = normalizeTelegram(load('callback_inline'), { receivedAt: 1767229999123 }).events;
    expect(event).toMatchObject({ sentAt: 1767229999123 });
  });

  it('keys contacts by chat, so the same message_id in two chats are two messages', () => {
    const a = load('private_text');
    const b = load('private_text');
    b.message.chat.id = 700000002;
    const [ea] = normalizeTelegram(a).events as Msg[];
    const [eb] = normalizeTelegram(b).events as Msg[];
    expect(ea!.providerMessageId).not.toBe(eb!.providerMessageId);
  });

  it('round-trips message refs', () => {
    expect(parseTelegramMessageRef(telegramMessageRef(-1002000000001, 900))).toEqual({ chatId: '-1002000000001', messageId: 900 });
    expect(parseTelegramMessageRef('cbq:1')).toBeNull();
  });

  it('ignores an update with nothing but update_id', () => {
    expect(normalizeTelegram({ update_id: 5 })).toEqual({ dedupeKey: 'update:5', events: [{ type: 'ignored', reason: 'update carries no content' }] });
  });

  const invalid: [string, unknown, string][] = [
    ['not an object', [], '(body)'],
    ['missing update_id', { message: load('private_text').message }, 'update_id'],
    ['string update_id', { ...load('private_text'), update_id: '880000001' }, 'update_id'],
    ['fractional update_id', { ...load('private_text'), update_id: 1.5 }, 'update_id'],
    ['message without chat', (() => { const b = load('private_text'); delete b.message.chat; return b; })(), 'message.chat'],
    ['chat id as string', (() => { const b = load('private_text'); b.message.chat.id = '700000001'; return b; })(), 'message.chat.id'],
    ['message without date', (() => { const b = load('private_text'); delete b.message.date; return b; })(), 'message.date'],
    ['photo without sizes', (() => { const b = load('photo_caption'); b.message.photo = []; return b; })(), 'message.photo'],
    ['document without file_id', (() => { const b = load('document'); delete b.message.document.file_id; return b; })(), 'message.document.file_id'],
    ['location not numbers', (() => { const b = load('location'); b.message.location.latitude = 'x'; return b; })(), 'message.location.latitude'],
    ['edit without edit_date', (() => { const b = load('edited_message'); delete b.edited_message.edit_date; return b; })(), 'edited_message.edit_date'],
    ['callback without id', (() => { const b = load('callback_inline'); delete b.callback_query.id; return b; })(), 'callback_query.id'],
    ['callback without from', (() => { const b = load('callback_inline'); delete b.callback_query.from; return b; })(), 'callback_query.from'],
    ['a move to a chat id that is not an integer', (() => { const b = load('group_migrate_to'); b.message.migrate_to_chat_id = '-1004000000001'; return b; })(), 'message.migrate_to_chat_id'],
    ['chat member without status', (() => { const b = load('my_chat_member_kicked'); delete b.my_chat_member.new_chat_member.status; return b; })(), 'my_chat_member.new_chat_member.status'],
  ];
  it.each(invalid)('rejects %s with SchemaError at the field', (_name, body, field) => {
    expect(() => normalizeTelegram(body)).toThrow(SchemaError);
    expect(() => normalizeTelegram(body)).toThrow(expect.objectContaining({ field }));
  });
});
