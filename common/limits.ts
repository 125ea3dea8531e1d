// A job's limits from request to sandbox, in one place: which limits there are, the server's caps on them
// (LID_CAP_*), holding a request under ceilings, and filling in the defaults the runtime gets. The gateway holds a
// job under min(tenant ceiling, server cap); the queue client (common/queue-client.ts) under its tenant's ceilings
// only, since the server's caps are not known there; a worker holds every job under its own caps again.
//
// Both use the same rule: a limit asked for above its ceiling is a problem naming the field, never silently
// lowered (the job would run with less than it asked for and fail in a confusing way); a limit left out whose
// default is above the ceiling gets the ceiling, so a job that asks for nothing still runs within what is allowed.
import os from 'node:os';
import type { LidConfig } from './config.js';
import { LidError } from './errors.js';
import type { JobLimits, JobRequest } from './job.js';
import { DEFAULT_LIMITS, type Limits, LimitsSchema } from './run-spec.js';

export type LimitField = keyof Limits;
export const LIMIT_FIELDS = Object.freeze(Object.keys(DEFAULT_LIMITS) as LimitField[]);

/** A number per limit: the largest value a job may have. */
export type LimitValues = Readonly<Record<LimitField, number>>;

/** The variable that sets each server cap, named in messages so that an operator knows what to change. */
export const CAP_VARIABLES: Readonly<Record<LimitField, string>> = Object.freeze({
  timeoutMs: 'LID_CAP_TIMEOUT',
  memoryBytes: 'LID_CAP_MEMORY',
  cpus: 'LID_CAP_CPUS',
  pids: 'LID_CAP_PIDS',
  outputBytes: 'LID_CAP_OUTPUT',
  diskBytes: 'LID_CAP_DISK',
});

/** The server's caps from its configuration; cpus defaults to this machine's CPU count. */
export function serverCaps(config: LidConfig): LimitValues {
  return Object.freeze({
    timeoutMs: config.capTimeoutMs,
    memoryBytes: config.capMemoryBytes,
    cpus: config.capCpus ?? os.availableParallelism(),
    pids: config.capPids,
    outputBytes: config.capOutputBytes,
    diskBytes: config.capDiskBytes,
  });
}

/** One ceiling and who set it, as a message says it: "this tenant's ceiling of 60000". */
export interface Ceiling {
  value: number;
  /** "this tenant's ceiling", "this server's cap"... */
  what: string;
  /** What to change to move it, when that is a variable (LID_CAP_PIDS). */
  setBy?: string;
}
export type Ceilings = Readonly<Record<LimitField, Ceiling>>;

export function tenantCeilings(values: LimitValues): Ceilings {
  return mapFields((f) => ({ value: values[f], what: "this tenant's ceiling" }));
}

/** `who` is "server" at the gateway, "worker" on a worker (whose configuration may differ from the gateway's). */
export function capCeilings(caps: LimitValues, who: 'server' | 'worker'): Ceilings {
  return mapFields((f) => ({ value: caps[f], what: `this ${who}'s cap`, setBy: CAP_VARIABLES[f] }));
}

/** Field by field, the lower ceiling; on a tie the first (the tenant's, which is what its owner can change). */
export function lowerOf(a: Ceilings, b: Ceilings): Ceilings {
  return mapFields((f) => (b[f].value < a[f].value ? b[f] : a[f]));
}

export interface LimitProblem {
  /** Dotted path of the field in the request: "limits.pids", or "jobs.3.limits.pids" in a batch. */
  path: string;
  message: string;
  asked: number;
  ceiling: number;
}

/**
 * Holds the limits a job asked for under the ceilings: returns the limits to queue or run (left-out limits whose
 * default is above their ceiling set to it) and one problem per limit asked for above its ceiling. `prefix` names
 * the job inside a batch ("jobs.3.").
 */
export function fitLimits(
  asked: JobLimits,
  ceilings: Ceilings,
  prefix = '',
): { limits: JobLimits; problems: LimitProblem[] } {
  const limits: JobLimits = { ...asked };
  const problems: LimitProblem[] = [];
  for (const field of LIMIT_FIELDS) {
    const ceiling = ceilings[field];
    const value = asked[field];
    if (value === undefined) {
      if (DEFAULT_LIMITS[field] > ceiling.value) limits[field] = ceiling.value;
    } else if (value > ceiling.value) {
      const path = `${prefix}limits.${field}`;
      const setBy = ceiling.setBy ? ` (${ceiling.setBy})` : '';
      problems.push({
        path,
        message: `${path} ${value} is above ${ceiling.what} of ${ceiling.value}${setBy}`,
        asked: value,
        ceiling: ceiling.value,
      });
    }
  }
  return { limits, problems };
}

/**
 * The request with its limits held under `ceilings` (fitLimits), or one invalid_spec error saying what is above
 * which ceiling, with every problem in details.problems (the gateway's 400 lists them). The gateway holds a job
 * under its tenant's ceilings and the server's caps; the queue client under its tenant's ceilings.
 */
export function holdUnder(request: JobRequest, ceilings: Ceilings, prefix = ''): JobRequest {
  const { limits, problems } = fitLimits(request.limits, ceilings, prefix);
  if (problems.length) throw new LidError('invalid_spec', problems.map((p) => p.message).join('; '), { problems });
  return { ...request, limits };
}

/**
 * The limits a sandbox will run with, to know them ahead (the worker sizes its output buffers by them): the runtime's
 * own schema fills the defaults, as it will when the job runs. Pass the request's limits to the runtime as they are.
 */
export function runLimits(asked: JobLimits): Limits {
  return LimitsSchema.parse(asked);
}

function mapFields(value: (field: LimitField) => Ceiling): Ceilings {
  return Object.freeze(Object.fromEntries(LIMIT_FIELDS.map((f) => [f, value(f)])) as Record<LimitField, Ceiling>);
}
