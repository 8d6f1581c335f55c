import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SchemaError, type NormalizedEvent } from '../types.js';
import { normalizeApi } from './normalize.js';

const dir = new URL('./fixtures/', import.meta.url);
const load = (name: string): any => JSON.parse(readFileSync(new URL(`${name}.json`, dir), 'utf8'));
const t0 = Date.parse('2026-01-01T10:00:00Z');

const cases: [string, NormalizedEvent[]][] = [
  [
    'message_text',
    [
      {
        type: 'message',
        providerMessageId: 'ext-5001',
        contact: { providerContactId: 'crm-1001', name: 'Mira Sato', phone: '819000000001' },
        kind: 'text',
        text: 'Can I change the delivery address?',
        sentAt: t0,
      },
    ],
  ],
  [
    'message_attachment',
    [
      {
        type: 'message',
        providerMessageId: 'ext-5002',
        contact: { providerContactId: 'crm-1001' },
        kind: 'text',
        text: 'photo of the label',
        details: {
          attachments: [
            { url: 'https://files.example.org/label.jpg', mimeType: 'image/jpeg' },
            { url: 'https://files.example.org/label.pdf', mimeType: 'application/pdf' },
          ],
        },
        sentAt: t0 + 60_500,
      },
    ],
  ],
  [
    'message_attachment_only',
    [
      {
        type: 'message',
        providerMessageId: 'ext-5003',
        contact: { providerContactId: 'shop-77', name: 'Lars' },
        kind: 'video',
        text: null,
        details: { attachments: [{ url: 'https://files.example.org/clip.mp4', mimeType: 'video/mp4' }] },
        sentAt: 0,
      },
    ],
  ],
  ['message_minimal', [{ type: 'message', providerMessageId: 'm_9', contact: { providerContactId: 'u_9' }, kind: 'text', text: 'hi', sentAt: 0 }]],
  ['other_type', [{ type: 'ignored', reason: 'type "contact.updated" not handled' }]],
];

describe('normalizeApi', () => {
  it('has a case for every fixture', () => {
    const files = readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();
    expect(cases.map(([name]) => name).sort()).toEqual(files);
  });

  it.each(cases)('%s', (name, expected) => {
    const result = normalizeApi(load(name));
    expect(result.dedupeKey).toBeUndefined();
    expect(result.events).toEqual(expected);
  });

  it('dates a message without timestamp by receivedAt', () => {
    expect(normalizeApi(load('message_minimal'), { receivedAt: 1767262000000 }).events[0]).toMatchObject({ sentAt: 1767262000000 });
  });

  it('drops a phone with no digits and an unparseable timestamp', () => {
    const body = load('message_text');
    body.data.contact.phone = 'n/a';
    body.timestamp = 'soon';
    expect(normalizeApi(body, { receivedAt: 5 }).events[0]).toMatchObject({ contact: { providerContactId: 'crm-1001', phone: undefined }, sentAt: 5 });
  });

  it('ignores other types without validating data', () => {
    expect(normalizeApi({ type: 'ping' }).events).toEqual([{ type: 'ignored', reason: 'type "ping" not handled' }]);
  });

  const invalid: [string, unknown, string][] = [
    ['not an object', 42, '(body)'],
    ['missing type', { data: load('message_text').data }, 'type'],
    ['missing data', { type: 'message.received' }, 'data'],
    ['missing contact', (() => { const b = load('message_text'); delete b.data.contact; return b; })(), 'data.contact'],
    ['contact id a number', (() => { const b = load('message_text'); b.data.contact.id = 1001; return b; })(), 'data.contact.id'],
    ['empty contact id', (() => { const b = load('message_text'); b.data.contact.id = ''; return b; })(), 'data.contact.id'],
    ['missing message id', (() => { const b = load('message_text'); delete b.data.message.id; return b; })(), 'data.message.id'],
    ['text not a string', (() => { const b = load('message_text'); b.data.message.text = ['hi']; return b; })(), 'data.message.text'],
    ['attachment without url', (() => { const b = load('message_attachment'); delete b.data.message.attachments[1].url; return b; })(), 'data.message.attachments.1.url'],
  ];
  it.each(invalid)('rejects %s with SchemaError at the field', (_name, body, field) => {
    expect(() => normalizeApi(body)).toThrow(SchemaError);
    expect(() => normalizeApi(body)).toThrow(expect.objectContaining({ field }));
  });
});
