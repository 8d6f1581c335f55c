/**
 * WAHA-compatible WhatsApp gateway webhook → NormalizedEvent[]. Shapes: PROTOCOLS.md §3.1.
 * Handles `message` (incoming) and `message.ack`; every other event is ignored without looking at
 * its payload (`message.any` may come with an empty one). Throws only SchemaError.
 */
import { z } from 'zod';
import { clip, compact, kindFromMime, nonEmpty, parseOrThrow, type NormalizeOptions } from '../helpers.js';
import type { MessageKind, NormalizeResult, NormalizedContact, NormalizedEvent, OutboundStatus } from '../types.js';

const envelopeSchema = z.looseObject({
  event: z.string().min(1),
  session: z.string().optional(),
  /** Newer builds: event time in ms. Informational, so a bad value is dropped, not rejected. */
  timestamp: z.number().min(0).optional().catch(undefined),
  payload: z.unknown().optional(),
});

/** Unix seconds, possibly fractional (e.g. 1710481111.853). */
const secondsSchema = z.number().min(0).max(1e13);
const coordinateSchema = z.union([z.number(), z.string().regex(/^-?\d+(\.\d+)?$/).transform(Number)]);

const messageSchema = z.object({
  id: z.string().min(1),
  from: z.string().min(1),
  fromMe: z.boolean().optional(),
  timestamp: secondsSchema.optional(),
  body: z.string().nullish(),
  hasMedia: z.boolean().nullish(),
  media: z
    .object({ url: z.string().nullish(), mimetype: z.string().nullish(), filename: z.string().nullish() })
    .nullish(),
  location: z
    .object({
      latitude: coordinateSchema,
      longitude: coordinateSchema,
      description: z.string().nullish(),
      name: z.string().nullish(),
      address: z.string().nullish(),
    })
    .nullish(),
  replyTo: z.object({ id: z.string().nullish() }).nullish(),
  author: z.string().nullish(),
  participant: z.string().nullish(),
  _data: z.unknown().optional(),
});

const ackSchema = z.object({
  id: z.string().min(1),
  ack: z.number().nullish(),
  ackName: z.string().nullish(),
});

/** What lets us drop echoes and broadcast-like chats before validating the rest. */
const preCheckSchema = z.object({ id: z.unknown().optional(), fromMe: z.unknown().optional(), from: z.unknown().optional() });

const ackByNumber: Record<number, OutboundStatus | undefined> = { [-1]: 'failed', 1: 'sent', 2: 'delivered', 3: 'read', 4: 'read' };
const ackByName: Record<string, OutboundStatus | undefined> = {
  ERROR: 'failed',
  SERVER: 'sent',
  DEVICE: 'delivered',
  READ: 'read',
  PLAYED: 'read',
};

/** Normalizes a WAHA webhook body. No dedupeKey: `payload.id` dedupes messages and acks. */
export function normalizeWhatsApp(payload: unknown, opts: NormalizeOptions = {}): NormalizeResult {
  const env = parseOrThrow(envelopeSchema, payload);
  switch (env.event) {
    case 'message':
      return { events: [normalizeMessage(env.payload, env.timestamp, opts)] };
    case 'message.ack':
      return { events: [normalizeAck(env.payload, env.timestamp, opts)] };
    default:
      return { events: [{ type: 'ignored', reason: `event "${clip(env.event)}" not handled` }] };
  }
}

