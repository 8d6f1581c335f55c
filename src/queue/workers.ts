import type { Worker } from 'bullmq';
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
  return {
    async close() {
      // Worker.close() waits for the jobs in progress to finish.
      await Promise.all([...workers.map((w) => w.close()), deliveries.close()]);
    },
  };
}
