import { and, asc, desc, eq, gt, gte, isNull, lt, lte, ne, or, sql, type SQL } from 'drizzle-orm';
import { parseDuration } from '../config.js';
import { deliveries, deliveryAttempts, messages, type DeliveryStatus } from '../db/schema.js';
import { AppError } from '../errors.js';
import { addToOutbox } from '../queue/outbox.js';
import type { ServiceContext } from '../services.js';
import { decodeCursor, toPage } from '../lib/cursor.js';

/**
 * Ops over deliveries: list and inspect (with the attempt log), and replay one or many by filter.
 * A replay keeps the delivery id (the idempotency key: `webhook-id` for api channels), starts a
 * new attempt cycle (attempts back to 0, `replays` + 1) and queues its first attempt through the
 * outbox; a `sent` delivery is never replayed.
 */

export const replayableStatuses = ['dead', 'retrying', 'pending'] as const satisfies readonly DeliveryStatus[];
export type ReplayableStatus = (typeof replayableStatuses)[number];

export interface DeliveryFilter {
  status?: DeliveryStatus | undefined;
  channelId?: string | undefined;
  /** Creation time bounds: unix ms, an ISO-8601 date, or a duration before now (`2h`, `30m`). */
  since?: string | number | undefined;
  until?: string | number | undefined;
  /** Exact `lastErrorCode` (Meta code, Telegram error_code, `http_503`, `network`…). */
  errorCode?: string | undefined;
}

export interface ReplayManyOptions {
  dryRun?: boolean | undefined;
  /** At most this many are replayed (oldest first). */
  limit?: number | undefined;
  /** Rows per transaction. */
  batchSize?: number | undefined;
  onProgress?: ((done: number, total: number) => void) | undefined;
}

export const REPLAY_LIMIT_DEFAULT = 1000;

/** `2h` / ISO date / unix ms → unix ms; `field` names the input at fault. */
export function parseTimeBound(value: string | number, now: number, field: string): number {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value) || value < 0) throw AppError.validation(field, 'must be unix milliseconds');
    return value;
  }
  const v = value.trim();
  if (/^\d+$/.test(v)) return parseTimeBound(Number(v), now, field);
  const ago = parseDuration(v);
  // Reaching back before 1970 means "from the start".
  if (ago !== null) return Math.max(0, now - ago);
  const day = /^(\d{4})-(\d{2})-(\d{2})/.exec(v);
  if (day) {
    const at = Date.parse(v);
    // Date.parse rolls an impossible day forward (2024-02-30 is 1 March): refused instead, so a
    // replay covers the window that was typed.
    const [, y, m, d] = day.map(Number) as [number, number, number, number];
    const probe = new Date(Date.UTC(y, m - 1, d));
    if (!Number.isNaN(at) && probe.getUTCFullYear() === y && probe.getUTCMonth() === m - 1 && probe.getUTCDate() === d) return at;
  }
  throw AppError.validation(field, 'must be unix ms, an ISO-8601 date, or a duration before now like 2h or 30m');
}

type DeliveryRow = typeof deliveries.$inferSelect;

export function deliveryView(r: DeliveryRow & { conversationId: string; messageStatus: string }) {
  return {
    id: r.id,
    messageId: r.messageId,
    conversationId: r.conversationId,
    channelId: r.channelId,
    status: r.status,
    /** Attempts in the current cycle. */
    attemptCount: r.attempts,
    replays: r.replays,
    nextAttemptAt: r.nextAttemptAt,
    lastError: r.lastError,
    lastErrorCode: r.lastErrorCode,
    lastHttpStatus: r.lastHttpStatus,
    messageStatus: r.messageStatus,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    sentAt: r.sentAt,
    replayedAt: r.replayedAt,
    /** Set while an attempt waits on the provider: until when its worker holds it (no replay till then). */
    sendingUntil: r.sendingUntil,
    /** The delivery to the same recipient that goes first (this one waits until it is sent or dead). */
    heldBehind: r.heldBehind,
  };
}

export type DeliveryView = ReturnType<typeof deliveryView>;

