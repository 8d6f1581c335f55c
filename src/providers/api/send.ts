/**
 * `api` channel sender: POSTs a Standard Webhooks `message.created` event to the channel's
 * `callbackUrl` (PROTOCOLS.md §4, §6). `webhook-id` is the delivery id, so it is stable across
 * retries and the receiver can dedupe; `webhook-timestamp` is the attempt's time.
 * Replies: 2xx ok; 3xx fails (never followed); 410 gone; 408/429/5xx retry with Retry-After;
 * other 4xx fail.
 */
import { fetchWithTimeout, httpFailure } from '../send-helpers.js';
import type { MessengerConfig, OutboundMessage, SendContext, SendResult } from '../types.js';
import { signStandardWebhook } from './sign.js';

export type ApiSendConfig = Pick<Extract<MessengerConfig, { provider: 'api' }>, 'callbackUrl' | 'secret'>;

/** The `message.created` event body; undefined for content an integration cannot receive. */
export function buildMessageCreatedEvent(msg: OutboundMessage, now: number): Record<string, unknown> | undefined {
  if (!('text' in msg.content)) return undefined;
  return {
    type: 'message.created',
    timestamp: new Date(now).toISOString(),
    data: {
      conversationId: msg.conversationId,
      contact: { id: msg.to },
      message: { id: msg.messageId, text: msg.content.text, agentId: msg.agentId },
    },
  };
}

/** Delivers one agent message to an `api` channel's callback. Never throws. */
export async function sendApi(cfg: ApiSendConfig, msg: OutboundMessage, ctx: SendContext): Promise<SendResult> {
  const event = buildMessageCreatedEvent(msg, ctx.now);
  if (!event) {
    return { ok: false, retryable: false, code: 'template_unsupported', message: 'api channels cannot send message templates' };
  }
  const body = JSON.stringify(event);
  const timestampSec = Math.floor(ctx.now / 1000);
  let signature: string;
  try {
    signature = await signStandardWebhook(cfg.secret, msg.deliveryId, timestampSec, body, ctx.mac);
  } catch {
    return { ok: false, retryable: false, code: 'invalid_secret', message: 'channel secret is not a valid whsec_ secret' };
  }

  const secrets = [cfg.secret];
  const reply = await fetchWithTimeout(
    ctx.fetch,
    cfg.callbackUrl,
    {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'webhook-id': msg.deliveryId,
        'webhook-timestamp': String(timestampSec),
        'webhook-signature': signature,
      },
      body,
    },
    // Receivers' bodies are never used; read a little so the connection can be reused.
    { timeoutMs: ctx.timeoutMs, secrets, maxBodyBytes: 4096 },
  );
  if (!reply.ok) return reply.failure;

  if (reply.status >= 200 && reply.status < 300) {
    return { ok: true, providerMessageId: msg.messageId, httpStatus: reply.status };
  }
  // Svix's convention (PROTOCOLS.md §4): the receiver asks us to stop retrying this message.
  if (reply.headers.get('webhook-delivery')?.trim().toLowerCase() === 'abort-message') {
    return {
      ok: false,
      retryable: false,
      code: 'aborted_by_receiver',
      message: `callback answered HTTP ${reply.status} with webhook-delivery: abort-message`,
      httpStatus: reply.status,
    };
  }
  if (reply.status === 410) {
    return {
      ok: false,
      retryable: false,
      code: 'gone',
      message: 'callback answered 410 Gone: the endpoint asks not to be called again',
      httpStatus: 410,
    };
  }
  if (reply.status >= 300 && reply.status < 400) {
    return httpFailure(reply, ctx.now, {
      secrets,
      message: `callback answered a redirect (HTTP ${reply.status}); redirects are not followed`,
    });
  }
  return httpFailure(reply, ctx.now, { secrets, message: `callback answered HTTP ${reply.status}` });
}
