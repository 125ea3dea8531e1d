// Whose pull it is decides what a pull may do, and these two are the only answers. A job's image is named by a
// tenant, who chooses the registry: its pull goes under the operator's egress policy (LID_ALLOW_PRIVATE_EGRESS) and
// uses the host's registry logins only for the registries LID_REGISTRY_HOST_CREDENTIALS lists. The operator's own
// pulls (`lid images pull`, `lid sandbox run --image`) may reach any address (the operator can anyway) with the
// host's logins. The size and time caps (LID_PULL_MAX_BYTES, LID_PULL_TIMEOUT) hold for both.
import type { LidConfig } from '../common/config.js';
import { EgressPolicy } from '../common/egress-policy.js';
import type { PullOptions } from './registry/client.js';

/** How pulls are made: rights, caps, and (for the operator and for tests) transport and credential sources. */
export type PullPolicy = Pick<
  PullOptions,
  'egress' | 'hostCredentials' | 'maxBytes' | 'timeoutMs' | 'creds' | 'plainHttp' | 'authFiles'
>;

/** Pulls made for tenants' jobs. */
export function tenantPulls(config: LidConfig): PullPolicy {
  return {
    egress: { policy: config.egress },
    hostCredentials: config.registryHostCredentials,
    maxBytes: config.pullMaxBytes,
    timeoutMs: config.pullTimeoutMs,
  };
}

/** The operator's own pulls, with what the command line adds (--creds, --plain-http). */
export function operatorPulls(config: LidConfig, extra: Pick<PullOptions, 'creds' | 'plainHttp'> = {}): PullPolicy {
  return {
    egress: { policy: EgressPolicy.ANY },
    hostCredentials: 'any',
    maxBytes: config.pullMaxBytes,
    timeoutMs: config.pullTimeoutMs,
    ...extra,
  };
}
