/**
 * One extra delivery-worker process for `scripts/bench/outbound.ts --workers N`: the gateway's
 * deps and delivery worker against the bench's data dir and queue prefix (from the environment).
 * Prints `ready` once the worker is listening; stops on SIGTERM after finishing its jobs.
 */
import { loadConfig } from '../../src/config.js';
import { buildDeps, closeDeps } from '../../src/deps.js';
import { createLogger } from '../../src/log.js';
import { startDeliveryWorker } from '../../src/outbound/worker.js';

const config = loadConfig();
const deps = buildDeps(config, { log: createLogger('warn') });
const worker = startDeliveryWorker(deps, { concurrency: Number(process.env.BENCH_CONCURRENCY ?? 128) });
await worker.worker.waitUntilReady();
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  void (async () => {
    await worker.close();
    await closeDeps(deps);
    process.exit(0);
  })();
});