function normalizeMessage(raw: unknown, envelopeMs: number | undefined, opts: NormalizeOptions): NormalizedEvent {
  const pre = preCheckSchema.safeParse(raw);
  if (pre.success) {
    const dedupeKey = typeof pre.data.id === 'string' ? `message:${pre.data.id}` : undefined;
    if (pre.data.fromMe === true) return { type: 'ignored', reason: 'own message (fromMe)', dedupeKey };
    // A message id starts `true_` when we sent it (PROTOCOLS.md §3): the answer when `fromMe` is missing.
    if (pre.data.fromMe === undefined && typeof pre.data.id === 'string' && pre.data.id.startsWith('true_')) {
      return { type: 'ignored', reason: 'own message (id true_…)', dedupeKey };
    }
    const from = pre.data.from;
    if (typeof from === 'string' && (from.endsWith('@newsletter') || from.endsWith('@broadcast'))) {
      return { type: 'ignored', reason: `chat type "${clip(from.slice(from.lastIndexOf('@')))}" not handled`, dedupeKey };
    }
  }
  const msg = parseOrThrow(messageSchema, raw, ['payload']);
  if (msg.fromMe === true) return { type: 'ignored', reason: 'own message (fromMe)', dedupeKey: `message:${msg.id}` };

  let kind: MessageKind = 'text';
  let text = nonEmpty(msg.body) === undefined ? null : (msg.body as string);
  let details: Record<string, unknown> = {};
  if (msg.location != null) {
    const { latitude, longitude } = msg.location;
    kind = 'location';
    // whatsapp-web.js puts a thumbnail in `body` of location messages, so build the text here.
    text = nonEmpty(msg.location.description) ?? nonEmpty(msg.location.name) ?? `${latitude},${longitude}`;
    details = compact({ latitude, longitude, name: msg.location.name ?? undefined, address: msg.location.address ?? undefined });
  } else if (msg.hasMedia === true) {
    kind = kindFromMime(msg.media?.mimetype);
    details = compact({
      mediaUrl: msg.media?.url ?? undefined,
      mimeType: msg.media?.mimetype ?? undefined,
      filename: msg.media?.filename ?? undefined,
    });
  }

  const sentAt = msg.timestamp !== undefined ? Math.round(msg.timestamp * 1000) : (envelopeMs ?? opts.receivedAt ?? 0);
  const all = {
    ...details,
    ...compact({
      chatId: msg.from,
      replyToMessageId: msg.replyTo?.id ?? undefined,
      author: msg.author ?? msg.participant ?? undefined,
    }),
  };
  return {
    type: 'message',
    providerMessageId: msg.id,
    contact: contactOf(msg.from, msg._data),
    kind,
    text,
    details: all,
    sentAt,
  };
}

function normalizeAck(raw: unknown, envelopeMs: number | undefined, opts: NormalizeOptions): NormalizedEvent {
  const ack = parseOrThrow(ackSchema, raw, ['payload']);
  const status =
    typeof ack.ack === 'number'
      ? ackByNumber[ack.ack]
      : typeof ack.ackName === 'string' && Object.hasOwn(ackByName, ack.ackName)
        ? ackByName[ack.ackName]
        : undefined;
  if (status === undefined) {
    const label = ack.ackName ?? (ack.ack === null || ack.ack === undefined ? 'none' : String(ack.ack));
    return { type: 'ignored', reason: `ack "${clip(label)}" not handled`, dedupeKey: `ack:${ack.id}:${label}` };
  }
  return { type: 'status', providerMessageId: ack.id, status, at: envelopeMs ?? opts.receivedAt ?? 0 };
}

/**
 * A direct chat (`<digits>@c.us`, `<digits>[:device]@s.whatsapp.net`) is keyed by its phone digits;
 * groups (`@g.us`), LIDs (`@lid`) and anything else by the full chat id.
 */
function contactOf(chatId: string, data: unknown): NormalizedContact {
  const at = chatId.lastIndexOf('@');
  const local = at < 0 ? chatId : chatId.slice(0, at);
  const domain = at < 0 ? '' : chatId.slice(at + 1);
  const digits = local.split(':')[0] ?? '';
  if ((domain === 'c.us' || domain === 's.whatsapp.net') && /^\d+$/.test(digits)) {
    return { providerContactId: digits, phone: digits, name: pushNameOf(data) };
  }
  return { providerContactId: chatId };
}

/** The sender's push name from the engine's raw `_data` (WEBJS `notifyName`, NOWEB `pushName`), if any. */
function pushNameOf(data: unknown): string | undefined {
  if (data === null || typeof data !== 'object') return undefined;
  const d = data as Record<string, unknown>;
  for (const key of ['notifyName', 'pushName']) {
    const v = Object.hasOwn(d, key) ? d[key] : undefined;
    if (typeof v === 'string' && nonEmpty(v) !== undefined) return nonEmpty(v);
  }
  return undefined;
}
