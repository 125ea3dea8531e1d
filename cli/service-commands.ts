// `lid up`, `lid gateway` and `lid worker`, as commands: names, help, and an action that loads the service it runs
// only then (up.ts, worker.ts), so that `lid --help` does not load the gateway, the worker and the runtime.
import { Command } from 'commander';
import type { LidConfig } from '../common/config.js';

export function upCommand(config: LidConfig): Command {
  return new Command('up')
    .description('run the whole service on this machine: Redis, the gateway and a worker (what npm start runs)')
    .action(async () => (await import('./up.js')).runUp(config));
}

export function gatewayCommand(config: LidConfig): Command {
  return new Command('gateway')
    .description('run the HTTP gateway (REDIS_URL, or the embedded Redis)')
    .action(async () => (await import('./up.js')).runGateway(config));
}

export function workerCommand(config: LidConfig): Command {
  return new Command('worker')
    .description('run a worker node: take jobs from the queue and run each in a sandbox')
    .action(async () => (await import('./worker.js')).runWorker(config));
}
