import type { MacEngine } from '../lib/crypto.js';

/**
 * The provider contract. A messenger is a folder with `verify.ts`, `normalize.ts`, `send.ts` and
 * `fixtures/`; `registry.ts` lists them. Everything here is Web-standard (no `node:` imports):
 * `verify` and `normalize` are pure and take the clock as an argument.
 */

export const providerNames = ['whatsapp_business', 'whatsapp', 'telegram', 'api'] as const;
export type ProviderName = (typeof providerNames)[number];

/** Secrets and settings a provider needs, as stored on the channel (never returned by the API). */
export type MessengerConfig =
  | {
      provider: 'whatsapp_business';
      phoneNumberId: string;
      accessToken: string;
      appSecret: string;
      verifyToken: string;
    }
  | { provider: 'telegram'; botToken: string; secretToken: string }
  | { provider: 'whatsapp'; baseUrl: string; session: string; apiKey: string; hmacKey: string }
  | { provider: 'api'; callbackUrl: string; secret: string };

/** What verify() sees of the HTTP request. */
export interface VerifyInput {
  headers: Headers;
  /** The raw request body, exactly as received. Signatures are computed over these bytes. */
  rawBody: Uint8Array;
  /** Unix time in milliseconds, for replay windows. */
  now: number;
  /** The MAC primitives to check signatures with; Web Crypto (crypto.subtle) when absent. */
  mac?: MacEngine;
}

export type VerifyResult = { ok: true } | { ok: false; reason: string };

export type MessageKind =
  | 'text'
  | 'image'
  | 'video'
  | 'audio'
  | 'voice'
  | 'document'
  | 'sticker'
  | 'location'
  | 'contacts'
  | 'interactive'
  | 'button'
  | 'reaction'
  | 'callback'
  | 'order'
  | 'system'
  | 'edit'
  | 'unsupported'
  | 'template';

export interface NormalizedContact {
  /** Stable id of the person at the provider; unique per channel. Also where replies go. */
  providerContactId: string;
  name?: string | undefined;
  /** Digits only (E.164 without '+') when the provider tells us a phone number. */
  phone?: string | undefined;
  username?: string | undefined;
}

export type OutboundStatus = 'sent' | 'delivered' | 'read' | 'failed';

export type NormalizedEvent =
  | {
      type: 'message';
      /** WABA only: the change's metadata.phone_number_id, used to route to the right channel. */
      routeKey?: string | undefined;
      providerMessageId: string;
      contact: NormalizedContact;
      kind: MessageKind;
      /** Human-readable text: the body, caption, button title, emoji, location name… */
      text: string | null;
      /** Kind-specific details (media ids, coordinates, reply context…), JSON-serialisable. */
      details?: Record<string, unknown> | undefined;
      /** Provider's timestamp in ms. */
      sentAt: number;
    }
  | {
      type: 'status';
      routeKey?: string | undefined;
      /** The provider's id of an outbound message we sent. */
      providerMessageId: string;
      status: OutboundStatus;
      errorCode?: string | undefined;
      errorTitle?: string | undefined;
      at: number;
    }
  | {
      type: 'reachability';
      routeKey?: string | undefined;
      contact: NormalizedContact;
      reachable: boolean;
      at: number;
    }
  | {
      /**
       * The contact lives under another provider id from now on: a Telegram group became a
       * supergroup (`migrate_to_chat_id` in the old chat, `migrate_from_chat_id` in the new one).
       */
      type: 'moved';
      routeKey?: string | undefined;
      /** The contact as it was known (its old id). */
      contact: NormalizedContact;
      /** Its new provider id. */
      to: string;
      at: number;
    }
  | {
      /** Something valid we do not handle; recorded as ignored, answered 200. */
      type: 'ignored';
      routeKey?: string | undefined;
      reason: string;
      /** The provider's id of what was ignored, when it has one: a redelivery records nothing more. */
      dedupeKey?: string | undefined;
    };

export interface NormalizeResult {
  /**
   * A key that identifies the whole delivery for dedupe when the provider has one
   * (Telegram `update_id`, Standard Webhooks `webhook-id`); per-message ids dedupe the rest.
   */
  dedupeKey?: string | undefined;
  events: NormalizedEvent[];
}

/** Thrown by normalize() when the body does not match the provider's schema. → 400. */
export class SchemaError extends Error {
  override readonly name = 'SchemaError';
  constructor(
    /** Dotted path of the field at fault, e.g. `entry.0.changes.0.value.messages.0.id`. */
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** Something an agent (or write-first) wants delivered. */
export type OutboundContent =
  | { text: string }
  | { template: { name: string; language: { code: string }; components?: unknown[] | undefined } };

export interface OutboundMessage {
  /** Our message id (`msg_…`); idempotency key for receivers that support one. */
  messageId: string;
  /** Delivery id (`dl_…`); stable across retries. */
  deliveryId: string;
  conversationId: string;
  agentId: string | null;
  /** Where the message goes: WABA phone digits, Telegram chat id, WAHA digits, api contact id. */
  to: string;
  content: OutboundContent;
  /** Provider message id to quote/reply to, if any. */
  replyToProviderMessageId?: string | undefined;
}

export type SendResult =
  | { ok: true; providerMessageId: string | null; httpStatus: number }
  | {
      ok: false;
      retryable: boolean;
      /** Provider asked us to wait this long (Retry-After / retry_after). */
      retryAfterMs?: number | undefined;
      /** Provider error code (Meta `code`, Telegram `error_code`, `network`, `timeout`, `http_<n>`). */
      code: string;
      message: string;
      httpStatus?: number | undefined;
      /**
       * The recipient lives under a new id now (a Telegram group became a supergroup:
       * `migrate_to_chat_id`). The delivery store moves the message and its contact there and
       * tries once more (PROTOCOLS.md §2.3).
       */
      movedTo?: string | undefined;
    };

export interface SendContext {
  fetch: typeof fetch;
  /** Base URLs from config: GRAPH_API_BASE_URL, TELEGRAM_API_BASE_URL. */
  graphApiBaseUrl: string;
  telegramApiBaseUrl: string;
  /** Unix ms, for Standard Webhooks timestamps. */
  now: number;
  /** Abort the request after this many ms (a timeout is retryable). */
  timeoutMs: number;
  /** MAC primitives for signing (Standard Webhooks); Web Crypto when absent. */
  mac?: MacEngine;
}
