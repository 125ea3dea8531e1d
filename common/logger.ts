// Structured JSON logs (pino) for the long-running parts, at LOG_LEVEL. Lines about a job carry jobId and tenant
// (child loggers); the runtime library logs nothing by itself.
import { type Logger, pino } from 'pino';
import type { LidConfig } from './config.js';

export function createLogger(config: LidConfig, component: string): Logger {
  return pino({ level: config.logLevel, base: { component, pid: process.pid } });
}
