/**
 * WhatsApp Business Platform (Cloud API) webhook body → NormalizedEvent[].
 * Shapes: PROTOCOLS.md §1.4. Lenient with fields we do not use; strict on ids, timestamps, types
 * and the sub-object each handled message type needs. Throws only SchemaError.
 */
import { z } from 'zod';
import { isRecord } from '../../lib/is-record.js';
import { clip, compact, joinName, nonEmpty, parseOrThrow, phoneDigits, type PathSegment } from '../helpers.js';
import type { MessageKind, NormalizeResult, NormalizedContact, NormalizedEvent, OutboundStatus } from '../types.js';

const idSchema = z.string().min(1);
/** Unix seconds, sent as a string; bounded so `* 1000` stays finite. */
/** A timestamp string in unix seconds, as the schemas and readSingleText accept it. */
const UNIX_SECONDS = /^\d{1,15}$/;
const timestampSchema = z.union([z.string().regex(UNIX_SECONDS, 'Expected unix seconds'), z.number().int().min(0).max(1e15)]);

const envelopeSchema = z.object({
  object: z.literal('whatsapp_business_account'),
  entry: z.array(z.object({ changes: z.array(z.object({ field: z.string(), value: z.unknown().optional() })) })),
});

const errorSchema = z.object({
  code: z.union([z.number(), z.string()]).optional(),
  title: z.string().optional(),
  message: z.string().optional(),
  /** Legacy payloads put `details` on the error itself. */
  details: z.string().optional(),
  error_data: z.object({ details: z.string().optional() }).optional(),
});
type WaError = z.infer<typeof errorSchema>;

const contactSchema = z.object({
  wa_id: z.string().optional(),
  user_id: z.string().optional(),
  profile: z.object({ name: z.string().optional(), username: z.string().optional() }).optional(),
});
type WaContact = z.infer<typeof contactSchema>;

const valueSchema = z.object({
  metadata: z.object({ phone_number_id: idSchema }),
  contacts: z.array(contactSchema).optional(),
  messages: z.array(z.unknown()).optional(),
  statuses: z.array(z.unknown()).optional(),
  errors: z.array(errorSchema).optional(),
});

const routeKeyOnlySchema = z.object({ metadata: z.object({ phone_number_id: idSchema }) });

const messageSchema = z
  .object({
    id: idSchema,
    from: idSchema.optional(),
    from_user_id: idSchema.optional(),
    timestamp: timestampSchema,
    type: z.string().min(1),
    context: z
      .object({
        id: z.string().optional(),
        from: z.string().optional(),
        forwarded: z.boolean().optional(),
        frequently_forwarded: z.boolean().optional(),
        referred_product: z.unknown().optional(),
      })
      .optional(),
    referral: z.record(z.string(), z.unknown()).optional(),
    errors: z.array(errorSchema).optional(),
  })
  .refine((m) => m.from !== undefined || m.from_user_id !== undefined, {
    message: 'from or from_user_id is required',
    path: ['from'],
  });
type WaMessage = z.infer<typeof messageSchema>;

const statusSchema = z.object({
  id: idSchema,
  status: z.string(),
  timestamp: timestampSchema,
  errors: z.array(errorSchema).optional(),
});

const textSchema = z.object({ body: z.string() });
const mediaSchema = z.object({
  id: idSchema,
  mime_type: z.string().optional(),
  sha256: z.string().optional(),
  caption: z.string().optional(),
  filename: z.string().optional(),
  voice: z.boolean().optional(),
  animated: z.boolean().optional(),
});
const locationSchema = z.object({
  latitude: z.number(),
  longitude: z.number(),
  name: z.string().optional(),
  address: z.string().optional(),
  url: z.string().optional(),
});
const sharedContactsSchema = z.array(
  z.looseObject({
    name: z
      .object({ formatted_name: z.string().optional(), first_name: z.string().optional(), last_name: z.string().optional() })
      .optional(),
  }),
);
const replySchema = z.object({ id: z.string(), title: z.string(), description: z.string().optional() });
const interactiveSchema = z.looseObject({
  type: z.string().min(1),
  button_reply: replySchema.optional(),
  list_reply: replySchema.optional(),
});
const buttonSchema = z.object({ text: z.string(), payload: z.string().optional() });
const reactionSchema = z.object({ message_id: idSchema, emoji: z.string().optional() });
const orderSchema = z.object({
  catalog_id: z.string().optional(),
  text: z.string().optional(),
  product_items: z.array(z.unknown()).optional(),
});
const systemSchema = z.object({
  body: z.string().optional(),
  type: z.string().optional(),
  wa_id: z.string().optional(),
  new_wa_id: z.string().optional(),
  customer: z.string().optional(),
});
const unsupportedSchema = z.object({ type: z.string().optional() }).optional();

