import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { serve, type ServerType } from '@hono/node-server';
import { createApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { buildDeps, closeDeps, resolveAdminToken, withTimeout, type BuildOptions, type Deps } from './deps.js';
import { startWorkers, type Workers } from './queue/workers.js';

/**
 * Node entry: config → deps (migrations applied) → HTTP server + outbox relay + workers.
 * SIGTERM/SIGINT: stop accepting, finish in-flight requests and jobs, close clients.
 */

export interface RunningGateway {
  deps: Deps;
  server: ServerType;
  port: number;
  workers: Workers | null;
  stop(): Promise<void>;
}

/** How long a stop waits for the queue workers' jobs in progress. */
const WORKERS_STOP_MS = 10_000;

export async function startGateway(config: Config, opts: BuildOptions = {}): Promise<RunningGateway> {
  const deps = buildDeps(config, opts);
  const app = createApp(deps);
  const server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: app.fetch, port: config.port, hostname: config.host }, () => resolve(s));
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  deps.relay.start();
  deps.retention.start();
  const workers = config.runWorkers ? startWorkers(deps) : null;
  deps.log.info({ port, host: config.host, workers: config.runWorkers }, 'switchboard listening');

  let stopping: Promise<void> | null = null;
  return {
    deps,
    server,
    port,
    workers,
    stop() {
      stopping ??= (async () => {
        // Open event streams would keep server.close() waiting until the forced exit.
        deps.events.endAll('shutting down');
        await new Promise<void>((resolve) => server.close(() => resolve()));
        // Workers finish their jobs in progress; with Redis unreachable they would wait for it
        // forever, and the database would never be flushed and closed.
        const message = `queue workers did not stop within ${WORKERS_STOP_MS / 1000}s (Redis unreachable?); closing anyway`;
        if (workers) await withTimeout(workers.close(), WORKERS_STOP_MS, message).catch((err: Error) => deps.log.warn(err.message));
        await closeDeps(deps);
      })();
      return stopping;
    },
  };
}

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const { token, generated } = resolveAdminToken(config);
  if (generated) {
    // Printed once, on the start that generated it; kept in the data dir with mode 0600.
    process.stdout.write(`Generated ADMIN_TOKEN (stored in ${config.dataDir}/admin-token, shown only now): ${token}\n`);
  }
  const gw = await startGateway(config);
  let signalled = false;
  const shutdown = (signal: string) => {
    if (signalled) return;
    signalled = true;
    gw.deps.log.info({ signal }, 'shutting down');
    const force = setTimeout(() => {
      gw.deps.log.error('shutdown took over 25s; exiting');
      process.exit(1);
    }, 25_000);
    force.unref();
    gw.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        gw.deps.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}

if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`fatal: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
