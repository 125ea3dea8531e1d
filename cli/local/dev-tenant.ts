// The all-in-one's development tenant: `lid up` creates it when no tenant exists, with the settings below, and keeps
// its API key in LID_DATA_DIR/dev-tenant.json (mode 0600), where `lid run` and the load test find it when
// LID_API_KEY is unset.
import fs from 'node:fs';
import path from 'node:path';
import type { LidConfig } from '../../common/config.js';
import { LidError } from '../../common/errors.js';
import { serverCaps } from '../../common/limits.js';
import type { TenantSettings } from '../../common/tenant-record.js';

export const DEV_TENANT = 'dev';

/**
 * The development tenant may use the whole machine: as many jobs at once as the worker runs, a request rate that
 * never stands between a developer (or the load test) and the service, job limits up to the server's caps, and the
 * internet, so that a new user can try `network` at once (other tenants have none until the operator gives it).
 */
export function devTenantSettings(config: LidConfig): TenantSettings {
  const caps = serverCaps(config);
  return {
    concurrency: 64,
    ratePerSec: 5000,
    maxQueued: 100_000,
    maxTimeoutMs: caps.timeoutMs,
    maxMemoryBytes: caps.memoryBytes,
    maxCpus: caps.cpus,
    maxPids: caps.pids,
    maxOutputBytes: caps.outputBytes,
    maxDiskBytes: caps.diskBytes,
    network: 'internet',
  };
}

export function devKeyFile(config: LidConfig): string {
  return path.resolve(config.dataDir, 'dev-tenant.json');
}

export function saveDevKey(config: LidConfig, tenant: string, apiKey: string): void {
  const file = devKeyFile(config);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ tenant, apiKey }), { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export function readDevKey(config: LidConfig): { tenant: string; apiKey: string } | null {
  try {
    return JSON.parse(fs.readFileSync(devKeyFile(config), 'utf8')) as { tenant: string; apiKey: string };
  } catch {
    return null;
  }
}

/** Where the gateway is and which key to use: LID_URL / LID_API_KEY, else the all-in-one's defaults. */
export function gatewayEndpoint(config: LidConfig): { url: string; apiKey: string } {
  const url = (config.gatewayUrl ?? `http://127.0.0.1:${config.port}`).replace(/\/$/, '');
  const apiKey = config.apiKey ?? readDevKey(config)?.apiKey;
  if (!apiKey) {
    throw new LidError(
      'invalid_spec',
      `no API key: set LID_API_KEY, or start the all-in-one (npm start), which keeps a development key in ${devKeyFile(config)}`,
    );
  }
  return { url, apiKey };
}
