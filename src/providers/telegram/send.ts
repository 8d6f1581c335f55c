/**
 * Telegram Bot API sender: `POST {api}/bot<token>/sendMessage` with JSON `{chat_id, text}`.
 * Message ids are per chat, so the returned `providerMessageId` is `<chat_id>:<message_id>`
 * (`telegramMessageRef`), the same form inbound messages are stored under; a reply target in that
 * form becomes `reply_parameters.message_id`.
 * The bot token sits in the URL path, so every returned message is redacted of it.
 * Failures follow PROTOCOLS.md §2.3: 429 waits `parameters.retry_after` s, a group that became a
 * supergroup (`migrate_to_chat_id`) fails with the new id in the code and in `movedTo` (the delivery
 * store follows it once), 5xx retries.
 * Docs: https://core.telegram.org/bots/api#sendmessage
 */
import { z } from 'zod';
import { clip } from '../helpers.js';
import {
  cleanMessage,
  fetchWithTimeout,
  httpFailure,
  isRetryableStatus,
  joinUrl,
  parseJson,
  parseRetryAfter,
} from '../send-helpers.js';
import type { MessengerConfig, OutboundMessage, SendContext, SendResult } from '../types.js';
import { parseTelegramMessageRef, telegramChatId, telegramMessageRef } from './normalize.js';

export type TelegramSendConfig = Pick<Extract<MessengerConfig, { provider: 'telegram' }>, 'botToken'>;

const responseSchema = z.union([
  z.object({
    ok: z.literal(true),
    result: z
      .object({ message_id: z.number(), chat: z.object({ id: z.union([z.number(), z.string()]) }).optional() })
      .optional(),
  }),
  z.object({
    ok: z.literal(false),
    error_code: z.number().int().optional(),
    description: z.string().optional(),
    parameters: z
      .object({
        retry_after: z.number().nonnegative().optional(),
        migrate_to_chat_id: z.union([z.number(), z.string()]).optional(),
      })
      .optional(),
  }),
]);

/** Chat ids are integers (negative for groups) or `@channelusername`; send integers as numbers. */
function toChatId(to: string): number | string {
  if (/^-?\d+$/.test(to)) {
    const n = Number(to);
    if (Number.isSafeInteger(n)) return n;
  }
  return to;
}

/**
 * The Bot API message id to quote: from a `<chat_id>:<message_id>` ref in the same chat, or a bare
 * message id; undefined for anything else (another chat's message, another provider's id).
 */
function replyMessageId(replyTo: string | undefined, to: string): number | undefined {
  if (!replyTo) return undefined;
  const ref = parseTelegramMessageRef(replyTo);
  if (ref) return ref.chatId === to ? ref.messageId : undefined;
  return /^\d+$/.test(replyTo) ? Number(replyTo) : undefined;
}

/** The JSON body for sendMessage; undefined for content Telegram has no notion of (templates). */
export function buildTelegramBody(msg: OutboundMessage): Record<string, unknown> | undefined {
  if (!('text' in msg.content)) return undefined;
  const replyTo = replyMessageId(msg.replyToProviderMessageId, msg.to);
  return {
    chat_id: toChatId(msg.to),
    text: msg.content.text,
    // A deleted quoted message should not fail the whole reply.
    ...(replyTo !== undefined ? { reply_parameters: { message_id: replyTo, allow_sending_without_reply: true } } : {}),
  };
}

/** Sends one text message through the Telegram Bot API. Never throws. */
export async function sendTelegram(cfg: TelegramSendConfig, msg: OutboundMessage, ctx: SendContext): Promise<SendResult> {
  const body = buildTelegramBody(msg);
  if (!body) {
    return { ok: false, retryable: false, code: 'template_unsupported', message: 'Telegram has no message templates' };
  }
  const secrets = [cfg.botToken];
  const reply = await fetchWithTimeout(
    ctx.fetch,
    joinUrl(ctx.telegramApiBaseUrl, `/bot${cfg.botToken}/sendMessage`),
    { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) },
    { timeoutMs: ctx.timeoutMs, secrets },
  );
  if (!reply.ok) return reply.failure;

  const parsed = responseSchema.safeParse(parseJson(reply.text));
  if (!parsed.success) {
    // A 2xx means Telegram took the message; retrying an odd body would risk a duplicate.
    if (reply.status >= 200 && reply.status < 300) return { ok: true, providerMessageId: null, httpStatus: reply.status };
    return httpFailure(reply, ctx.now, { secrets });
  }
  const data = parsed.data;
  if (data.ok) {
    const result = data.result;
    const ref = result === undefined ? null : telegramMessageRef(result.chat?.id ?? msg.to, result.message_id);
    return { ok: true, providerMessageId: ref, httpStatus: reply.status };
  }

  const errorCode = data.error_code ?? reply.status;
  const description = data.description ?? `HTTP ${reply.status}`;
  const migrateTo = data.parameters?.migrate_to_chat_id;
  if (migrateTo !== undefined) {
    // A chat id is an integer; anything else is reported, never followed.
    const movedTo = telegramChatId(String(migrateTo)) ?? undefined;
    return {
      ok: false,
      retryable: false,
      code: `migrate_to_chat_id:${clip(String(migrateTo), 40)}`,
      message: cleanMessage(`group chat migrated to supergroup ${clip(String(migrateTo), 40)} (${description})`, secrets),
      httpStatus: reply.status,
      movedTo,
    };
  }
  const retryAfter = data.parameters?.retry_after;
  return {
    ok: false,
    retryable: isRetryableStatus(errorCode),
    retryAfterMs:
      retryAfter === undefined ? parseRetryAfter(reply.headers.get('retry-after'), ctx.now) : Math.round(retryAfter * 1000),
    code: String(errorCode),
    message: cleanMessage(description, secrets),
    httpStatus: reply.status,
  };
}
