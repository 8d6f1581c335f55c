/**
 * Fake WAHA: `POST /api/sendText` `{session, chatId, text, reply_to?}`, checks `X-Api-Key` when
 * `apiKey` is given (else any non-empty key). Success (201): the sent message,
 * `{id:"true_<chatId>_<HEX>", timestamp, from, to, fromMe:true, body, hasMedia:false, ack:1, ackName:"SERVER"}`.
 */
import { randomHex, startFakeServer, type FakeServer, type FakeServerOptions } from './fake-server.js';

export interface FakeWahaOptions extends FakeServerOptions {
  /** Expected X-Api-Key; others get 401. */
  apiKey?: string;
  /** Our own chat id, used as `from`. */
  me?: string;
}

export function createFakeWaha(options: FakeWahaOptions = {}): Promise<FakeServer> {
  const me = options.me ?? '4930111111@c.us';
  return startFakeServer(
    {
      routes(app, handle) {
        app.post('/api/sendText', (c) =>
          handle(
            c,
            (req) => {
              const body = req.body as { chatId: string; text: string };
              return {
                status: 201,
                body: {
                  id: `true_${body.chatId}_3EB0${randomHex(8)}`,
                  timestamp: Math.floor(Date.now() / 1000),
                  from: me,
                  to: body.chatId,
                  fromMe: true,
                  body: body.text,
                  hasMedia: false,
                  ack: 1,
                  ackName: 'SERVER',
                },
              };
            },
            (req) => {
              const key = req.headers['x-api-key'];
              if (!key || (options.apiKey !== undefined && key !== options.apiKey)) {
                return { status: 401, body: { message: 'Unauthorized', statusCode: 401 } };
              }
              const body = req.body as { session?: unknown; chatId?: unknown; text?: unknown } | undefined;
              if (
                typeof body !== 'object' ||
                body === null ||
                typeof body.session !== 'string' ||
                typeof body.chatId !== 'string' ||
                typeof body.text !== 'string'
              ) {
                return {
                  status: 400,
                  body: { statusCode: 400, message: ['session, chatId and text are required'], error: 'Bad Request' },
                };
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
