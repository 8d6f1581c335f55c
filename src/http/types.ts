import type { Context } from 'hono';
import type { Deps } from '../deps.js';

export type Auth = { role: 'admin' } | { role: 'agent'; agentId: string };

export interface AppEnv {
  Variables: {
    requestId: string;
    deps: Deps;
    auth: Auth;
  };
}

export type AppContext = Context<AppEnv>;
