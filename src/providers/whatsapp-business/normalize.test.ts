import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SchemaError, type NormalizedEvent } from '../types.js';
import { normalizeWhatsAppBusiness } from './normalize.js';

const dir = new URL('./fixtures/', import.meta.url);
const load = (name: string): unknown => JSON.parse(readFileSync(new URL(`${name}.json`, dir), 'utf8'));

const route = '109876543210001';
const ana = { providerContactId: '4915112345678', name: 'Ana Lima', phone: '4915112345678' };
const t0 = 1767225600000;
const message = (
  id: string,
  kind: string,
  text: string | null,
  details?: Record<string, unknown>,
  extra: Partial<Extract<NormalizedEvent, { type: 'message' }>> = {},
): NormalizedEvent =>
  ({ type: 'message', routeKey: route, providerMessageId: id, contact: ana, kind, text, details, sentAt: t0, ...extra }) as NormalizedEvent;
const status = (id: string, s: string, at: number, extra: Record<string, unknown> = {}): NormalizedEvent =>
  ({ type: 'status', routeKey: route, providerMessageId: id, status: s, at, ...extra }) as NormalizedEvent;
const reply = (id: string) => ({ context: { messageId: id, from: '15550001111' } });
const errors131051 = [{ code: 131051, title: 'Message type unknown', details: 'Message type is currently not supported.' }];

