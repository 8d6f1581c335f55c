/**
 * WhatsApp Cloud API sender: `POST {graph}/{phone-number-id}/messages`, `Authorization: Bearer`.
 * Failures are classified by Meta's `error.code` (PROTOCOLS.md §1.7), not by HTTP status, which
 * mirrors disagree on; unknown codes fall back to the HTTP class.
 * Docs: https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages
 */
import { z } from 'zod';
import {
  cleanMessage,
  fetchWithTimeout,
  httpFailure,
  isRetryableStatus,
  joinUrl,
  parseJson,
  parseRetryAfter,
  type SendFailure,
} from '../send-helpers.js';
import type { MessengerConfig, OutboundMessage, SendContext, SendResult } from '../types.js';

export type WhatsAppBusinessSendConfig = Pick<
  Extract<MessengerConfig, { provider: 'whatsapp_business' }>,
  'phoneNumberId' | 'accessToken'
>;

const successSchema = z.object({ messages: z.array(z.object({ id: z.string().min(1) })).min(1) });

const errorSchema = z.object({
  error: z.object({
    code: z.union([z.number(), z.string()]),
    message: z.string().optional(),
    error_data: z.object({ details: z.string().optional() }).optional(),
    fbtrace_id: z.string().optional(),
  }),
});

const retryableCodes = new Set([1, 2, 4, 80007, 130429, 131000, 131016, 131048, 131052, 131053, 131056, 131057]);
const permanentCodes = new Set([
  0, 3, 10, 100, 190, 368, 131008, 131009, 131026, 131031, 131047, 131049, 131050, 131051, 132000, 132001, 132005,
  132007, 132012,
]);

/** Account in maintenance / throughput upgrade: Meta says it takes up to a minute. */
const MAINTENANCE_CODE = 131057;
const MAINTENANCE_WAIT_MS = 60_000;

/** Our retry class for a Meta error code (PROTOCOLS.md §1.7); undefined when we do not know it. */
export function classifyMetaErrorCode(code: number): 'retryable' | 'permanent' | undefined {
  if (retryableCodes.has(code)) return 'retryable';
  if (permanentCodes.has(code) || (code >= 200 && code <= 299)) return 'permanent';
  return undefined;
}

/** The JSON body sent to the Graph API for a message. */
export function buildWhatsAppBusinessBody(msg: OutboundMessage): Record<string, unknown> {
  if ('template' in msg.content) {
    const { name, language, components } = msg.content.template;
    return {
      messaging_product: 'whatsapp',
      to: msg.to,
      type: 'template',
      template: { name, language, ...(components === undefined ? {} : { components }) },
    };
  }
  return {
    messaging_product: 'whatsapp',
    recipient_type: 'individual',
    to: msg.to,
    type: 'text',
    text: { preview_url: false, body: msg.content.text },
    ...(msg.replyToProviderMessageId ? { context: { message_id: msg.replyToProviderMessageId } } : {}),
  };
}

/** Sends one message through the WhatsApp Cloud API. Never throws. */
export async function sendWhatsAppBusiness(
  cfg: WhatsAppBusinessSendConfig,
  msg: OutboundMessage,
  ctx: SendContext,
): Promise<SendResult> {
  const secrets = [cfg.accessToken];
  const url = joinUrl(ctx.graphApiBaseUrl, `/${encodeURIComponent(cfg.phoneNumberId)}/messages`);
  const reply = await fetchWithTimeout(
    ctx.fetch,
    url,
    {
      method: 'POST',
      headers: { authorization: `Bearer ${cfg.accessToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(buildWhatsAppBusinessBody(msg)),
    },
    { timeoutMs: ctx.timeoutMs, secrets },
  );
  if (!reply.ok) return reply.failure;

  const json = parseJson(reply.text);
  if (reply.status >= 200 && reply.status < 300) {
    const success = successSchema.safeParse(json);
    // 200 means Meta accepted the message; retrying an odd body would risk a duplicate.
    return { ok: true, providerMessageId: success.success ? success.data.messages[0]!.id : null, httpStatus: reply.status };
  }

  const parsed = errorSchema.safeParse(json);
  const code = parsed.success ? Number(parsed.data.error.code) : Number.NaN;
  if (!parsed.success || !Number.isInteger(code)) return httpFailure(reply, ctx.now, { secrets });

  const { message, error_data, fbtrace_id } = parsed.data.error;
  const text =
    `Meta error ${code}: ${message ?? 'no message'}` +
    (error_data?.details ? ` (${error_data.details})` : '') +
    (fbtrace_id ? ` [fbtrace_id ${fbtrace_id}]` : '');
  const cls = classifyMetaErrorCode(code);
  let retryAfterMs = parseRetryAfter(reply.headers.get('retry-after'), ctx.now);
  if (code === MAINTENANCE_CODE && retryAfterMs === undefined) retryAfterMs = MAINTENANCE_WAIT_MS;

  const failure: SendFailure = {
    ok: false,
    retryable: cls === undefined ? isRetryableStatus(reply.status) : cls === 'retryable',
    retryAfterMs,
    code: String(code),
    message: cleanMessage(text, secrets),
    httpStatus: reply.status,
  };
  return failure;
}
