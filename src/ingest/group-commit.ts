import type Database from 'better-sqlite3';

/**
 * Group commit: work submitted while the event loop is busy runs together in one transaction at
 * the next turn, so one fsync covers many webhooks. One item's failure rolls back only that item
 * (see runBatch). A promise resolves only after the COMMIT.
 */
export interface GroupCommitter {
  submit<T>(work: () => T): Promise<T>;
  /** Waits for everything submitted so far to commit. */
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

export function createGroupCommitter(sqlite: Database.Database, { maxBatch = 512 } = {}): GroupCommitter {
  let queue: Pending[] = [];
  let scheduled = false;
  let idle: Promise<void> = Promise.resolve();
  let markIdle: () => void = () => {};

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

  function flushNow(): void {
    scheduled = false;
    while (queue.length > 0) {
      const batch = queue.length > maxBatch ? queue.splice(0, maxBatch) : queue;
      if (batch === queue) queue = [];
      try {
        runBatch(batch);
      } catch (error) {
        // The COMMIT itself failed (disk full, I/O error): nothing in the batch is acknowledged.
        for (const item of batch) item.reject(error);
        continue;
      }
      for (const item of batch) {
        if (item.ok) item.resolve(item.outcome);
        else item.reject(item.outcome);
      }
    }
    markIdle();
  }

  return {
    submit<T>(work: () => T): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        queue.push({ work, resolve: resolve as (v: unknown) => void, reject, ok: false, outcome: undefined });
        if (!scheduled) {
          scheduled = true;
          idle = new Promise<void>((r) => (markIdle = r));
          setImmediate(flushNow);
        }
      });
    },
    flush() {
      return scheduled ? idle : Promise.resolve();
    },
  };
}
