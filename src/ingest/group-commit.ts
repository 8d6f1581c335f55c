import type Database from 'better-sqlite3';

/**
 * Group commit: work submitted while the event loop is busy runs together in one transaction at
 * the next turn, so one fsync covers many webhooks. Each item runs inside its own savepoint, so
 * one item's failure rolls back only that item. A promise resolves only after the COMMIT.
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
}

export function createGroupCommitter(sqlite: Database.Database, { maxBatch = 512 } = {}): GroupCommitter {
  let queue: Pending[] = [];
  let scheduled = false;
  let idle: Promise<void> = Promise.resolve();
  let markIdle: () => void = () => {};

  const runBatch = sqlite.transaction((batch: Pending[]) => {
    const results: Array<{ ok: true; value: unknown } | { ok: false; error: unknown }> = [];
    for (const item of batch) {
      sqlite.exec('SAVEPOINT item');
      try {
        const value = item.work();
        sqlite.exec('RELEASE item');
        results.push({ ok: true, value });
      } catch (error) {
        sqlite.exec('ROLLBACK TO item');
        sqlite.exec('RELEASE item');
        results.push({ ok: false, error });
      }
    }
    return results;
  });

  function flushNow(): void {
    scheduled = false;
    while (queue.length > 0) {
      const batch = queue.length > maxBatch ? queue.splice(0, maxBatch) : queue;
      if (batch === queue) queue = [];
      let results: ReturnType<typeof runBatch>;
      try {
        results = runBatch.immediate(batch);
      } catch (error) {
        // The COMMIT itself failed (disk full, I/O error): nothing in the batch is acknowledged.
        for (const item of batch) item.reject(error);
        continue;
      }
      results.forEach((r, i) => (r.ok ? batch[i]!.resolve(r.value) : batch[i]!.reject(r.error)));
    }
    markIdle();
  }

  return {
    submit<T>(work: () => T): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        queue.push({ work, resolve: resolve as (v: unknown) => void, reject });
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