const mediaTypes = new Set(['image', 'video', 'audio', 'document', 'sticker']);
const statusMap: Record<string, OutboundStatus> = { sent: 'sent', delivered: 'delivered', read: 'read', failed: 'failed' };

/** Normalizes a Cloud API webhook body. Each `messages` change yields events routed by phone_number_id. */
export function normalizeWhatsAppBusiness(payload: unknown): NormalizeResult {
  return readSingleText(payload) ?? normalizeWithSchemas(payload);
}

type Fields = Record<string, unknown>;
/** An array of exactly one element, returned; else undefined. */
function onlyItem(v: unknown): unknown {
  return Array.isArray(v) && v.length === 1 ? v[0] : undefined;
}

/**
 * The usual delivery (one change, one text message, at most one contact), read without zod. What
 * it returns equals what the schemas return for the same body, field for field; anything else
 * (another type, statuses, errors, context, numeric timestamps, more than one of anything, and
 * every body the schemas would refuse) gives null and goes through normalizeWithSchemas. Why: zod
 * copies the whole value while checking it, and that garbage, about 3 KB per webhook, was a
 * tenth of the event loop's time on the ingest benchmark. The equivalence is a property test
 * (normalize.property.test.ts) over the fixtures, their mutations and random values.
 */
export function readSingleText(body: unknown): NormalizeResult | null {
  if (!isRecord(body) || body.object !== 'whatsapp_business_account') return null;
  const entry = onlyItem(body.entry);
  if (!isRecord(entry)) return null;
  const change = onlyItem(entry.changes);
  if (!isRecord(change) || change.field !== 'messages') return null;
  const value = change.value;
  if (!isRecord(value) || value.statuses !== undefined || value.errors !== undefined) return null;
  const metadata = value.metadata;
  if (!isRecord(metadata) || typeof metadata.phone_number_id !== 'string' || metadata.phone_number_id === '') return null;

  const msg = onlyItem(value.messages);
  if (!isRecord(msg) || msg.type !== 'text') return null;
  const { id, from, timestamp } = msg;
  if (typeof id !== 'string' || id === '' || typeof from !== 'string' || from === '') return null;
  if (typeof timestamp !== 'string' || !UNIX_SECONDS.test(timestamp)) return null;
  if (msg.from_user_id !== undefined || msg.context !== undefined || msg.referral !== undefined || msg.errors !== undefined) return null;
  const text = Object.hasOwn(msg, 'text') ? msg.text : undefined;
  if (!isRecord(text) || typeof text.body !== 'string') return null;

  // With one message and one contact, that contact is the sender's (findContact). Checked to the
  // shape contactSchema gives, so toContact reads it as it reads the schema's copy.
  let sender: Fields | undefined;
  if (value.contacts !== undefined) {
    sender = onlyItem(value.contacts) as Fields | undefined;
    if (!isRecord(sender) || sender.user_id !== undefined) return null;
    if (sender.wa_id !== undefined && typeof sender.wa_id !== 'string') return null;
    const profile = sender.profile;
    if (profile !== undefined) {
      if (!isRecord(profile)) return null;
      if (profile.name !== undefined && typeof profile.name !== 'string') return null;
      if (profile.username !== undefined && typeof profile.username !== 'string') return null;
    }
  }

  const event: NormalizedEvent = {
    type: 'message',
    routeKey: metadata.phone_number_id,
    providerMessageId: id,
    contact: toContact(msg as Pick<WaMessage, 'from' | 'from_user_id'>, sender as WaContact | undefined),
    kind: 'text',
    text: text.body,
    details: undefined,
    sentAt: toMs(timestamp),
  };
  return { events: [event] };
}

/** Any Cloud API body, checked and read with the zod schemas above. */
export function normalizeWithSchemas(payload: unknown): NormalizeResult {
  const envelope = parseOrThrow(envelopeSchema, payload);
  const events: NormalizedEvent[] = [];
  envelope.entry.forEach((entry, i) => {
    entry.changes.forEach((change, j) => {
      const path: PathSegment[] = ['entry', i, 'changes', j, 'value'];
      if (change.field !== 'messages') {
        const routed = routeKeyOnlySchema.safeParse(change.value);
        events.push({
          type: 'ignored',
          routeKey: routed.success ? routed.data.metadata.phone_number_id : undefined,
          reason: `change field "${clip(change.field)}" not handled`,
        });
        return;
      }
      events.push(...normalizeValue(change.value, path));
    });
  });
  return { events };
}

