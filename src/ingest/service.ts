import { AppError } from '../errors.js';
import { clip, MAX_DETAILS_DEPTH, pathDeeperThan } from '../providers/helpers.js';
import { providerFor } from '../providers/registry.js';
import { SchemaError, type MessengerConfig, type ProviderName } from '../providers/types.js';
import type { ServiceContext } from '../services.js';
import { watchTable } from '../db/table-watch.js';
import { createGroupCommitter, type GroupCommitter } from './group-commit.js';
import { createIngestStore, type ApplyOutcome, type IngestChannel } from './store.js';

/**
 * Inbound webhooks (DESIGN.md §4): verify the raw bytes, parse, normalize, then one transaction
 * (group-committed with concurrent requests) that stores everything; 200 only after COMMIT.
 */

export interface WebhookChannel extends IngestChannel {
  messenger: MessengerConfig;
  phoneNumberId: string | null;
}

export interface IngestResult extends ApplyOutcome {
  duplicateDelivery: boolean;
}

interface ChannelRow {
  id: string;
  provider: ProviderName;
  messenger: string;
  conversation_type: string;
  chatbot_id: string | null;
  phone_number_id: string | null;
}

/** Strict UTF-8 (invalid bytes are a 400, not U+FFFD); decode() of a whole buffer keeps no state. */
const utf8 = new TextDecoder('utf-8', { fatal: true });

