import type { Worker } from 'bullmq';
import { createAcdSweeper } from '../acd/sweeper.js';
import { createAcdWorker } from '../acd/worker.js';
import type { Deps } from '../deps.js';
import { startDeliveryWorker } from '../outbound/worker.js';

/** The BullMQ workers this process runs. Each worker gets its own blocking Redis connection. */
export interface Workers {
  close(): Promise<void>;
}

export function startWorkers(deps: Deps): Workers {
  const workers: Worker[] = [createAcdWorker(deps)];
  const deliveries = startDeliveryWorker(deps);
  const acdSweeper = createAcdSweeper(deps, { log: deps.log.child({ component: 'acd-sweeper' }) });
  acdSweeper.start();
  return {
    async close() {
      // Worker.close() waits for the jobs in progress to finish.
      await Promise.all([acdSweeper.stop(), ...workers.map((w) => w.close()), deliveries.close()]);
    },
  };
}
