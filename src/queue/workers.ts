import type { Deps } from '../deps.js';

/** The BullMQ workers this process runs. */
export interface Workers {
  close(): Promise<void>;
}

export function startWorkers(_deps: Deps): Workers {
  return {
    async close() {},
  };
}
