/**
 * Fake WhatsApp Cloud API (Graph): `POST /:version/:phoneNumberId/messages` (version optional).
 * Checks `Authorization: Bearer <accessToken>` when `accessToken` is given (else any bearer).
 * Success: `{"messaging_product":"whatsapp","contacts":[{input, wa_id}],"messages":[{"id":"wamid.…"}]}`.
 */
import { randomHex, startFakeServer, type FakeServer, type FakeServerOptions, type ScriptedReply } from './fake-server.js';

export interface FakeWabaOptions extends FakeServerOptions {
  /** Expected access token; requests with another get 401 + Meta code 190. */
  accessToken?: string;
  /** Expected phone number id; others get 400 + Meta code 100. */
  phoneNumberId?: string;
}

/** Meta's default HTTP status per error code (mirrors disagree; the sender must use the code). */
function defaultStatus(code: number): number {
  if (code === 0 || code === 190) return 401;
  if (code === 1 || code === 2 || code === 131000 || code === 131016) return 500;
  if (code === 4 || code === 80007 || code === 130429) return 429;
  if (code === 10 || (code >= 200 && code <= 299)) return 403;
  return 400;
}

/** A Graph error answer: `{"error":{message, type, code, error_data:{messaging_product, details}, fbtrace_id}}`. */
export function metaError(
  code: number,
  opts: { status?: number; message?: string; details?: string; headers?: Record<string, string>; delayMs?: number } = {},
): ScriptedReply {
  return {
    status: opts.status ?? defaultStatus(code),
    headers: opts.headers,
    delayMs: opts.delayMs,
    body: {
      error: {
        message: opts.message ?? `(#${code}) Fake error ${code}`,
        type: 'OAuthException',
        code,
        error_data: { messaging_product: 'whatsapp', details: opts.details ?? `Fake details for ${code}` },
        fbtrace_id: `A${randomHex(8)}`,
      },
    },
  };
}

export function wamid(): string {
  return `wamid.${Buffer.from(randomHex(18), 'hex').toString('base64')}`;
}

export function createFakeWaba(options: FakeWabaOptions = {}): Promise<FakeServer> {
  return startFakeServer(
    {
      routes(app, handle) {
        const route = (c: Parameters<typeof handle>[0]) =>
          handle(
            c,
            (req) => {
              const to = String((req.body as { to?: unknown } | undefined)?.to ?? '');
              return {
                status: 200,
                body: { messaging_product: 'whatsapp', contacts: [{ input: to, wa_id: to }], messages: [{ id: wamid() }] },
              };
            },
            (req) => {
              const auth = req.headers['authorization'] ?? '';
              const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
              if (!token || (options.accessToken !== undefined && token !== options.accessToken)) {
                return metaError(190, { message: 'Invalid OAuth access token - Cannot parse access token' });
              }
              const id = c.req.param('phoneNumberId');
              if (options.phoneNumberId !== undefined && id !== options.phoneNumberId) {
                return metaError(100, { message: `Unsupported post request. Object with ID '${id}' does not exist` });
              }
              const body = req.body as { messaging_product?: unknown; to?: unknown; type?: unknown } | undefined;
              if (typeof body !== 'object' || body?.messaging_product !== 'whatsapp' || typeof body.to !== 'string') {
                return metaError(100, { message: '(#100) Invalid parameter' });
              }
              return undefined;
            },
          );
        app.post('/:version/:phoneNumberId/messages', route);
        app.post('/:phoneNumberId/messages', route);
      },
    },
    options,
  );
}
