import { unlinkSync, writeFileSync } from 'node:fs';
import { fdatasync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { createWalSync, type WalSync } from '../src/db/wal-sync.js';
import { createGroupCommitter } from '../src/ingest/group-commit.js';
import { gatedWalSync, useTempSqliteFile } from './harness.js';

const sqlite = useTempSqliteFile('gc.sqlite', 'CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)');

const rows = () => sqlite.db.prepare('SELECT k, v FROM t ORDER BY k').all();

describe('group commit', () => {
  it('commits concurrent submissions in one transaction and resolves each with its value', async () => {
    const gc = createGroupCommitter(sqlite.db);
    const ins = sqlite.db.prepare('INSERT INTO t VALUES (?, ?)');
    const results = await Promise.all(['a', 'b', 'c'].map((k, i) => gc.submit(() => ins.run(k, i).changes)));
    expect(results).toEqual([1, 1, 1]);
    expect(rows()).toEqual([{ k: 'a', v: 0 }, { k: 'b', v: 1 }, { k: 'c', v: 2 }]);
  });

  it('rolls back only the failing item, including the writes it made before failing', async () => {
    const gc = createGroupCommitter(sqlite.db);
    const ins = sqlite.db.prepare('INSERT INTO t VALUES (?, ?)');
    const ok1 = gc.submit(() => ins.run('a', 1));
    const bad = gc.submit(() => {
      ins.run('half-done', 9); // written, then the item fails: must not survive
      ins.run('a', 2); // primary key clash
    });
    const ok2 = gc.submit(() => ins.run('b', 3));
    await expect(ok1).resolves.toBeDefined();
    await expect(bad).rejects.toThrow(/UNIQUE constraint failed/);
    await expect(ok2).resolves.toBeDefined();
    expect(rows()).toEqual([{ k: 'a', v: 1 }, { k: 'b', v: 3 }]);
  });

  it('rejects the whole batch and keeps nothing when the COMMIT itself fails', async () => {
    sqlite.db.exec('CREATE TABLE parent (id INTEGER PRIMARY KEY); CREATE TABLE child (pid INTEGER REFERENCES parent(id))');
    sqlite.db.pragma('foreign_keys = ON');
    const gc = createGroupCommitter(sqlite.db);
    const ins = sqlite.db.prepare('INSERT INTO t VALUES (?, ?)');
    const a = gc.submit(() => ins.run('a', 1));
    const b = gc.submit(() => {
      sqlite.db.pragma('defer_foreign_keys = ON'); // the orphan below is only refused at COMMIT
      sqlite.db.prepare('INSERT INTO child VALUES (42)').run();
    });
    await expect(a).rejects.toThrow(/FOREIGN KEY/);
    await expect(b).rejects.toThrow(/FOREIGN KEY/);
    expect(rows()).toEqual([]);
    expect(sqlite.db.inTransaction).toBe(false);
  });

  it('flush() waits for everything submitted so far', async () => {
    const gc = createGroupCommitter(sqlite.db);
    const ins = sqlite.db.prepare('INSERT INTO t VALUES (?, ?)');
    void gc.submit(() => ins.run('x', 1));
    await gc.flush();
    expect(rows()).toEqual([{ k: 'x', v: 1 }]);
  });
});

const turn = () => new Promise((r) => setImmediate(r));
/** 'pending' when `p` has not settled within a few turns of the event loop. */
const state = async (p: Promise<unknown>) => {
  let s = 'pending';
  p.then(() => (s = 'resolved'), () => (s = 'rejected'));
  for (let i = 0; i < 3; i++) await turn();
  return s;
};

describe('group commit with the WAL synced off the event loop', () => {
  function setUp(opts: { maxBatch?: number } = {}) {
    sqlite.db.pragma('synchronous = FULL');
    const gate = gatedWalSync(createWalSync(sqlite.db)!);
    const gc = createGroupCommitter(sqlite.db, { walSync: gate.sync, ...opts });
    const ins = sqlite.db.prepare('INSERT INTO t VALUES (?, ?)');
    // A second connection sees what is committed, durable or not.
    const other = new Database(sqlite.file, { readonly: true });
    const committed = () => other.prepare('SELECT k FROM t ORDER BY k').pluck().all();
    const level = () => sqlite.db.pragma('synchronous', { simple: true });
    return { gate, gc, ins, other, committed, level };
  }

  it('answers a batch only after its WAL sync returns; batches run at NORMAL, the connection is FULL between them', async () => {
    const { gate, gc, ins, other, committed, level } = setUp();
    const a = gc.submit(() => [ins.run('a', 1).changes, level()]);
    const b = gc.submit(() => ins.run('b', 2).changes);
    await turn();
    expect(committed()).toEqual(['a', 'b']); // committed in one transaction…
    expect(gate.calls()).toBe(1);
    expect(await state(a)).toBe('pending'); // …but not answered before the sync
    expect(level()).toBe(2);
    gate.open();
    await expect(Promise.all([a, b])).resolves.toEqual([[1, 1], 1]);
    const c = gc.submit(() => level());
    await turn();
    gate.open();
    await expect(c).resolves.toBe(1);
    expect(level()).toBe(2);
    other.close();
  });

  it('commits nothing while a sync is in flight; what waits goes in one batch right after it', async () => {
    const { gate, gc, ins, other, committed } = setUp();
    const first = gc.submit(() => ins.run('a', 1));
    await turn();
    const later = ['b', 'c', 'd'].map((k, i) => gc.submit(() => ins.run(k, i)));
    await turn();
    await turn();
    expect(committed()).toEqual(['a']);
    gate.open();
    await first;
    await turn();
    expect(committed()).toEqual(['a', 'b', 'c', 'd']);
    expect(gate.calls()).toBe(2); // one sync for the three that waited
    expect(await state(Promise.all(later))).toBe('pending');
    gate.open();
    await Promise.all(later);
    other.close();
  });

  it('answers a refused item after the sync too: the refusal may rest on an earlier item of the batch', async () => {
    const { gate, gc, ins, other } = setUp();
    const a = gc.submit(() => ins.run('a', 1));
    const clash = gc.submit(() => ins.run('a', 2)); // refused because of `a`, which is not on disk yet
    expect(await state(clash)).toBe('pending');
    gate.open();
    await expect(clash).rejects.toThrow(/UNIQUE constraint failed/);
    await expect(a).resolves.toBeDefined();
    other.close();
  });

  it('splits a long queue into batches of maxBatch and syncs once after all of them', async () => {
    const { gate, gc, ins, other, committed } = setUp({ maxBatch: 2 });
    const all = ['a', 'b', 'c', 'd', 'e'].map((k) => gc.submit(() => ins.run(k, 0).changes));
    await turn();
    expect(committed()).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(gate.calls()).toBe(1);
    gate.open();
    await expect(Promise.all(all)).resolves.toEqual([1, 1, 1, 1, 1]);
    other.close();
  });

  it('rejects a batch whose COMMIT fails without starting a sync, and puts the connection back to FULL', async () => {
    sqlite.db.exec('CREATE TABLE parent (id INTEGER PRIMARY KEY); CREATE TABLE child (pid INTEGER REFERENCES parent(id))');
    sqlite.db.pragma('foreign_keys = ON');
    const { gate, gc, ins, other, committed, level } = setUp();
    const a = gc.submit(() => ins.run('a', 1));
    const b = gc.submit(() => {
      sqlite.db.pragma('defer_foreign_keys = ON'); // refused only at COMMIT
      sqlite.db.prepare('INSERT INTO child VALUES (42)').run();
    });
    await expect(a).rejects.toThrow(/FOREIGN KEY/);
    await expect(b).rejects.toThrow(/FOREIGN KEY/);
    expect(committed()).toEqual([]);
    expect(gate.calls()).toBe(0);
    expect(level()).toBe(2);
    other.close();
  });

  it('rejects the batch of a sync that fails at once (the WAL cannot be opened) and goes on', async () => {
    sqlite.db.pragma('synchronous = FULL');
    const real = createWalSync(sqlite.db)!;
    let failNext = true;
    const walSync: WalSync = {
      sync(done) {
        if (!failNext) return real.sync(done);
        failNext = false;
        done(new Error('ENOENT: no such file or directory')); // called back before sync() returns
      },
      failure: () => real.failure(),
      close: () => real.close(),
    };
    const gc = createGroupCommitter(sqlite.db, { walSync });
    const ins = sqlite.db.prepare('INSERT INTO t VALUES (?, ?)');
    await expect(gc.submit(() => ins.run('a', 1))).rejects.toThrow(/ENOENT/);
    await expect(gc.submit(() => ins.run('b', 1).changes)).resolves.toBe(1);
  });

  it('acknowledges nothing after a failed fdatasync: its batch and every later one are refused', async () => {
    sqlite.db.pragma('synchronous = FULL');
    let syscalls = 0;
    const dyingDisk = ((fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
      syscalls++;
      if (syscalls === 1) fdatasync(fd, cb);
      else setImmediate(() => cb(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' })));
    }) as typeof fdatasync;
    const walSync = createWalSync(sqlite.db, { fdatasync: dyingDisk })!;
    const gc = createGroupCommitter(sqlite.db, { walSync });
    const ins = sqlite.db.prepare('INSERT INTO t VALUES (?, ?)');
    await expect(gc.submit(() => ins.run('a', 1).changes)).resolves.toBe(1);
    expect(walSync.failure()).toBeNull();
    await expect(gc.submit(() => ins.run('b', 1))).rejects.toThrow(/WAL sync failed.*EIO/);
    expect(walSync.failure()?.message).toMatch(/EIO/);
    await expect(gc.submit(() => ins.run('c', 1))).rejects.toThrow(/WAL sync failed.*EIO/);
    expect(syscalls).toBe(2); // the failure is final: no sync is tried again
    // …and what is refused from then on is not even committed (b was, before its sync failed).
    expect(sqlite.db.prepare('SELECT k FROM t ORDER BY k').pluck().all()).toEqual(['a', 'b']);
    walSync.close();
  });

  it('flush() waits for what was submitted before it, not for a quiet moment', async () => {
    const { gate, gc, ins, other } = setUp();
    const syncStarted = async () => {
      while (gate.inFlight() === 0) await turn();
    };
    void gc.submit(() => ins.run('a', 1));
    await syncStarted(); // a committed, its sync in flight
    const flushed = gc.flush();
    const b = gc.submit(() => ins.run('b', 1));
    expect(await state(flushed)).toBe('pending');
    gate.open(); // a durable; the flush marker and b commit together
    await syncStarted();
    const c = gc.submit(() => ins.run('c', 1)); // and more keeps arriving
    gate.open();
    await flushed;
    await b;
    expect(await state(c)).toBe('pending');
    await syncStarted();
    gate.open();
    await c;
    other.close();
  });

  it('syncs the real WAL file, and is not made for databases without one', async () => {
    sqlite.db.pragma('synchronous = FULL');
    const walSync = createWalSync(sqlite.db)!;
    const gc = createGroupCommitter(sqlite.db, { walSync });
    const ins = sqlite.db.prepare('INSERT INTO t VALUES (?, ?)');
    await expect(Promise.all(['a', 'b'].map((k) => gc.submit(() => ins.run(k, 0).changes)))).resolves.toEqual([1, 1]);
    await gc.flush();
    walSync.close();
    expect(rows()).toEqual([{ k: 'a', v: 0 }, { k: 'b', v: 0 }]);

    const memory = new Database(':memory:');
    expect(createWalSync(memory)).toBeNull();
    memory.close();
    sqlite.db.pragma('journal_mode = DELETE');
    expect(createWalSync(sqlite.db)).toBeNull();
  });
});

describe('createWalSync', () => {
  /** An fdatasync that only returns when the test says so (with `err`, or after the real sync). */
  function heldDisk() {
    const held: Array<(err: NodeJS.ErrnoException | null) => void> = [];
    const disk = ((fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
      held.push((err) => (err ? cb(err) : fdatasync(fd, cb)));
    }) as typeof fdatasync;
    return { disk, held, eio: () => Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }) };
  }

  it('runs one fdatasync at a time: whoever asks while one runs gets the next one, and sees its failure', async () => {
    // Two fdatasyncs at once on one descriptor share a write-back error: Linux tells only the
    // first to look, and the other returns 0. Here the relay's sync is running when a batch
    // commits and asks for its own; the disk then fails.
    const { disk, held, eio } = heldDisk();
    const walSync = createWalSync(sqlite.db, { fdatasync: disk })!;
    const relay = new Promise<Error | null>((r) => walSync.sync(r));
    sqlite.db.pragma('synchronous = FULL');
    const gc = createGroupCommitter(sqlite.db, { walSync });
    const batch = gc.submit(() => sqlite.db.prepare('INSERT INTO t VALUES (?, ?)').run('a', 1).changes);
    while (held.length < 1) await turn();
    await turn();
    expect(held).toHaveLength(1); // the batch's sync waits for the relay's to return
    held.shift()!(eio());
    expect((await relay)?.message).toMatch(/WAL sync failed.*EIO/);
    await expect(batch).rejects.toThrow(/WAL sync failed.*EIO/);
    expect(held).toHaveLength(0); // no second fdatasync, so none could come back clean
    walSync.close();
  });

  it('covers everyone who asked during a sync with one more fdatasync', async () => {
    const { disk, held } = heldDisk();
    const walSync = createWalSync(sqlite.db, { fdatasync: disk })!;
    const results: Array<Error | null> = [];
    walSync.sync((err) => results.push(err));
    for (let i = 0; i < 3; i++) walSync.sync((err) => results.push(err));
    expect(held).toHaveLength(1);
    held.shift()!(null);
    while (held.length < 1) await turn(); // the first returned; one more starts for the three
    expect(results).toEqual([null]);
    held.shift()!(null);
    while (results.length < 4) await turn();
    expect(results).toEqual([null, null, null, null]);
    expect(held).toHaveLength(0);
    walSync.close();
  });

  it('tries a WAL it cannot open again before refusing: the batch is committed, and then acknowledged', async () => {
    let opens = 0;
    const outOfFiles = ((file: string, flags: string) => {
      opens++;
      if (opens <= 2) throw Object.assign(new Error('EMFILE: too many open files, open'), { code: 'EMFILE' });
      return openSync(file, flags);
    }) as typeof openSync;
    const walSync = createWalSync(sqlite.db, { openSync: outOfFiles, openRetryMs: 5 })!;
    sqlite.db.pragma('synchronous = FULL');
    const gc = createGroupCommitter(sqlite.db, { walSync });
    await expect(gc.submit(() => sqlite.db.prepare('INSERT INTO t VALUES (?, ?)').run('a', 1).changes)).resolves.toBe(1);
    expect(opens).toBe(3);
    expect(walSync.failure()).toBeNull();
    walSync.close();
  });

  it('stops trying a WAL it cannot open once closed (shutdown): the waiting sync fails, nothing is opened after', async () => {
    let opens = 0;
    const never = (() => {
      opens++;
      throw Object.assign(new Error('EMFILE: too many open files, open'), { code: 'EMFILE' });
    }) as unknown as typeof openSync;
    const walSync = createWalSync(sqlite.db, { openSync: never, openRetryMs: 5 })!;
    const result = new Promise<Error | null>((r) => walSync.sync(r));
    walSync.close();
    expect((await result)?.message).toMatch(/closed/);
    expect(opens).toBe(1);
  });

  it('does not sync a WAL file that is gone: it reopens the path, and says so when it cannot', async () => {
    const walSync = createWalSync(sqlite.db)!;
    const sync = () => new Promise<Error | null>((r) => walSync.sync(r));
    expect(await sync()).toBeNull();
    unlinkSync(`${sqlite.file}-wal`); // only SQLite's last close does this; a stale descriptor must not pass for it
    expect((await sync())?.message).toMatch(/ENOENT/);
    expect(walSync.failure()).toBeNull(); // nothing was synced, nothing lost: not final
    writeFileSync(`${sqlite.file}-wal`, '');
    expect(await sync()).toBeNull();
    walSync.close();
  });
});