export function createIngestService(ctx: ServiceContext, opts: { committer?: GroupCommitter } = {}) {
  const sqlite = ctx.db.$client;
  const store = createIngestStore(sqlite);
  const committer = opts.committer ?? createGroupCommitter(sqlite, { walSync: ctx.walSync });
  const cols = 'id, provider, messenger, conversation_type, chatbot_id, phone_number_id';
  const byKey = sqlite.prepare(`SELECT ${cols} FROM channels WHERE webhook_key = ? AND deleted_at IS NULL`);
  const byPhone = sqlite.prepare(
    `SELECT ${cols} FROM channels WHERE phone_number_id = ? AND provider = 'whatsapp_business' AND deleted_at IS NULL`,
  );

  // Parsed messenger settings by their stored JSON, parsed once per distinct version (frozen:
  // shared). Emptied together with the channel cache below, whenever channels may have changed.
  const parsed = new Map<string, MessengerConfig>();
  function messengerOf(json: string): MessengerConfig {
    let m = parsed.get(json);
    if (!m) {
      if (parsed.size >= 1024) parsed.clear();
      m = Object.freeze(JSON.parse(json)) as MessengerConfig;
      parsed.set(json, m);
    }
    return m;
  }

  function toChannel(row: ChannelRow | undefined): WebhookChannel | null {
    if (!row) return null;
    return {
      id: row.id,
      provider: row.provider,
      messenger: messengerOf(row.messenger),
      conversationType: row.conversation_type,
      chatbotId: row.chatbot_id,
      phoneNumberId: row.phone_number_id,
    };
  }

  /**
   * Meta posts every number of an app to one URL: a change for another number (`routeKey`) goes to
   * the WABA channel with that number, provided it shares the app secret that verified the request.
   */
  function otherNumber(channel: WebhookChannel, routeKey: string, cache: Map<string, WebhookChannel | null>) {
    if (!cache.has(routeKey)) {
      const other = toChannel(byPhone.get(routeKey) as ChannelRow | undefined);
      const sameApp =
        other?.messenger.provider === 'whatsapp_business' &&
        channel.messenger.provider === 'whatsapp_business' &&
        other.messenger.appSecret === channel.messenger.appSecret;
      cache.set(routeKey, sameApp ? other : null);
    }
    return cache.get(routeKey) ?? null;
  }

  // Channels by webhook key, in memory: every webhook needs its channel first, and a SQLite read
  // per request was a tenth of the ingest path's CPU. The cache is dropped whenever the channels
  // table may have changed (see table-watch.ts): this connection's own writes are seen at once;
  // other processes' commits are checked for once per event-loop turn (that check is itself a
  // read transaction), so a request sees every commit made before its turn began, which is before
  // its bytes were read. Filled only outside transactions, so never with uncommitted rows.
  const channelsWatch = watchTable(sqlite, 'channels');
  const channelCache = new Map<string, WebhookChannel>();
  let seenLocal = -1;
  let seenOther = -1;
  let checkedThisTurn = false;
  const endTurn = () => (checkedThisTurn = false);

  function validateCache(): void {
    const local = channelsWatch.localWrites();
    let other = seenOther;
    if (!checkedThisTurn) {
      checkedThisTurn = true;
      setImmediate(endTurn);
      other = channelsWatch.otherCommits();
    }
    if (local !== seenLocal || other !== seenOther) {
      channelCache.clear();
      parsed.clear(); // a rotated secret leaves memory with the settings it was parsed from
      seenLocal = local;
      seenOther = other;
    }
  }

  return {
    findChannelByKey(key: string): WebhookChannel | null {
      validateCache();
      const hit = channelCache.get(key);
      if (hit) return hit;
      const channel = toChannel(byKey.get(key) as ChannelRow | undefined);
      if (channel && !sqlite.inTransaction) {
        if (channelCache.size >= 1024) channelCache.clear();
        channelCache.set(key, Object.freeze(channel));
      }
      return channel;
    },

    /** Verifies, normalizes and stores one webhook delivery. Throws AppError for 401/400. */
    async receive(channel: WebhookChannel, headers: Headers, rawBody: Uint8Array): Promise<IngestResult> {
      const provider = providerFor(channel.messenger);
      const receivedAt = ctx.clock.now();
      const checked = provider.verify({ headers, rawBody, now: receivedAt, mac: ctx.mac }, channel.messenger);
      const verdict = checked instanceof Promise ? await checked : checked;
      if (!verdict.ok) throw new AppError('invalid_signature', `Signature check failed: ${verdict.reason}`);

      let payload: unknown;
      try {
        payload = JSON.parse(utf8.decode(rawBody));
      } catch {
        throw new AppError('invalid_json', 'Request body is not valid JSON', [{ field: '(body)', message: 'not valid JSON' }]);
      }
      let normalized;
      try {
        normalized = provider.normalize(payload, { receivedAt });
      } catch (err) {
        if (err instanceof SchemaError) throw AppError.validation(err.field, err.message);
        throw err;
      }
      // Refused here, before the transaction: storing it would overflow the stack (see MAX_DETAILS_DEPTH).
      for (const ev of normalized.events) {
        if (ev.type !== 'message' || !ev.details) continue;
        const deep = pathDeeperThan(ev.details, MAX_DETAILS_DEPTH);
        if (deep !== null) {
          throw AppError.validation('(body)', `message ${ev.providerMessageId.slice(0, 100)} carries data nested more than ${MAX_DETAILS_DEPTH} levels deep (at ${clip(deep, 200)})`);
        }
      }

      const result = await committer.submit((): IngestResult => {
        const now = ctx.clock.now();
        const out: IngestResult = { stored: 0, duplicates: 0, statuses: 0, ignored: 0, queued: 0, outbox: 0, duplicateDelivery: false };
        if (normalized.dedupeKey && !store.claimDedupeKey(channel.id, normalized.dedupeKey, now)) {
          out.duplicateDelivery = true;
          return out;
        }
        let routes: Map<string, WebhookChannel | null> | undefined; // made only for another number's events
        for (const ev of normalized.events) {
          const { routeKey } = ev;
          const own = channel.provider !== 'whatsapp_business' || !routeKey || routeKey === channel.phoneNumberId;
          const target = own ? channel : otherNumber(channel, routeKey, (routes ??= new Map()));
          if (!target) {
            store.recordIgnored(channel.id, `no channel for phone number ${routeKey}`, now);
            out.ignored++;
            continue;
          }
          store.apply(target, ev, now, out);
        }
        return out;
      });
      if (result.outbox > 0) ctx.notifyOutbox();
      return result;
    },

    flush: () => committer.flush(),
  };
}

export type IngestService = ReturnType<typeof createIngestService>;