function normalizeValue(raw: unknown, path: PathSegment[]): NormalizedEvent[] {
  const value = parseOrThrow(valueSchema, raw, path);
  const routeKey = value.metadata.phone_number_id;
  const contacts = value.contacts ?? [];
  const events: NormalizedEvent[] = [];

  const messages = (value.messages ?? []).map((m, k) => parseOrThrow(messageSchema, m, [...path, 'messages', k]));
  const senders = new Set(messages.map((m) => m.from_user_id ?? m.from));
  messages.forEach((msg, k) => {
    const contact = findContact(contacts, msg, senders.size === 1);
    events.push(normalizeMessage(msg, value.messages?.[k], contact, routeKey, [...path, 'messages', k]));
  });

  (value.statuses ?? []).forEach((s, k) => {
    const st = parseOrThrow(statusSchema, s, [...path, 'statuses', k]);
    const status = Object.hasOwn(statusMap, st.status) ? statusMap[st.status] : undefined;
    if (status === undefined) {
      events.push({ type: 'ignored', routeKey, reason: `status "${clip(st.status)}" not handled`, dedupeKey: `status:${st.id}:${st.status}` });
      return;
    }
    const err = st.errors?.[0];
    events.push({
      type: 'status',
      routeKey,
      providerMessageId: st.id,
      status,
      errorCode: err?.code === undefined ? undefined : String(err.code),
      errorTitle: err?.title ?? err?.message,
      at: toMs(st.timestamp),
    });
  });

  if (messages.length === 0 && (value.statuses ?? []).length === 0) {
    const codes = (value.errors ?? []).map((e) => [e.code, e.title ?? e.message].filter((x) => x !== undefined).join(' ') || 'unknown');
    events.push({
      type: 'ignored',
      routeKey,
      reason: codes.length > 0 ? `value errors: ${clip(codes.join(', '))}` : 'no messages or statuses',
    });
  }
  return events;
}

/**
 * The contacts[] entry of a message's sender: by BSUID or wa_id; when neither matches (Meta's
 * `from` may be formatted differently from `wa_id`) and the change has one contact and one
 * sender, that contact.
 */
function findContact(contacts: WaContact[], msg: WaMessage, singleSender: boolean): WaContact | undefined {
  const found = contacts.find(
    (c) =>
      (msg.from_user_id !== undefined && c.user_id === msg.from_user_id) || (msg.from !== undefined && c.wa_id === msg.from),
  );
  if (found !== undefined) return found;
  return contacts.length === 1 && singleSender ? contacts[0] : undefined;
}

function toContact(msg: Pick<WaMessage, 'from' | 'from_user_id'>, c: WaContact | undefined): NormalizedContact {
  // The refine in messageSchema guarantees one of from_user_id/from.
  const providerContactId = present(c?.user_id) ?? msg.from_user_id ?? present(c?.wa_id) ?? msg.from ?? '';
  return {
    providerContactId,
    name: nonEmpty(c?.profile?.name),
    phone: phoneDigits(c?.wa_id) ?? phoneDigits(msg.from),
    username: nonEmpty(c?.profile?.username),
  };
}