const cases: [string, NormalizedEvent[]][] = [
  ['text', [message('wamid.SB_TEXT_0001', 'text', 'Is my order shipped?')]],
  ['text_reply_context', [message('wamid.SB_TEXT_0002', 'text', 'Yes, that one', reply('wamid.SB_OUT_0001'))]],
  ['text_forwarded', [message('wamid.SB_TEXT_0003', 'text', 'fwd: delivery slot', { context: { forwarded: true } })]],
  [
    'text_referral_ad',
    [
      message('wamid.SB_TEXT_0004', 'text', 'Tell me more', {
        referral: expect.objectContaining({ source_type: 'ad', ctwa_clid: 'SBclid123', source_id: '120000000000001' }),
      }),
    ],
  ],
  [
    'text_bsuid_username',
    [
      message('wamid.SB_TEXT_0005', 'text', 'hello from bo', undefined, {
        contact: { providerContactId: 'US.100000000000000001', name: 'Bo Chen', phone: '14155550123', username: '@bochen' },
      }),
    ],
  ],
  [
    'text_bsuid_no_phone',
    [
      message('wamid.SB_TEXT_0006', 'text', 'no number here', undefined, {
        contact: { providerContactId: 'US.100000000000000002', name: 'Cy', username: '@cy_only' },
        sentAt: t0 + 1000,
      }),
    ],
  ],
  [
    'image_caption',
    [
      message('wamid.SB_IMG_0001', 'image', 'Broken lid', {
        mediaId: '900000000000001',
        mimeType: 'image/jpeg',
        sha256: 'c2JpbWFnZXNoYTI1Ng==',
        caption: 'Broken lid',
      }),
    ],
  ],
  ['video', [message('wamid.SB_VID_0001', 'video', null, { mediaId: '900000000000002', mimeType: 'video/mp4', sha256: 'c2J2aWRlb3NoYTI1Ng==' })]],
  [
    'audio_voice',
    [message('wamid.SB_AUD_0001', 'voice', null, { mediaId: '900000000000003', mimeType: 'audio/ogg; codecs=opus', sha256: 'c2J2b2ljZXNoYTI1Ng==' })],
  ],
  ['audio_file', [message('wamid.SB_AUD_0002', 'audio', null, { mediaId: '900000000000004', mimeType: 'audio/mpeg', sha256: 'c2JhdWRpb3NoYTI1Ng==' })]],
  [
    'document',
    [
      message('wamid.SB_DOC_0001', 'document', 'Invoice March', {
        mediaId: '900000000000005',
        mimeType: 'application/pdf',
        sha256: 'c2Jkb2NzaGEyNTY=',
        filename: 'invoice-0311.pdf',
        caption: 'Invoice March',
      }),
    ],
  ],
  ['sticker', [message('wamid.SB_STK_0001', 'sticker', null, { mediaId: '900000000000006', mimeType: 'image/webp', sha256: 'c2JzdGlja2Vy', animated: false })]],
  [
    'location',
    [
      message('wamid.SB_LOC_0001', 'location', 'Depot Mitte, Alexanderplatz 1, Berlin', {
        latitude: 52.520008,
        longitude: 13.404954,
        name: 'Depot Mitte',
        address: 'Alexanderplatz 1, Berlin',
        url: 'https://depot.example',
      }),
    ],
  ],
  ['location_pin', [message('wamid.SB_LOC_0002', 'location', '-33.8688,151.2093', { latitude: -33.8688, longitude: 151.2093 })]],
  ['contacts', [message('wamid.SB_CON_0001', 'contacts', 'Dana Ruiz, Eli Park', { contacts: expect.any(Array) })]],
  [
    'interactive_button_reply',
    [message('wamid.SB_INT_0001', 'interactive', 'Reschedule', { interactiveType: 'button_reply', id: 'reschedule', ...reply('wamid.SB_OUT_0002') })],
  ],
  [
    'interactive_list_reply',
    [
      message('wamid.SB_INT_0002', 'interactive', 'Morning', {
        interactiveType: 'list_reply',
        id: 'slot_am',
        description: '8:00 to 12:00',
        ...reply('wamid.SB_OUT_0003'),
      }),
    ],
  ],
  [
    'interactive_flow_reply',
    [message('wamid.SB_INT_0003', 'interactive', null, { interactiveType: 'nfm_reply', reply: { name: 'flow', body: 'Sent', response_json: '{"rating":5}' } })],
  ],
  ['button_quick_reply', [message('wamid.SB_BTN_0001', 'button', 'Track order', { payload: 'TRACK_4711', ...reply('wamid.SB_OUT_0004') })]],
  ['reaction', [message('wamid.SB_RCT_0001', 'reaction', '👍', { messageId: 'wamid.SB_OUT_0005', emoji: '👍', removed: false })]],
  ['reaction_removed', [message('wamid.SB_RCT_0002', 'reaction', null, { messageId: 'wamid.SB_OUT_0005', removed: true })]],
  [
    'order',
    [
      message('wamid.SB_ORD_0001', 'order', 'Two of these please', {
        catalogId: '300000000000001',
        productItems: [{ product_retailer_id: 'sku-1', quantity: 2, item_price: 12.5, currency: 'EUR' }],
      }),
    ],
  ],
  [
    'system_changed_number',
    [
      message(
        'wamid.SB_SYS_0001',
        'system',
        'User Ana Lima changed from 4915112345678 to 4915199999999',
        { systemType: 'user_changed_number', waId: '4915199999999' },
        { contact: { providerContactId: '4915112345678', phone: '4915112345678' } },
      ),
    ],
  ],
  ['unsupported', [message('wamid.SB_UNS_0001', 'unsupported', null, { type: 'unsupported', unsupportedType: 'edit', errors: errors131051 })]],
  [
    'unknown_legacy',
    [
      message('wamid.SB_UNK_0001', 'unsupported', null, {
        type: 'unknown',
        errors: [{ code: 131051, title: 'Unsupported message type', details: 'Message type is not currently supported' }],
      }),
    ],
  ],
  ['future_type', [message('wamid.SB_FUT_0001', 'unsupported', null, { type: 'hologram' })]],
  ['status_sent', [status('wamid.SB_OUT_0010', 'sent', t0 + 100_000)]],
  ['status_delivered', [status('wamid.SB_OUT_0010', 'delivered', t0 + 110_000)]],
  ['status_read', [status('wamid.SB_OUT_0010', 'read', t0 + 120_000)]],
  ['status_failed_131047', [status('wamid.SB_OUT_0011', 'failed', t0 + 100_000, { errorCode: '131047', errorTitle: 'Re-engagement message' })]],
  ['status_unknown', [{ type: 'ignored', routeKey: route, reason: 'status "deleted" not handled', dedupeKey: 'status:wamid.SB_OUT_0012:deleted' }]],
  ['value_errors', [{ type: 'ignored', routeKey: route, reason: 'value errors: 130429 Rate limit hit' }]],
  ['other_field', [{ type: 'ignored', reason: 'change field "message_template_status_update" not handled' }]],
  [
    'batched_two_numbers',
    [
      message('wamid.SB_BAT_0001', 'text', 'first number'),
      message('wamid.SB_BAT_0002', 'text', 'second number', undefined, {
        routeKey: '109876543210002',
        contact: { providerContactId: '2348000000001', name: 'Femi', phone: '2348000000001' },
        sentAt: t0 + 5000,
      }),
      status('wamid.SB_OUT_0013', 'delivered', t0 + 6000, { routeKey: '109876543210002' }),
    ],
  ],
  [
    'two_senders_one_change',
    [
      message('wamid.SB_TWO_0001', 'text', 'from ana'),
      message('wamid.SB_TWO_0002', 'text', 'from gus', undefined, {
        contact: { providerContactId: '447700900001', name: 'Gus', phone: '447700900001' },
      }),
    ],
  ],
  ['messages_and_statuses', [message('wamid.SB_MIX_0001', 'text', 'thanks'), status('wamid.SB_OUT_0014', 'read', t0 + 1000)]],
];

