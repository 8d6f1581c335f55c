/**
 * Fake Telegram Bot API: `POST /bot:token/sendMessage` (JSON body).
 * Checks the token when `botToken` is given (else any). Success:
 * `{"ok":true,"result":{message_id, from, chat, date, text}}` with increasing message ids.
 */
import { startFakeServer, type FakeServer, type FakeServerOptions, type ScriptedReply } from './fake-server.js';

export interface FakeTelegramOptions extends FakeServerOptions {
  /** Expected bot token; others get 401 Unauthorized. */
  botToken?: string;
}

/** A Bot API error: `{"ok":false,"error_code":code,"description":…,"parameters"?}`, HTTP status = code. */
export function telegramError(
  code: number,
  description: string,
  parameters?: { retry_after?: number; migrate_to_chat_id?: number },
  extra: Pick<ScriptedReply, 'headers' | 'delayMs' | 'status'> = {},
): ScriptedReply {
  return {
    status: extra.status ?? code,
    headers: extra.headers,
    delayMs: extra.delayMs,
    body: { ok: false, error_code: code, description, ...(parameters ? { parameters } : {}) },
  };
}

export function createFakeTelegram(options: FakeTelegramOptions = {}): Promise<FakeServer> {
  let nextMessageId = 1;
  return startFakeServer(
    {
      routes(app, handle) {
        // Hono cannot put a param inside a segment (`bot:token`), so match the segment and strip `bot`.
        app.post('/:botSegment/sendMessage', (c) =>
          handle(
            c,
            (req) => {
              const body = req.body as { chat_id: number | string; text: string };
              const chatId = body.chat_id;
              return {
                status: 200,
                body: {
                  ok: true,
                  result: {
                    message_id: nextMessageId++,
                    from: { id: 7000000001, is_bot: true, first_name: 'Fake bot', username: 'fake_bot' },
                    chat: { id: chatId, type: typeof chatId === 'number' && chatId < 0 ? 'group' : 'private' },
                    date: Math.floor(Date.now() / 1000),
                    text: body.text,
                  },
                },
              };
            },
            (req) => {
              const segment = c.req.param('botSegment');
              const token = segment.startsWith('bot') ? decodeURIComponent(segment.slice(3)) : '';
              if (!token || (options.botToken !== undefined && token !== options.botToken)) {
                return telegramError(401, 'Unauthorized');
              }
              if (!segment.startsWith('bot')) return telegramError(404, 'Not Found');
              const body = req.body as { chat_id?: unknown; text?: unknown } | undefined;
              if (typeof body !== 'object' || body === null) return telegramError(400, 'Bad Request: invalid JSON');
              if (body.chat_id === undefined || body.chat_id === '') return telegramError(400, 'Bad Request: chat_id is empty');
              if (typeof body.text !== 'string' || body.text === '') {
                return telegramError(400, 'Bad Request: message text is empty');
              }
              return undefined;
            },
          ),
        );
      },
    },
    options,
  );
}
