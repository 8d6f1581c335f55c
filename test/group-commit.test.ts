import { describe, expect, it } from 'vitest';
import { createGroupCommitter } from '../src/ingest/group-commit.js';
import { useTempSqliteFile } from './harness.js';

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
