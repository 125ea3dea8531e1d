// The checks a job spec gets beyond its schema, which need the tenant or the cluster: the image must be one the
// workers offer (gateway/image-names.ts), the network must be within the tenant's network ceiling
// (common/network-policy.ts networkCeilingProblem) and the limits must fit under the tenant's ceilings and the
// server's caps (gateway/quota.ts).
// A batch is checked whole before anything is queued, and each problem names its job ("jobs.3.image").
// A callbackUrl whose host is an address the egress policy refuses (a literal IP, or localhost) is refused here,
// where the tenant can fix it; names are checked when the worker resolves them at delivery.
import type { JobRequest } from '../common/job.js';
import { serverCaps } from '../common/limits.js';
import { networkCeilingProblem } from '../common/network-policy.js';
import { invalidInput, type Problem } from '../common/validation.js';
import type { Services } from './deps.js';
import { applyCeilings } from './quota.js';
import type { Tenant } from './tenants.js';

/** The requests ready to queue (ceilings applied to their limits), or a 400 listing what is wrong. */
export async function checkJobs(
  s: Services,
  tenant: Tenant,
  requests: JobRequest[],
  prefixOf: (i: number) => string,
): Promise<JobRequest[]> {
  const checkImage = await s.images.checker();
  const problems = requests.flatMap((r, i) => {
    const image = checkImage(r.image, `${prefixOf(i)}image`);
    const network = networkCeilingProblem(r.network, tenant.network, `${prefixOf(i)}network`);
    return [
      ...(image ? [image] : []),
      ...(network ? [network] : []),
      ...callbackProblems(s, r.callbackUrl, `${prefixOf(i)}callbackUrl`),
    ];
  });
  if (problems.length) throw invalidInput(problems, requests.length === 1 ? 'job' : 'batch');
  const caps = serverCaps(s.config);
  return requests.map((r, i) => applyCeilings(r, tenant, caps, prefixOf(i)));
}

/** A 400 when a batch's own callbackUrl names an address callbacks may not go to. */
export function checkCallbackUrl(s: Services, url: string | undefined, path: string): void {
  const problems = callbackProblems(s, url, path);
  if (problems.length) throw invalidInput(problems, 'batch');
}

function callbackProblems(s: Services, url: string | undefined, path: string): Problem[] {
  const refused = url === undefined ? undefined : s.config.egress.refusedLiteralHost(url);
  return refused ? [{ path, message: refused }] : [];
}
