// The worker's own GET /metrics: a bare node:http listener (a worker has no HTTP app) serving its Prometheus
// registry on LID_WORKER_METRICS_PORT, behind LID_METRICS_TOKEN when one is set. It binds LID_METRICS_HOST, by
// default 127.0.0.1: the numbers name tenants and images, so other hosts reach them only when the operator says so
// (0.0.0.0 for a Prometheus elsewhere; a token is then wise). A port that is taken is logged and skipped rather
// than fatal: a worker that cannot be scraped should still run jobs.
import http from 'node:http';
import { type AddressInfo, isIP } from 'node:net';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { bearerToken, sameSecret } from '../common/admin-secret.js';

export interface MetricsServer {
  url: string;
  /** The address the listener is bound to, as the kernel reports it. */
  address: string;
  close(): Promise<void>;
}

export async function serveMetrics(
  registry: Registry,
  port: number,
  opts: { host?: string; token?: string | undefined; logger: Logger },
): Promise<MetricsServer | null> {
  const host = opts.host ?? '127.0.0.1';
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' || path !== '/metrics') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('only GET /metrics here\n');
      return;
    }
    if (opts.token && !sameSecret(bearerToken(req.headers.authorization), opts.token)) {
      res.writeHead(401, { 'Content-Type': 'text/plain', 'WWW-Authenticate': 'Bearer realm="lid-metrics"' });
      res.end('send Authorization: Bearer <LID_METRICS_TOKEN>\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'Content-Type': registry.contentType }).end(text),
      (err: Error) => res.writeHead(500, { 'Content-Type': 'text/plain' }).end(`${err.message}\n`),
    );
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
  } catch (err) {
    opts.logger.warn({ err: (err as Error).message, host, port }, 'worker metrics not served: the port is unavailable');
    return null;
  }
  const bound = server.address() as AddressInfo;
  opts.logger.info({ host: bound.address, port: bound.port }, 'worker metrics on /metrics');
  // A wildcard address is reachable on loopback too; an IPv6 one needs brackets in a URL.
  const shown = bound.address === '0.0.0.0' || bound.address === '::' ? '127.0.0.1' : bound.address;
  return {
    url: `http://${isIP(shown) === 6 ? `[${shown}]` : shown}:${bound.port}/metrics`,
    address: bound.address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
