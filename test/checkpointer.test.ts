import { copyFileSync, existsSync, rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { SAFETY_NET_AUTOCHECKPOINT, startCheckpointer, type Checkpointer } from '../src/db/checkpointer.js';
import { useTempSqliteFile } from './harness.js';
import { waitFor } from './outbound-helpers.js';

const sqlite = useTempSqliteFile('ckpt.sqlite', 'PRAGMA synchronous = FULL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
let cp: Checkpointer | null = null;
// Registered after the file's own hook, so it runs first: the thread stops before the file goes.
afterEach(async () => {
  await cp?.close();
  cp = null;
});

/** Rows as the database file alone has them: a copy of the file without its WAL (-1 if torn mid-copy). */
function rowsInDatabaseFile(): number {
  const copy = `${sqlite.file}.copy-${Math.random().toString(36).slice(2)}`;
  copyFileSync(sqlite.file, copy);
  try {
    const direct = new Database(copy, { readonly: true });
    try {
      return direct.prepare('SELECT count(*) FROM t').pluck().get() as number;
    } finally {
      direct.close();
    }
  } catch {
    return -1;
  } finally {
    rmSync(copy, { force: true });
  }
}

function writeBatches(n: number, rows: number): void {
  const ins = sqlite.db.prepare('INSERT INTO t (v) VALUES (?)');
  const batch = sqlite.db.transaction((k: number) => {
    for (let i = 0; i < rows; i++) ins.run(`row ${k}-${i} ${'x'.repeat(100)}`);
  });
  for (let k = 0; k < n; k++) batch(k);
}

describe('WAL checkpointer thread', () => {
  it('copies committed pages into the database file without the writer checkpointing', async () => {
    cp = startCheckpointer(sqlite.db);
    expect(sqlite.db.pragma('wal_autocheckpoint', { simple: true })).toBe(SAFETY_NET_AUTOCHECKPOINT);
    sqlite.db.pragma('wal_autocheckpoint = 0'); // prove it is the worker's doing: the writer never checkpoints here
    writeBatches(50, 100);
    expect(rowsInDatabaseFile()).toBeLessThan(5000);
    await waitFor('all 5000 rows in the database file', () => rowsInDatabaseFile() === 5000, 5000);
    await waitFor('the worker to report copied frames', () => cp!.stats().framesCopied > 0, 5000);
    expect(cp.stats().errors).toBe(0);
  });

  it('keeps up while the writer keeps writing: the WAL restarts instead of growing', async () => {
    cp = startCheckpointer(sqlite.db, { idleIntervalMs: 5 });
    sqlite.db.pragma('wal_autocheckpoint = 0'); // only the worker checkpoints
    for (let round = 0; round < 20; round++) {
      writeBatches(10, 50);
      await new Promise((r) => setTimeout(r, 15));
    }
    await waitFor('all rows in the database file', () => rowsInDatabaseFile() === 20 * 10 * 50, 5000);
    // After a full checkpoint the next write starts the WAL over: few frames in it, not thousands.
    writeBatches(1, 1);
    const { log } = (sqlite.db.pragma('wal_checkpoint(PASSIVE)') as Array<{ log: number }>)[0]!;
    expect(log).toBeLessThan(50);
  });

  it('stops on close; the last connection to close then removes the WAL as usual', async () => {
    cp = startCheckpointer(sqlite.db);
    writeBatches(5, 10);
    await cp.close();
    await cp.close(); // twice is harmless
    sqlite.db.close();
    expect(existsSync(`${sqlite.file}-wal`)).toBe(false);
    const again = new Database(sqlite.file);
    expect(again.prepare('SELECT count(*) FROM t').pluck().get()).toBe(50);
    again.close();
  });

  it('refuses an in-memory database', () => {
    const mem = new Database(':memory:');
    expect(() => startCheckpointer(mem)).toThrow(/in-memory/);
    mem.close();
  });
});
