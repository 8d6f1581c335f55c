import { copyFileSync, existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SAFETY_NET_AUTOCHECKPOINT, startCheckpointer, type Checkpointer } from '../src/db/checkpointer.js';
import { tempDataDir } from './harness.js';

let dir: string;
let file: string;
let db: Database.Database;
let cp: Checkpointer | null = null;
beforeEach(() => {
  dir = tempDataDir();
  file = path.join(dir, 'ckpt.sqlite');
  db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)');
});
afterEach(async () => {
  await cp?.close();
  cp = null;
  if (db.open) db.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Rows as the database file alone has them: a copy of the file without its WAL (-1 if torn mid-copy). */
function rowsInDatabaseFile(): number {
  const copy = path.join(dir, `copy-${Math.random().toString(36).slice(2)}.sqlite`);
  copyFileSync(file, copy);
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

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

function writeBatches(n: number, rows: number): void {
  const ins = db.prepare('INSERT INTO t (v) VALUES (?)');
  const batch = db.transaction((k: number) => {
    for (let i = 0; i < rows; i++) ins.run(`row ${k}-${i} ${'x'.repeat(100)}`);
  });
  for (let k = 0; k < n; k++) batch(k);
}

describe('WAL checkpointer thread', () => {
  it('copies committed pages into the database file without the writer checkpointing', async () => {
    cp = startCheckpointer(db);
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(SAFETY_NET_AUTOCHECKPOINT);
    db.pragma('wal_autocheckpoint = 0'); // prove it is the worker's doing: the writer never checkpoints here
    writeBatches(50, 100);
    expect(rowsInDatabaseFile()).toBeLessThan(5000);
    await until(() => rowsInDatabaseFile() === 5000);
    await until(() => cp!.stats().framesCopied > 0);
    expect(cp.stats().errors).toBe(0);
  });

  it('keeps up while the writer keeps writing: the WAL restarts instead of growing', async () => {
    cp = startCheckpointer(db, { idleIntervalMs: 5 });
    db.pragma('wal_autocheckpoint = 0'); // only the worker checkpoints
    for (let round = 0; round < 20; round++) {
      writeBatches(10, 50);
      await new Promise((r) => setTimeout(r, 15));
    }
    await until(() => rowsInDatabaseFile() === 20 * 10 * 50);
    // After a full checkpoint the next write starts the WAL over: few frames in it, not thousands.
    writeBatches(1, 1);
    const { log } = (db.pragma('wal_checkpoint(PASSIVE)') as Array<{ log: number }>)[0]!;
    expect(log).toBeLessThan(50);
  });

  it('stops on close; the last connection to close then removes the WAL as usual', async () => {
    cp = startCheckpointer(db);
    writeBatches(5, 10);
    await cp.close();
    await cp.close(); // twice is harmless
    db.close();
    expect(existsSync(`${file}-wal`)).toBe(false);
    const again = new Database(file);
    expect(again.prepare('SELECT count(*) FROM t').pluck().get()).toBe(50);
    again.close();
  });

  it('refuses an in-memory database', () => {
    const mem = new Database(':memory:');
    expect(() => startCheckpointer(mem)).toThrow(/in-memory/);
    mem.close();
  });
});
