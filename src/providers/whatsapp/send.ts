/**
 * WAHA sender (WhatsApp through a self-hosted gateway): `POST {baseUrl}/api/sendText`,
 * header `X-Api-Key`, body `{session, chatId: "<digits>@c.us", text, reply_to?}`.
 * WAHA answers with the sent message; its `id` matches later `message.ack` events.
 * Failures use the generic HTTP class (PROTOCOLS.md §3.1).
 * Docs: https://waha.devlike.pro/docs/how-to/send-messages/
 */
import { z } from 'zod';
import { fetchWithTimeout, httpFailure, joinUrl, parseJson } from '../send-helpers.js';
import type { MessengerConfig, OutboundMessage, SendContext, SendResult } from '../types.js';

export type WhatsAppSendConfig = Pick<Extract<MessengerConfig, { provider: 'whatsapp' }>, 'baseUrl' | 'session' | 'apiKey'>;

const sentSchema = z.object({
  // WEBJS answers a string id; some engines an object `{fromMe, remote, id, _serialized}`.
  id: z.union([z.string().min(1), z.object({ _serialized: z.string().min(1) })]),
});

const errorSchema = z.object({
  message: z.union([z.string(), z.array(z.string())]).optional(),
  error: z.string().optional(),
});

/** `4915112345678` / `+49 151…` → `4915112345678@c.us`; a full chat id (has `@`) passes through. */
export function toWahaChatId(to: string): string | undefined {
  if (to.includes('@')) return to;
  const digits = to.replace(/\D/g, '');
  return digits ? `${digits}@c.us` : undefined;
}

/** Sends one text message through WAHA. Never throws. */
export async function sendWhatsApp(cfg: WhatsAppSendConfig, msg: OutboundMessage, ctx: SendContext): Promise<SendResult> {
  if (!('text' in msg.content)) {
    return {
      ok: false,
      retryable: false,
      code: 'template_unsupported',
      message: 'WhatsApp (WAHA) channels cannot send message templates',
    };
  }
  const chatId = toWahaChatId(msg.to);
  if (!chatId) return { ok: false, retryable: false, code: 'invalid_recipient', message: 'recipient has no digits' };

  const secrets = [cfg.apiKey];
  const body = {
    session: cfg.session,
    chatId,
    text: msg.content.text,
    ...(msg.replyToProviderMessageId ? { reply_to: msg.replyToProviderMessageId } : {}),
  };
  const reply = await fetchWithTimeout(
    ctx.fetch,
    joinUrl(cfg.baseUrl, '/api/sendText'),
    {
      method: 'POST',
      headers: { 'x-api-key': cfg.apiKey, 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify(body),
    },
    { timeoutMs: ctx.timeoutMs, secrets },
  );
  if (!reply.ok) return reply.failure;

  const json = parseJson(reply.text);
  if (reply.status >= 200 && reply.status < 300) {
    const sent = sentSchema.safeParse(json);
    const id = sent.success ? (typeof sent.data.id === 'string' ? sent.data.id : sent.data.id._serialized) : null;
    return { ok: true, providerMessageId: id, httpStatus: reply.status };
  }
  const err = errorSchema.safeParse(json);
  const detail = err.success ? (err.data.message ?? err.data.error) : undefined;
  const text = Array.isArray(detail) ? detail.join('; ') : detail;
  return httpFailure(reply, ctx.now, {
    secrets,
    message: text ? `WAHA HTTP ${reply.status}: ${text}` : undefined,
  });
}
