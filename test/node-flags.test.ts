import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { GATEWAY_NODE_FLAGS } from '../scripts/bench/ingest-setup.js';
import { projectRoot } from './process.js';

/** The gateway runs with the same V8 flags wherever it is started, and the benches measure those. */
describe('gateway node flags', () => {
  const read = (file: string) => readFileSync(path.join(projectRoot, file), 'utf8');

  it('npm start passes the flags the benches use', () => {
    expect(read('scripts/start.sh')).toContain(`exec node ${GATEWAY_NODE_FLAGS.join(' ')} dist/src/server.js`);
  });

  it('the Docker image passes them too', () => {
    expect(read('Dockerfile')).toContain(`CMD ["node", ${GATEWAY_NODE_FLAGS.map((f) => JSON.stringify(f)).join(', ')}, "dist/src/server.js"]`);
  });
});
