import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SchemaError, type NormalizedEvent } from '../types.js';
import { normalizeWhatsApp } from './normalize.js';

const dir = new URL('./fixtures/', import.meta.url);
const load = (name: string): any => JSON.parse(readFileSync(new URL(`${name}.json`, dir), 'utf8'));

const t0 = 1767225600000;
const ana = { providerContactId: '4915112345678', phone: '4915112345678', name: 'Ana Lima' };
const chat = { chatId: '4915112345678@c.us' };
const fileUrl = (n: string) => `http://waha.local:3000/api/files/default/false_4915112345678@c.us_3EB0SB0000${n}.bin`;
type Msg = Extract<NormalizedEvent, { type: 'message' }>;
const message = (n: string, kind: string, text: string | null, details: Record<string, unknown>, extra: Partial<Msg> = {}): NormalizedEvent =>
  ({ type: 'message', providerMessageId: `false_4915112345678@c.us_3EB0SB0000${n}`, contact: ana, kind, text, details, sentAt: t0, ...extra }) as NormalizedEvent;
const outId = 'true_4915112345678@c.us_3EB0SBOUT003';
const status = (s: string, at: number): NormalizedEvent => ({ type: 'status', providerMessageId: outId, status: s as 'sent', at });

const cases: [string, NormalizedEvent[]][] = [
  ['message_text', [message('01', 'text', 'Hi, is the blue one in stock?', chat)]],
  ['message_image', [message('02', 'image', 'the dent', { mediaUrl: fileUrl('02'), mimeType: 'image/jpeg', ...chat })]],
  ['message_video', [message('03', 'video', null, { mediaUrl: fileUrl('03'), mimeType: 'video/mp4', ...chat })]],
  ['message_audio_ptt', [message('04', 'audio', null, { mediaUrl: fileUrl('04'), mimeType: 'audio/ogg; codecs=opus', ...chat })]],
  ['message_document', [message('05', 'document', 'invoice.pdf', { mediaUrl: fileUrl('05'), mimeType: 'application/pdf', filename: 'invoice.pdf', ...chat })]],
  ['message_media_unavailable', [message('06', 'document', null, chat)]],
  // whatsapp-web.js puts a JPEG thumbnail in a location's body: the text comes from the location.
  ['message_location', [message('07', 'location', 'Depot Mitte', { latitude: 52.520008, longitude: 13.404954, ...chat })]],
  ['message_reply', [message('08', 'text', 'yes, this one', { ...chat, replyToMessageId: 'true_4915112345678@c.us_3EB0SBOUT001' })]],
  [
    'message_group',
    [
      {
        type: 'message',
        providerMessageId: 'false_120363000000000001@g.us_3EB0SB000009_4915112345678@c.us',
        contact: { providerContactId: '120363000000000001@g.us' },
        kind: 'text',
        text: 'order for the team',
        details: { chatId: '120363000000000001@g.us', author: '4915112345678@c.us' },
        sentAt: t0,
      },
    ],
  ],
  [
    'message_lid',
    [
      {
        type: 'message',
        providerMessageId: 'false_170000000000001@lid_3EB0SB000010',
        contact: { providerContactId: '170000000000001@lid' },
        kind: 'text',
        text: 'hidden number',
        details: { chatId: '170000000000001@lid' },
        sentAt: t0,
      },
    ],
  ],
  [
    'message_s_whatsapp_net',
    [
      message('11', 'text', 'via noweb', { chatId: '4915112345678:12@s.whatsapp.net' }, {
        providerMessageId: 'false_4915112345678@s.whatsapp.net_3EB0SB000011',
        contact: { ...ana, name: 'Ana L.' },
      }),
    ],
  ],
  ['message_fractional_timestamp', [message('12', 'text', 'precise', chat, { sentAt: t0 + 853 })]],
  ['message_from_me', [{ type: 'ignored', reason: 'own message (fromMe)', dedupeKey: 'message:true_4915112345678@c.us_3EB0SBOUT002' }]],
  ['message_own_id_without_from_me', [{ type: 'ignored', reason: 'own message (id true_…)', dedupeKey: 'message:true_4915112345678@c.us_3EB0SBOUT005' }]],
  ['message_newsletter', [{ type: 'ignored', reason: 'chat type "@newsletter" not handled', dedupeKey: 'message:false_120363000000000099@newsletter_SB13' }]],
  ['message_status_broadcast', [{ type: 'ignored', reason: 'chat type "@broadcast" not handled', dedupeKey: 'message:false_status@broadcast_3EB0SB000014_4915112345678@c.us' }]],
  ['ack_error', [status('failed', 1767225700000)]],
  ['ack_pending', [{ type: 'ignored', reason: 'ack "PENDING" not handled', dedupeKey: 'ack:true_4915112345678@c.us_3EB0SBOUT003:PENDING' }]],
  ['ack_server', [status('sent', 1767225702000)]],
  ['ack_device', [status('delivered', 1767225703000)]],
  ['ack_read', [status('read', 1767225704000)]],
  ['ack_played', [status('read', 1767225705000)]],
  [
    'ack_name_only_no_timestamp',
    [{ type: 'status', providerMessageId: 'true_120363000000000001@g.us_3EB0SBOUT004_170000000000002@lid', status: 'delivered', at: 0 }],
  ],
  ['message_any_empty', [{ type: 'ignored', reason: 'event "message.any" not handled' }]],
  ['message_reaction', [{ type: 'ignored', reason: 'event "message.reaction" not handled' }]],
  ['session_status', [{ type: 'ignored', reason: 'event "session.status" not handled' }]],
];