export function createDeliveryOps(ctx: ServiceContext) {
  const { db, clock, log } = ctx;

  const row = { ...getColumns(), conversationId: messages.conversationId, messageStatus: messages.status };
  function getColumns() {
    return {
      id: deliveries.id,
      messageId: deliveries.messageId,
      channelId: deliveries.channelId,
      status: deliveries.status,
      attempts: deliveries.attempts,
      nextAttemptAt: deliveries.nextAttemptAt,
      lastError: deliveries.lastError,
      lastErrorCode: deliveries.lastErrorCode,
      lastHttpStatus: deliveries.lastHttpStatus,
      enqueuedAt: deliveries.enqueuedAt,
      replays: deliveries.replays,
      replayedAt: deliveries.replayedAt,
      createdAt: deliveries.createdAt,
      updatedAt: deliveries.updatedAt,
      sentAt: deliveries.sentAt,
      sendingUntil: deliveries.sendingUntil,
      recipient: deliveries.recipient,
      heldBehind: deliveries.heldBehind,
    };
  }

  function conditions(f: DeliveryFilter, now: number): Array<SQL | undefined> {
    return [
      f.status ? eq(deliveries.status, f.status) : undefined,
      f.channelId ? eq(deliveries.channelId, f.channelId) : undefined,
      f.since !== undefined ? gte(deliveries.createdAt, parseTimeBound(f.since, now, 'since')) : undefined,
      f.until !== undefined ? lte(deliveries.createdAt, parseTimeBound(f.until, now, 'until')) : undefined,
      f.errorCode ? eq(deliveries.lastErrorCode, f.errorCode) : undefined,
    ];
  }

  function getOne(id: string) {
    const r = db
      .select(row)
      .from(deliveries)
      .innerJoin(messages, eq(messages.id, deliveries.messageId))
      .where(eq(deliveries.id, id))
      .get();
    if (!r) throw AppError.notFound(`Delivery ${id}`);
    return r;
  }

  /** Resets one delivery (not sent) to a new cycle and queues its first attempt; inside the caller's transaction. */
  function replayIn(tx: Parameters<Parameters<typeof db.transaction>[0]>[0], id: string, now: number): boolean {
    const updated = tx
      .update(deliveries)
      .set({
        status: 'pending',
        attempts: 0,
        replays: sql`${deliveries.replays} + 1`,
        replayedAt: now,
        nextAttemptAt: now,
        enqueuedAt: now,
        // Asked for by ops: it goes now, not after the delivery it waited for.
        heldBehind: null,
        updatedAt: now,
      })
      // Not while an attempt waits on the provider: it may yet succeed, and this would send again.
      .where(and(eq(deliveries.id, id), ne(deliveries.status, 'sent'), or(isNull(deliveries.sendingUntil), lte(deliveries.sendingUntil, now))))
      .returning({ replays: deliveries.replays, messageId: deliveries.messageId })
      .get();
    if (!updated) return false;
    // A replay is a new send: a `failed` message goes back to pending. One the provider had taken
    // and then reported failed (a `failed` status, see ingest/store.ts) lets go of that provider id,
    // so the new send's id is the one stored, and its statuses find it.
    tx.update(messages)
      .set({ status: 'pending', errorCode: null, providerMessageId: null, updatedAt: now })
      .where(and(eq(messages.id, updated.messageId), eq(messages.status, 'failed')))
      .run();
    addToOutbox(tx, now, [{ kind: 'delivery', payload: { deliveryId: id, cycle: updated.replays, attempt: 1, runAt: now } }]);
    return true;
  }

  function count(filter: DeliveryFilter): number {
    return (
      db
        .select({ n: sql<number>`count(*)` })
        .from(deliveries)
        .where(and(...conditions(filter, clock.now())))
        .get()?.n ?? 0
    );
  }

  return {
    /** Newest first; `nextCursor` pages on. */
    listDeliveries(filter: DeliveryFilter & { limit: number; cursor?: string | undefined }) {
      const where = conditions(filter, clock.now());
      if (filter.cursor) {
        const c = decodeCursor(filter.cursor);
        where.push(or(lt(deliveries.createdAt, c.createdAt), and(eq(deliveries.createdAt, c.createdAt), lt(deliveries.id, c.id))));
      }
      const rows = db
        .select(row)
        .from(deliveries)
        .innerJoin(messages, eq(messages.id, deliveries.messageId))
        .where(and(...where))
        .orderBy(desc(deliveries.createdAt), desc(deliveries.id))
        .limit(filter.limit + 1)
        .all();
      return toPage(rows, filter.limit, deliveryView);
    },

    /** One delivery with its attempt log (every cycle, oldest first). */
    getDelivery(id: string) {
      const d = getOne(id);
      const attempts = db
        .select({
          cycle: deliveryAttempts.cycle,
          attempt: deliveryAttempts.attempt,
          at: deliveryAttempts.at,
          outcome: deliveryAttempts.outcome,
          httpStatus: deliveryAttempts.httpStatus,
          providerCode: deliveryAttempts.providerCode,
          error: deliveryAttempts.error,
          durationMs: deliveryAttempts.durationMs,
        })
        .from(deliveryAttempts)
        .where(eq(deliveryAttempts.deliveryId, id))
        .orderBy(asc(deliveryAttempts.id))
        .all();
      return { ...deliveryView(d), attempts };
    },

    /** Replays one delivery; 409 when it was sent. */
    replayDelivery(id: string) {
      const d = getOne(id);
      if (d.status === 'sent') throw new AppError('conflict', `Delivery ${id} was sent; a sent delivery is never replayed`);
      const now = clock.now();
      const ok = db.transaction((tx) => replayIn(tx, id, now), { behavior: 'immediate' });
      if (!ok) {
        const current = getOne(id);
        if (current.sendingUntil !== null && current.sendingUntil > now) {
          throw new AppError(
            'conflict',
            `Delivery ${id} has an attempt waiting on the provider (until ${new Date(current.sendingUntil).toISOString()}); a replay now could send it twice`,
          );
        }
        throw new AppError('conflict', `Delivery ${id} was sent meanwhile; a sent delivery is never replayed`);
      }
      ctx.notifyOutbox();
      log.info({ deliveryId: id, previousStatus: d.status, replays: d.replays + 1 }, 'delivery replayed');
      return deliveryView(getOne(id));
    },

    countDeliveries: count,

    /**
     * Replays every delivery matching `filter` (status defaults to `dead`; `sent` is refused),
     * oldest first, up to `limit`, in batches. `matched` counts all that match; a dry run replays none.
     */
    replayDeliveries(filter: DeliveryFilter, opts: ReplayManyOptions = {}): { matched: number; replayed: number; dryRun: boolean } {
      const status = filter.status ?? 'dead';
      if (status === 'sent') throw AppError.validation('filter.status', 'sent deliveries are never replayed');
      const now = clock.now();
      // Resolve relative bounds once, so batches agree on them.
      const f: DeliveryFilter = {
        ...filter,
        status,
        since: filter.since === undefined ? undefined : parseTimeBound(filter.since, now, 'filter.since'),
        until: filter.until === undefined ? undefined : parseTimeBound(filter.until, now, 'filter.until'),
      };
      const matched = count(f);
      const dryRun = opts.dryRun ?? false;
      if (dryRun || matched === 0) return { matched, replayed: 0, dryRun };
      const limit = Math.min(opts.limit ?? REPLAY_LIMIT_DEFAULT, matched);
      const batchSize = opts.batchSize ?? 200;
      let replayed = 0;
      let cursor: { createdAt: number; id: string } | null = null;
      while (replayed < limit) {
        const after: SQL | undefined = cursor
          ? or(gt(deliveries.createdAt, cursor.createdAt), and(eq(deliveries.createdAt, cursor.createdAt), gt(deliveries.id, cursor.id)))
          : undefined;
        const ids = db
          .select({ id: deliveries.id, createdAt: deliveries.createdAt })
          .from(deliveries)
          .where(and(...conditions(f, now), after))
          .orderBy(asc(deliveries.createdAt), asc(deliveries.id))
          .limit(Math.min(batchSize, limit - replayed))
          .all();
        if (ids.length === 0) break;
        const at = clock.now();
        replayed += db.transaction((tx) => ids.filter((r) => replayIn(tx, r.id, at)).length, { behavior: 'immediate' });
        cursor = ids.at(-1)!;
        ctx.notifyOutbox();
        opts.onProgress?.(replayed, limit);
      }
      log.info({ filter: f, matched, replayed }, 'deliveries replayed');
      return { matched, replayed, dryRun };
    },
  };
}
