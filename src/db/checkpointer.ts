import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';

/**
 * WAL checkpoints on a worker thread, off the event loop.
 *
 * SQLite's automatic checkpoint runs inside the COMMIT that pushes the WAL past its threshold, on
 * the committing thread: it copies the WAL's pages into the database file and fsyncs both. On the
 * ingest path that was most of a COMMIT's cost (measured: 545 µs per 38-message batch with
 * synchronous=FULL, 201 µs with syncing off). Here a second connection on a worker thread runs
 * PASSIVE checkpoints, which never block the writer or readers, whenever the WAL has frames the
 * database file lacks. Durability is unchanged: a commit is answered only once the WAL holding it
 * is synced (by its COMMIT, or by the group committer's sync, src/ingest/group-commit.ts), and a
 * checkpoint syncs the WAL before it copies any frame into the database file.
 *
 * SQLite restarts the WAL from its start once a checkpoint has copied every frame. Under nonstop
 * writes the worker seldom gets there (new frames land while it copies), so the main connection
 * keeps an automatic checkpoint at a higher threshold as a safety net: it then copies only the few
 * frames the worker has not, and the WAL restarts. That bounds the file (about 32 MiB on the ingest
 * bench) even if the worker stops.
 */
export interface Checkpointer {
  /** Frames copied and rounds run so far (from the worker's last report). */
  stats(): { rounds: number; framesCopied: number; errors: number };
  close(): Promise<void>;
}

export interface CheckpointerOptions {
  /** How often the worker looks when the last round found nothing to copy. */
  idleIntervalMs?: number;
  /** Called when the worker fails; the safety-net threshold keeps working without it. */
  onError?: (err: Error) => void;
}

/** The main connection's own automatic checkpoint threshold while a checkpointer runs (pages). */
export const SAFETY_NET_AUTOCHECKPOINT = 8000;

// CommonJS, run with `eval: true`: needs no loader, so it starts the same under tsx, vitest and
// the compiled build. It opens its own connection; `busy_timeout = 0` skips a round rather than
// waiting when another checkpoint (another process's) holds the checkpoint lock.
const workerSource = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true });
db.pragma('busy_timeout = 0');
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
const stats = { rounds: 0, framesCopied: 0, errors: 0 };
let copiedUpTo = 0;
let timer = null;
let closed = false;
function round() {
  timer = null;
  if (closed) return;
  let again = false;
  const before = stats.framesCopied + stats.errors;
  try {
    const r = checkpoint.get();
    stats.rounds++;
    // log: frames in the WAL; checkpointed: frames of those now in the database file.
    // A smaller count than last time means the WAL restarted in between: all of it is new.
    stats.framesCopied += r.checkpointed >= copiedUpTo ? r.checkpointed - copiedUpTo : r.checkpointed;
    copiedUpTo = r.checkpointed;
    again = r.busy === 0 && r.log > r.checkpointed;
  } catch (err) {
    stats.errors++;
  }
  if (stats.framesCopied + stats.errors !== before) parentPort.postMessage(stats);
  timer = again ? setImmediate(round) : setTimeout(round, workerData.idleIntervalMs);
}
parentPort.on('message', (m) => {
  if (m !== 'close') return;
  closed = true;
  if (timer) { clearTimeout(timer); clearImmediate(timer); }
  db.close();
  parentPort.postMessage('closed');
});
round();
`;

export function startCheckpointer(sqlite: Database.Database, opts: CheckpointerOptions = {}): Checkpointer {
  if (sqlite.memory) throw new Error('startCheckpointer: an in-memory database has no WAL');
  sqlite.pragma(`wal_autocheckpoint = ${SAFETY_NET_AUTOCHECKPOINT}`);
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const worker = new Worker(workerSource, {
    eval: true,
    workerData: { driver, file: sqlite.name, idleIntervalMs: opts.idleIntervalMs ?? 20 },
  });
  worker.unref();
  let stats = { rounds: 0, framesCopied: 0, errors: 0 };
  let exited = false;
  const exit = new Promise<void>((resolve) => worker.once('exit', () => ((exited = true), resolve())));
  worker.on('message', (m: unknown) => {
    if (m && typeof m === 'object') stats = m as typeof stats;
  });
  worker.on('error', (err) => opts.onError?.(err));
  return {
    stats: () => ({ ...stats }),
    async close() {
      if (exited) return;
      const closed = new Promise<void>((resolve) => worker.on('message', (m) => m === 'closed' && resolve()));
      worker.postMessage('close');
      await Promise.race([closed, exit]);
      await worker.terminate();
    },
  };
}
