/**
 * A fake provider for benchmarks, in its own process so it does not share the gateway's event
 * loop: the test suite's `api` callback receiver (`--provider api`) or fake WhatsApp Cloud API
 * (`--provider waba`), answering every request after `--latency` ms.
 * Prints `url <base>` once listening; answers `count` on stdin with `count <requests so far>`.
 */
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { createFakeCallbackReceiver, createFakeWaba } from '../../test/fakes/index.js';

const { values } = parseArgs({ options: { latency: { type: 'string', default: '20' }, provider: { type: 'string', default: 'api' } } });
const opts = { latencyMs: Number(values.latency), recordRequests: false, recordBodies: false };
const fake = values.provider === 'waba' ? await createFakeWaba(opts) : await createFakeCallbackReceiver(opts);
process.stdout.write(`url ${fake.url}\n`);
createInterface({ input: process.stdin }).on('line', (line) => {
  if (line.trim() === 'count') process.stdout.write(`count ${fake.requestCount}\n`);
});
process.on('SIGTERM', () => void fake.close().then(() => process.exit(0)));
