/**
 * Two structural checks that run with the tests:
 * 1. no import cycles among src/ modules (type-only imports excluded: they vanish at run time);
 * 2. the Web-standard edge (src/app.ts, src/http/, providers' verify/normalize) imports no `node:` module.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..', 'src');

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) return walk(p);
    return p.endsWith('.ts') && !p.endsWith('.test.ts') ? [p] : [];
  });
}

const files = walk(root);
const importRe = /^\s*(import|export)\s+(type\s+)?[^'"]*?from\s+['"]([^'"]+)['"]/gm;
const graph = new Map<string, string[]>();
const problems: string[] = [];

for (const file of files) {
  const src = readFileSync(file, 'utf8');
  const deps: string[] = [];
  for (const m of src.matchAll(importRe)) {
    const spec = m[3]!;
    const rel = path.relative(root, file);
    const webOnly = rel === 'app.ts' || rel.startsWith('http/') || /^providers\/[^/]+\/(verify|normalize)\.ts$/.test(rel);
    if (webOnly && spec.startsWith('node:')) problems.push(`${rel} imports ${spec}; the HTTP edge must stay Web-standard`);
    if (m[2] || !spec.startsWith('.')) continue;
    deps.push(path.resolve(path.dirname(file), spec.replace(/\.js$/, '.ts')));
  }
  graph.set(file, deps);
}

const state = new Map<string, 'visiting' | 'done'>();
function visit(file: string, stack: string[]): void {
  if (state.get(file) === 'done') return;
  if (state.get(file) === 'visiting') {
    const cycle = stack.slice(stack.indexOf(file)).concat(file).map((f) => path.relative(root, f));
    problems.push(`import cycle: ${cycle.join(' → ')}`);
    return;
  }
  state.set(file, 'visiting');
  for (const dep of graph.get(file) ?? []) visit(dep, [...stack, file]);
  state.set(file, 'done');
}
for (const file of files) visit(file, []);

if (problems.length > 0) {
  process.stderr.write(`${problems.join('\n')}\n`);
  process.exit(1);
}
process.stdout.write(`structure ok: ${files.length} modules, no import cycles, Web-standard edge\n`);
