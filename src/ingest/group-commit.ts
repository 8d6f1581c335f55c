import type Database from 'better-sqlite3';
import { relaxedSync } from '../db/relaxed-sync.js';
import type { WalSync } from '../db/wal-sync.js';

/**
 * Group commit: work submitted while the event loop is busy runs together in one transaction at
 * the next turn, so one fsync covers many webhooks. One item's failure rolls back only that item
 * (see runBatch). A promise settles only once its transaction is committed and on disk.
 *
 * With a `walSync` (a WAL-mode database file, see src/db/wal-sync.ts) the fsync leaves the event
 * loop: a batch commits with `synchronous = NORMAL` (into the WAL, not yet synced) and one
 * `fdatasync` of the WAL on libuv's threadpool makes it durable; its items are answered when that
 * sync returns. While a sync is in flight nothing else commits: what is submitted meanwhile waits
 * and goes in the next batch, right after it. So there is one commit per sync, as with a
 * synchronous commit, but the event loop parses, verifies and normalizes the next requests during
 * the sync instead of blocking in it. Other writes on the connection keep its own setting.
 *
 * Committed rows are visible (to this connection and to others) before their sync returns. Code
 * that acts outside the database on rows it reads syncs the WAL itself first (the outbox relay).
 */
export interface GroupCommitter {
  submit<T>(work: () => T): Promise<T>;
  /** Waits until everything submitted before the call has settled (committed and on disk, or refused). */
  flush(): Promise<void>;
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
  /** A WAL sync is in flight: nothing commits until it returns. */
  let syncing = false;

  // Deferring needs a connection that would otherwise sync at every commit.
  const relaxed = relaxedSync(sqlite);
  const deferSync = walSync !== null && relaxed.syncsEachCommit;

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
    if (scheduled) return;
    scheduled = true;
    setImmediate(flushNow);
  }

  /** runBatch, with what it threw as a value (null: committed). */
  function tryBatch(batch: Pending[]): unknown {
    try {
      runBatch(batch);
      return null;
    } catch (error) {
      return error;
    }
  }

  /**
   * Commits one batch; false when it did not commit (then every item is rejected). Under deferral
   * a failure to put the connection back to its own setting is not caught here and stops
   * everything: later writers on the connection would no longer sync.
   */
  function commit(batch: Pending[]): boolean {
    const failure = deferSync ? relaxed.run(() => tryBatch(batch)) : tryBatch(batch);
    if (failure === null) return true;
    // The COMMIT itself failed (disk full, I/O error): nothing in the batch is acknowledged.
    for (const item of batch) item.reject(failure);
    return false;
  }

  function flushNow(): void {
    scheduled = false;
    if (syncing) return; // the sync's callback schedules what waits
    // After a failed sync nothing is acknowledged again (wal-sync.ts): refuse the work without
    // committing it, so a refused request stores nothing.
    const failed = deferSync ? walSync!.failure() : null;
    if (failed) {
      const refused = queue;
      queue = [];
      for (const item of refused) item.reject(failed);
      return;
    }
    const toSync: Pending[] = [];
    while (queue.length > 0) {
      const batch = queue.length > maxBatch ? queue.splice(0, maxBatch) : queue;
      if (batch === queue) queue = [];
      if (!commit(batch)) continue;
      // Under deferral every item waits for the sync, refused ones too: a refusal may rest on
      // what an earlier item of the batch wrote, which is only certain once it is on disk.
      if (deferSync) toSync.push(...batch);
      else for (const item of batch) settle(item);
    }
    if (toSync.length > 0) startSync(toSync);
  }

  function startSync(items: Pending[]): void {
    syncing = true;
    walSync!.sync((err) => {
      syncing = false;
      // A failed sync leaves the batch committed but perhaps not on disk: none of it is
      // acknowledged, and WalSync refuses every later sync (see wal-sync.ts), so nothing after
      // it is either.
      for (const item of items) {
        if (err) item.reject(err);
        else settle(item);
      }
      if (queue.length > 0) schedule();
    });
  }

  const nothing = () => undefined;
  return {
    submit<T>(work: () => T): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        queue.push({ work, resolve: resolve as (v: unknown) => void, reject, ok: false, outcome: undefined });
        if (!syncing) schedule(); // else the sync's callback schedules it
      });
    },
    flush() {
      // An empty item behind everything submitted so far: batches commit and sync in order.
      if (queue.length === 0 && !syncing && !scheduled) return Promise.resolve();
      return this.submit(nothing).then(nothing, nothing);
    },
  };
}
