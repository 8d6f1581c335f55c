import type Database from 'better-sqlite3';
import type { WalSync } from '../db/wal-sync.js';

/**
 * Group commit: work submitted while the event loop is busy runs together in one transaction at
 * the next turn, so one fsync covers many webhooks. One item's failure rolls back only that item
 * (see runBatch). A promise resolves only once its transaction is committed and on disk.
 *
 * With a `walSync` (a WAL-mode database file, see src/db/wal-sync.ts) the fsync leaves the event
 * loop: a batch commits with `synchronous = NORMAL` (into the WAL, not yet synced) and one
 * `fdatasync` of the WAL on libuv's threadpool makes it durable; its items are answered when that
 * sync returns. While a sync is in flight nothing else commits: what is submitted meanwhile waits
 * and goes in the next batch, right after it. So there is one commit per sync, as with a
 * synchronous commit, but the event loop parses, verifies and normalizes the next requests during
 * the sync instead of blocking in it. Other writes on the connection keep its own setting.
 */
export interface GroupCommitter {
  submit<T>(work: () => T): Promise<T>;
  /** Waits until everything submitted so far is committed and durable. */
  flush(): Promise<void>;
  /**
   * Resolves once everything already committed through this committer is on disk (at once when
   * nothing waits for a sync). Code that acts outside the database on what it reads (the outbox
   * relay) waits for this first, so it never hands over rows a power cut could still take back.
   */
  whenDurable(): Promise<void>;
  /** Waits for everything submitted, then releases the WAL descriptor. */
  close(): Promise<void>;
}

interface Pending {
  work: () => unknown;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
  /** What work() returned or threw in the transaction that committed (set by runBatch). */
  ok: boolean;
  outcome: unknown;
}

export interface GroupCommitOptions {
  maxBatch?: number;
  /** Sync the WAL off the event loop (see above); null: every batch commits with the connection's own setting. */
  walSync?: WalSync | null;
}

export function createGroupCommitter(sqlite: Database.Database, { maxBatch = 512, walSync = null }: GroupCommitOptions = {}): GroupCommitter {
  let queue: Pending[] = [];
  /** A flushNow is scheduled (setImmediate). */
  let scheduled = false;
  /** A WAL sync is in flight; `synced` settles when it returns. */
  let syncing = false;
  let synced: Promise<void> = Promise.resolve();
  /** Something is queued, scheduled or syncing; `idle` settles when none is. */
  let busy = false;
  let idle: Promise<void> = Promise.resolve();
  let markIdle: () => void = () => {};

  // Deferring needs a connection that would otherwise sync at every commit (FULL or EXTRA).
  const durableLevel = sqlite.pragma('synchronous', { simple: true }) as number;
  const deferSync = walSync !== null && durableLevel >= 2;
  const relaxSync = sqlite.prepare('PRAGMA synchronous = NORMAL');
  const restoreSync = sqlite.prepare(`PRAGMA synchronous = ${durableLevel}`);

  const savepoint = sqlite.prepare('SAVEPOINT item');
  const release = sqlite.prepare('RELEASE item');
  const rollbackTo = sqlite.prepare('ROLLBACK TO item');

  /**
   * Each item in its own savepoint: a failing item rolls back alone. Savepoints are not free
   * (every page an item touches is first copied to the statement journal), so this is the
   * fallback, not the usual way: see runBatch.
   */
  const runIsolated = sqlite.transaction((batch: Pending[]) => {
    for (const item of batch) {
      savepoint.run();
      try {
        item.outcome = item.work();
        item.ok = true;
        release.run();
      } catch (error) {
        rollbackTo.run();
        release.run();
        item.outcome = error;
        item.ok = false;
      }
    }
  });

  class ItemFailed extends Error {}
  /** The usual case: no item fails, so the batch runs without savepoints. */
  const runTogether = sqlite.transaction((batch: Pending[]) => {
    for (const item of batch) {
      try {
        item.outcome = item.work();
        item.ok = true;
      } catch {
        throw new ItemFailed();
      }
    }
  });

  /**
   * Optimistic: all items in one plain transaction. If any item throws, that whole transaction
   * rolls back (the thrown error leaves runTogether) and the batch runs again, item by item in
   * savepoints, so the others still commit. Work functions only read and write the database, so
   * running them twice is safe; the first run leaves nothing behind.
   */
  function runBatch(batch: Pending[]): void {
    try {
      runTogether.immediate(batch);
    } catch (error) {
      if (!(error instanceof ItemFailed)) throw error; // BEGIN or COMMIT failed: the caller rejects all
      runIsolated.immediate(batch);
    }
  }

  function settle(item: Pending): void {
    if (item.ok) item.resolve(item.outcome);
    else item.reject(item.outcome);
  }

  function schedule(): void {
    if (!busy) {
      busy = true;
      idle = new Promise<void>((r) => (markIdle = r));
    }
    if (scheduled) return;
    scheduled = true;
    setImmediate(flushNow);
  }

  function maybeIdle(): void {
    if (busy && !scheduled && !syncing && queue.length === 0) {
      busy = false;
      markIdle();
    }
  }

  /** Commits one batch; false when the COMMIT itself failed (then every item is rejected). */
  function commit(batch: Pending[]): boolean {
    try {
      if (!deferSync) {
        runBatch(batch);
        return true;
      }
      relaxSync.run();
      try {
        runBatch(batch);
      } finally {
        restoreSync.run();
      }
      return true;
    } catch (error) {
      // The COMMIT itself failed (disk full, I/O error): nothing in the batch is acknowledged.
      for (const item of batch) item.reject(error);
      return false;
    }
  }

  function flushNow(): void {
    scheduled = false;
    if (syncing) return; // the sync's callback schedules what waits
    const toSync: Pending[] = [];
    while (queue.length > 0) {
      const batch = queue.length > maxBatch ? queue.splice(0, maxBatch) : queue;
      if (batch === queue) queue = [];
      if (!commit(batch)) continue;
      for (const item of batch) {
        // Without deferral the COMMIT synced. A rolled-back item wrote nothing: nothing to wait for.
        if (deferSync && item.ok) toSync.push(item);
        else settle(item);
      }
    }
    if (toSync.length > 0) startSync(toSync);
    else maybeIdle();
  }

  function startSync(items: Pending[]): void {
    syncing = true;
    let markSynced: () => void = () => {};
    synced = new Promise<void>((r) => (markSynced = r));
    walSync!.sync((err) => {
      syncing = false;
      // A failed sync leaves the batch committed but perhaps not on disk. It is not acknowledged,
      // so the sender retries, and the retry is a duplicate, answered once a later sync succeeds.
      for (const item of items) {
        if (err) item.reject(err);
        else settle(item);
      }
      markSynced();
      if (queue.length > 0) schedule();
      else maybeIdle();
    });
  }

  return {
    submit<T>(work: () => T): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        queue.push({ work, resolve: resolve as (v: unknown) => void, reject, ok: false, outcome: undefined });
        if (!syncing) schedule(); // else the sync's callback schedules it (busy stays true meanwhile)
      });
    },
    flush() {
      return busy ? idle : Promise.resolve();
    },
    whenDurable() {
      // A batch commits only while no sync is in flight, and starts one at once: whatever is
      // committed and not yet durable is covered by the sync in flight.
      return syncing ? synced : Promise.resolve();
    },
    async close() {
      while (busy) await idle;
      walSync?.close();
    },
  };
}
