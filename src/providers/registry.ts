import { normalizeApi } from './api/normalize.js';
import { sendApi } from './api/send.js';
import { verifyApi } from './api/verify.js';
import type { NormalizeOptions } from './helpers.js';
import { normalizeTelegram } from './telegram/normalize.js';
import { sendTelegram } from './telegram/send.js';
import { verifyTelegram } from './telegram/verify.js';
import type {
  MessengerConfig,
  NormalizeResult,
  OutboundMessage,
  ProviderName,
  SendContext,
  SendResult,
  VerifyInput,
  VerifyResult,
} from './types.js';
import { normalizeWhatsAppBusiness } from './whatsapp-business/normalize.js';
import { sendWhatsAppBusiness } from './whatsapp-business/send.js';
import { verifyWhatsAppBusiness } from './whatsapp-business/verify.js';
import { normalizeWhatsApp } from './whatsapp/normalize.js';
import { sendWhatsApp } from './whatsapp/send.js';
import { verifyWhatsApp } from './whatsapp/verify.js';

/** The provider contract (DESIGN.md §5). Adding a messenger = a folder + a line below. */
export interface Provider<C extends MessengerConfig = MessengerConfig> {
  /** Synchronous when it can be (a synchronous MacEngine); callers handle both. */
  verify(input: VerifyInput, cfg: C): VerifyResult | Promise<VerifyResult>;
  normalize(payload: unknown, opts?: NormalizeOptions): NormalizeResult;
  send(cfg: C, msg: OutboundMessage, ctx: SendContext): Promise<SendResult>;
}

type ConfigOf<P extends ProviderName> = Extract<MessengerConfig, { provider: P }>;

export const providers: { [P in ProviderName]: Provider<ConfigOf<P>> } = {
  whatsapp_business: { verify: verifyWhatsAppBusiness, normalize: normalizeWhatsAppBusiness, send: sendWhatsAppBusiness },
  telegram: { verify: verifyTelegram, normalize: normalizeTelegram, send: sendTelegram },
  whatsapp: { verify: verifyWhatsApp, normalize: normalizeWhatsApp, send: sendWhatsApp },
  api: { verify: verifyApi, normalize: normalizeApi, send: sendApi },
};

export function providerFor(cfg: MessengerConfig): Provider {
  return providers[cfg.provider] as Provider;
}
