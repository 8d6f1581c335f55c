/**
 * Fake receiver for `api` channels: accepts `POST` on any path and verifies the Standard Webhooks
 * headers (webhook-id, webhook-timestamp, webhook-signature) when `secret` is given, independently
 * of the gateway's signer (node:crypto). A bad signature or a stale timestamp is answered 401
 * before the script is used, so any recorded status other than 401 means the signature held.
 * Success: 200 `{"ok":true}`.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { startFakeServer, type FakeServer, type FakeServerOptions } from './fake-server.js';

export interface FakeCallbackOptions extends FakeServerOptions {
  /** `whsec_<base64>`; when absent, signatures are not checked. */
  secret?: string;
  /** Refuse timestamps further than this from the fake's clock; null disables. Default 300. */
  toleranceSec?: number | null;
}

export type SignatureVerdict = 'ok' | 'missing_headers' | 'stale_timestamp' | 'bad_signature';

/** Standard Webhooks verification (spec §Verifying), written apart from src/ to cross-check it. */
export function verifyStandardWebhook(
  secret: string,
  headers: Record<string, string | undefined>,
  rawBody: string,
  { nowSec = Math.floor(Date.now() / 1000), toleranceSec = 300 as number | null } = {},
): SignatureVerdict {
  const id = headers['webhook-id'];
  const ts = headers['webhook-timestamp'];
  const sigs = headers['webhook-signature'];
  if (!id || !ts || !sigs) return 'missing_headers';
  const tsNum = Number(ts);
  if (!/^\d+$/.test(ts) || (toleranceSec !== null && Math.abs(nowSec - tsNum) > toleranceSec)) return 'stale_timestamp';
  const key = Buffer.from(secret.startsWith('whsec_') ? secret.slice(6) : secret, 'base64');
  const expected = createHmac('sha256', key).update(`${id}.${ts}.${rawBody}`).digest();
  for (const entry of sigs.split(' ')) {
    const [version, b64] = entry.split(',', 2);
    if (version !== 'v1' || !b64) continue;
    const got = Buffer.from(b64, 'base64');
    if (got.length === expected.length && timingSafeEqual(got, expected)) return 'ok';
  }
  return 'bad_signature';
}

export function createFakeCallbackReceiver(options: FakeCallbackOptions = {}): Promise<FakeServer> {
  const { secret, toleranceSec = 300 } = options;
  return startFakeServer(
    {
      routes(app, handle) {
        app.post('*', (c) =>
          handle(
            c,
            () => ({ status: 200, body: { ok: true } }),
            (req) => {
              if (secret === undefined) return undefined;
              const verdict = verifyStandardWebhook(secret, req.headers, req.rawBody, { toleranceSec });
              return verdict === 'ok' ? undefined : { status: 401, body: { error: verdict } };
            },
          ),
        );
      },
    },
    options,
  );
}