describe('normalizeWhatsAppBusiness', () => {
  it('has a case for every fixture', () => {
    const files = readdirSync(dir).filter((f) => f.endsWith('.json')).map((f) => f.slice(0, -5)).sort();
    expect(cases.map(([name]) => name).sort()).toEqual(files);
  });

  it.each(cases)('%s', (name, expected) => {
    const result = normalizeWhatsAppBusiness(load(name));
    expect(result.dedupeKey).toBeUndefined();
    expect(result.events).toEqual(expected);
  });

  it('falls back to the only contact when from and wa_id are formatted differently', () => {
    const body = load('text') as any;
    body.entry[0].changes[0].value.messages[0].from = '49 151 12345678';
    const [event] = normalizeWhatsAppBusiness(body).events;
    expect(event).toMatchObject({ contact: { providerContactId: '4915112345678', name: 'Ana Lima', phone: '4915112345678' } });
  });

  it('keys a sender without contacts entry by from, and leaves phone out when from is not digits', () => {
    const body = load('text') as any;
    delete body.entry[0].changes[0].value.contacts;
    body.entry[0].changes[0].value.messages[0].from = 'PHONE_NUMBER';
    const [event] = normalizeWhatsAppBusiness(body).events;
    expect(event).toMatchObject({ contact: { providerContactId: 'PHONE_NUMBER' } });
    expect((event as { contact: { phone?: string } }).contact.phone).toBeUndefined();
  });

  it('returns no events for an empty entry list', () => {
    expect(normalizeWhatsAppBusiness({ object: 'whatsapp_business_account', entry: [] })).toEqual({ events: [] });
  });

  const invalid: [string, (b: any) => unknown, string][] = [
    ['not an object', () => 'hello', '(body)'],
    ['wrong object', (b) => ({ ...b, object: 'page' }), 'object'],
    ['entry not an array', (b) => ({ ...b, entry: {} }), 'entry'],
    ['change without field', (b) => (delete b.entry[0].changes[0].field, b), 'entry.0.changes.0.field'],
    ['missing phone_number_id', (b) => (delete b.entry[0].changes[0].value.metadata.phone_number_id, b), 'entry.0.changes.0.value.metadata.phone_number_id'],
    ['message without id', (b) => (delete b.entry[0].changes[0].value.messages[0].id, b), 'entry.0.changes.0.value.messages.0.id'],
    ['message id empty', (b) => ((b.entry[0].changes[0].value.messages[0].id = ''), b), 'entry.0.changes.0.value.messages.0.id'],
    ['message without sender', (b) => (delete b.entry[0].changes[0].value.messages[0].from, b), 'entry.0.changes.0.value.messages.0.from'],
    ['timestamp not seconds', (b) => ((b.entry[0].changes[0].value.messages[0].timestamp = 'yesterday'), b), 'entry.0.changes.0.value.messages.0.timestamp'],
    ['text without body', (b) => ((b.entry[0].changes[0].value.messages[0].text = {}), b), 'entry.0.changes.0.value.messages.0.text.body'],
    ['messages not an array', (b) => ((b.entry[0].changes[0].value.messages = 'x'), b), 'entry.0.changes.0.value.messages'],
  ];
  it.each(invalid)('rejects %s with SchemaError at the field', (_name, mutate, field) => {
    const body = mutate(load('text'));
    expect(() => normalizeWhatsAppBusiness(body)).toThrow(SchemaError);
    try {
      normalizeWhatsAppBusiness(body);
    } catch (err) {
      expect((err as SchemaError).field).toBe(field);
    }
  });

  const invalidSub: [string, string, string][] = [
    ['image', 'image_caption', 'entry.0.changes.0.value.messages.0.image.id'],
    ['location', 'location', 'entry.0.changes.0.value.messages.0.location.latitude'],
    ['reaction', 'reaction', 'entry.0.changes.0.value.messages.0.reaction.message_id'],
    ['button', 'button_quick_reply', 'entry.0.changes.0.value.messages.0.button.text'],
    ['interactive', 'interactive_button_reply', 'entry.0.changes.0.value.messages.0.interactive.button_reply'],
  ];
  it.each(invalidSub)('rejects a %s message whose sub-object lacks what we store', (type, fixture, field) => {
    const body = load(fixture) as any;
    const m = body.entry[0].changes[0].value.messages[0];
    if (type === 'image') delete m.image.id;
    if (type === 'location') m.location.latitude = '52.5';
    if (type === 'reaction') delete m.reaction.message_id;
    if (type === 'button') delete m.button.text;
    if (type === 'interactive') delete m.interactive.button_reply;
    expect(() => normalizeWhatsAppBusiness(body)).toThrow(expect.objectContaining({ name: 'SchemaError', field }));
  });

  it('does not validate the value of changes it ignores', () => {
    const body = { object: 'whatsapp_business_account', entry: [{ id: '1', changes: [{ field: 'account_update', value: 42 }] }] };
    expect(normalizeWhatsAppBusiness(body).events).toEqual([{ type: 'ignored', reason: 'change field "account_update" not handled' }]);
  });
});
