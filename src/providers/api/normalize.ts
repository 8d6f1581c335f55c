/**
 * Switchboard's own `api` messenger: inbound body → NormalizedEvent[]. Format: PROTOCOLS.md §6.
 * `message.received` is handled; other types are ignored without validating `data`.
 * Throws only SchemaError.
 */
import { z } from 'zod';
import { compact, kindFromMime, nonEmpty, parseOrThrow, stripToDigits, type NormalizeOptions } from '../helpers.js';
import type { MessageKind, NormalizeResult } from '../types.js';

const envelopeSchema = z.looseObject({
  type: z.string().min(1),
  /** Standard Webhooks payloads may carry an ISO-8601 timestamp; informational, so a bad one is dropped. */
  timestamp: z.string().optional().catch(undefined),
  data: z.unknown().optional(),
});

export const apiMessageReceivedSchema = z.object({
  contact: z.object({
    id: z.string().min(1),
    name: z.string().nullish(),
    phone: z.string().nullish(),
  }),
  message: z.object({
    id: z.string().min(1),
    text: z.string().nullish(),
    attachments: z.array(z.object({ url: z.string().min(1), mimeType: z.string() })).optional(),
  }),
});
export type ApiMessageReceived = z.infer<typeof apiMessageReceivedSchema>;

/** Normalizes an `api` channel body. No dedupeKey: `data.message.id` dedupes (the route has webhook-id). */
export function normalizeApi(payload: unknown, opts: NormalizeOptions = {}): NormalizeResult {
  const env = parseOrThrow(envelopeSchema, payload);
  if (env.type !== 'message.received') {
    const type = env.type.length > 64 ? `${env.type.slice(0, 64)}…` : env.type;
    return { events: [{ type: 'ignored', reason: `type "${type}" not handled` }] };
  }
  const data = parseOrThrow(apiMessageReceivedSchema, env.data, ['data']);
  const text = nonEmpty(data.message.text) === undefined ? null : (data.message.text as string);
  const attachments = data.message.attachments ?? [];
  const kind: MessageKind = text === null && attachments[0] !== undefined ? kindFromMime(attachments[0].mimeType) : 'text';
  const parsedTs = env.timestamp === undefined ? Number.NaN : Date.parse(env.timestamp);
  return {
    events: [
      {
        type: 'message',
        providerMessageId: data.message.id,
        contact: {
          providerContactId: data.contact.id,
          name: nonEmpty(data.contact.name),
          phone: stripToDigits(data.contact.phone),
        },
        kind,
        text,
        details: attachments.length > 0 ? compact({ attachments }) : undefined,
        sentAt: Number.isFinite(parsedTs) ? parsedTs : (opts.receivedAt ?? 0),
      },
    ],
  };
}