describe('normalizeWhatsApp (WAHA)', () => {
  it('has a case for every fixture', () => {
    const files = readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();
    expect(cases.map(([name]) => name).sort()).toEqual(files);
  });

  it.each(cases)('%s', (name, expected) => {
    const result = normalizeWhatsApp(load(name));
    expect(result.dedupeKey).toBeUndefined();
    expect(result.events).toEqual(expected);
  });

  it('dates an ack without an envelope timestamp by receivedAt', () => {
    expect(normalizeWhatsApp(load('ack_name_only_no_timestamp'), { receivedAt: 1767229999000 }).events[0]).toMatchObject({ at: 1767229999000 });
  });

  it('prefers the numeric ack over ackName', () => {
    const body = load('ack_read');
    body.payload.ackName = 'SERVER';
    expect(normalizeWhatsApp(body).events[0]).toMatchObject({ status: 'read' });
  });

  it('ignores events it does not handle without looking at their payload', () => {
    for (const payload of [undefined, null, 42, 'x', [], { id: 5 }]) {
      expect(normalizeWhatsApp({ event: 'message.revoked', session: 'default', payload }).events).toEqual([
        { type: 'ignored', reason: 'event "message.revoked" not handled' },
      ]);
    }
  });

  const invalid: [string, unknown, string][] = [
    ['not an object', 'message', '(body)'],
    ['missing event', { session: 'default', payload: {} }, 'event'],
    ['event not a string', { event: 1, payload: {} }, 'event'],
    ['message with empty payload', { event: 'message', session: 'default', payload: {} }, 'payload.id'],
    ['message without from', (() => { const b = load('message_text'); delete b.payload.from; return b; })(), 'payload.from'],
    ['message id not a string', (() => { const b = load('message_text'); b.payload.id = 7; return b; })(), 'payload.id'],
    ['message timestamp negative', (() => { const b = load('message_text'); b.payload.timestamp = -1; return b; })(), 'payload.timestamp'],
    ['location not numeric', (() => { const b = load('message_location'); b.payload.location.latitude = 'north'; return b; })(), 'payload.location.latitude'],
    ['ack without id', (() => { const b = load('ack_read'); delete b.payload.id; return b; })(), 'payload.id'],
    ['ack not a number', (() => { const b = load('ack_read'); b.payload.ack = '3'; return b; })(), 'payload.ack'],
  ];
  it.each(invalid)('rejects %s with SchemaError at the field', (_name, body, field) => {
    expect(() => normalizeWhatsApp(body)).toThrow(SchemaError);
    expect(() => normalizeWhatsApp(body)).toThrow(expect.objectContaining({ field }));
  });
});