function normalizeMessage(
  msg: WaMessage,
  raw: unknown,
  c: WaContact | undefined,
  routeKey: string,
  path: PathSegment[],
): NormalizedEvent {
  const sub = (key: string): unknown =>
    raw !== null && typeof raw === 'object' && Object.hasOwn(raw, key) ? (raw as Record<string, unknown>)[key] : undefined;
  const common = compact({
    context: msg.context === undefined ? undefined : compact({
      messageId: msg.context.id,
      from: msg.context.from,
      forwarded: msg.context.forwarded,
      frequentlyForwarded: msg.context.frequently_forwarded,
      referredProduct: msg.context.referred_product,
    }),
    referral: msg.referral,
    errors: msg.errors === undefined ? undefined : simplifyErrors(msg.errors),
  });

  let kind: MessageKind;
  let text: string | null = null;
  let details: Record<string, unknown> = {};

  if (msg.type === 'text') {
    kind = 'text';
    text = parseOrThrow(textSchema, sub('text'), [...path, 'text']).body;
  } else if (mediaTypes.has(msg.type)) {
    const media = parseOrThrow(mediaSchema, sub(msg.type), [...path, msg.type]);
    kind = msg.type === 'audio' && media.voice === true ? 'voice' : (msg.type as MessageKind);
    text = media.caption ?? null;
    details = compact({
      mediaId: media.id,
      mimeType: media.mime_type,
      sha256: media.sha256,
      filename: media.filename,
      caption: media.caption,
      animated: media.animated,
    });
  } else if (msg.type === 'location') {
    const loc = parseOrThrow(locationSchema, sub('location'), [...path, 'location']);
    kind = 'location';
    text = [loc.name, loc.address].map(nonEmpty).filter(Boolean).join(', ') || `${loc.latitude},${loc.longitude}`;
    details = compact({ latitude: loc.latitude, longitude: loc.longitude, name: loc.name, address: loc.address, url: loc.url });
  } else if (msg.type === 'contacts') {
    const shared = parseOrThrow(sharedContactsSchema, sub('contacts'), [...path, 'contacts']);
    kind = 'contacts';
    const names = shared
      .map((s) => nonEmpty(s.name?.formatted_name) ?? joinName(s.name?.first_name, s.name?.last_name))
      .filter((n): n is string => n !== undefined);
    text = names.length > 0 ? names.join(', ') : null;
    details = { contacts: shared };
  } else if (msg.type === 'interactive') {
    const it = parseOrThrow(interactiveSchema, sub('interactive'), [...path, 'interactive']);
    kind = 'interactive';
    const reply = it.type === 'button_reply' ? it.button_reply : it.type === 'list_reply' ? it.list_reply : undefined;
    if ((it.type === 'button_reply' || it.type === 'list_reply') && reply === undefined) {
      // Parse again to report the missing sub-object with its path.
      parseOrThrow(z.object({ [it.type]: replySchema }), it, [...path, 'interactive']);
    }
    text = reply?.title ?? null;
    details = reply
      ? compact({ interactiveType: it.type, id: reply.id, description: reply.description })
      : { interactiveType: it.type, reply: Object.hasOwn(it, it.type) ? it[it.type] : null };
  } else if (msg.type === 'button') {
    const b = parseOrThrow(buttonSchema, sub('button'), [...path, 'button']);
    kind = 'button';
    text = b.text;
    details = compact({ payload: b.payload });
  } else if (msg.type === 'reaction') {
    const r = parseOrThrow(reactionSchema, sub('reaction'), [...path, 'reaction']);
    kind = 'reaction';
    const emoji = nonEmpty(r.emoji);
    text = emoji ?? null;
    details = compact({ messageId: r.message_id, emoji, removed: emoji === undefined });
  } else if (msg.type === 'order') {
    const o = parseOrThrow(orderSchema, sub('order'), [...path, 'order']);
    kind = 'order';
    text = o.text ?? null;
    details = compact({ catalogId: o.catalog_id, productItems: o.product_items });
  } else if (msg.type === 'system') {
    const s = parseOrThrow(systemSchema, sub('system'), [...path, 'system']);
    kind = 'system';
    text = s.body ?? null;
    details = compact({ systemType: s.type, waId: s.wa_id ?? s.new_wa_id, customer: s.customer });
  } else {
    // `unsupported`, legacy `unknown`, and any type added after this was written.
    const u = parseOrThrow(unsupportedSchema, sub('unsupported'), [...path, 'unsupported']);
    kind = 'unsupported';
    details = compact({ type: msg.type, unsupportedType: u?.type });
  }

  return {
    type: 'message',
    routeKey,
    providerMessageId: msg.id,
    contact: toContact(msg, c),
    kind,
    text,
    details: Object.keys(details).length + Object.keys(common).length > 0 ? { ...details, ...common } : undefined,
    sentAt: toMs(msg.timestamp),
  };
}

function simplifyErrors(errors: WaError[]): Record<string, unknown>[] {
  return errors.map((e) =>
    compact({
      code: e.code,
      title: e.title ?? e.message,
      details: e.error_data?.details ?? e.details,
    }),
  );
}

/** `s` unless it is missing or blank: a blank wa_id/user_id in contacts[] is no id. */
function present(s: string | undefined): string | undefined {
  return s !== undefined && s.trim() !== '' ? s : undefined;
}

function toMs(ts: string | number): number {
  return Number(ts) * 1000;
}
