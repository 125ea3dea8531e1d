// /dashboard: a read-only operator's view (queue depth, workers and capacity, running and recent jobs, a job's
// timeline) for whoever holds LID_ADMIN_TOKEN. Without that variable the dashboard does not exist: 404 with a
// message saying how to turn it on. The token comes as `Authorization: Bearer <token>` or as the lid_admin cookie,
// which `/dashboard?token=<token>` sets before redirecting to a URL without the token (so it leaves the address
// bar and the history). The cookie holds a hash of the token, never the token itself.
import crypto from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { Hono } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import { bearerToken, sameSecret } from '../../common/admin-secret.js';
import { ApiError } from '../api-error.js';
import { JOB_ID } from '../api-schemas.js';
import { overview, timeline } from '../dashboard-data.js';
import { dashboardPage } from '../dashboard-page.js';
import type { GatewayEnv, Services } from '../deps.js';

const COOKIE = 'lid_admin';
const COOKIE_MAX_AGE_S = 12 * 3600;

const cookieValue = (token: string) => crypto.createHash('sha256').update(`lid-dashboard:${token}`).digest('hex');

function refuse(message: string): never {
  throw new ApiError('unauthorized', message, null, { 'WWW-Authenticate': 'Bearer realm="lid-admin"' });
}

function requireAdmin(token: string | undefined): MiddlewareHandler<GatewayEnv> {
  return async function requireAdmin(c, next) {
    if (!token) throw new ApiError('not_found', 'the dashboard is off: set LID_ADMIN_TOKEN to turn it on');
    const bearer = bearerToken(c.req.header('Authorization'));
    if (bearer !== null) {
      if (!sameSecret(bearer, token)) refuse('wrong admin token');
    } else if (!sameSecret(getCookie(c, COOKIE), cookieValue(token))) {
      refuse('the dashboard needs the admin token: open /dashboard?token=<LID_ADMIN_TOKEN>');
    }
    await next();
  };
}

/** /dashboard?token=...: trade the token for the cookie, then drop it from the URL. */
function signIn(c: Context<GatewayEnv>, token: string, given: string) {
  if (!sameSecret(given, token)) refuse('wrong admin token');
  setCookie(c, COOKIE, cookieValue(token), {
    httpOnly: true,
    sameSite: 'Strict',
    path: '/dashboard',
    maxAge: COOKIE_MAX_AGE_S,
    secure: new URL(c.req.url).protocol === 'https:',
  });
  c.header('Referrer-Policy', 'no-referrer');
  return c.redirect('/dashboard', 303);
}

export function dashboardRoutes(s: Services): Hono<GatewayEnv> {
  const app = new Hono<GatewayEnv>();
  const token = s.config.adminToken;

  app.get('/dashboard', async (c, next) => {
    const given = c.req.query('token');
    if (token && given !== undefined) return signIn(c, token, given);
    await next();
  });
  app.use('/dashboard', requireAdmin(token));
  app.use('/dashboard/*', requireAdmin(token));

  app.get('/dashboard', (c) => {
    const nonce = crypto.randomBytes(16).toString('base64');
    c.header(
      'Content-Security-Policy',
      `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'unsafe-inline'; connect-src 'self'; ` +
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    );
    c.header('Cache-Control', 'no-store');
    c.header('Referrer-Policy', 'no-referrer');
    return c.html(dashboardPage(nonce));
  });

  app.get('/dashboard/api/overview', async (c) => {
    c.header('Cache-Control', 'no-store');
    return c.json(await overview(s));
  });

  app.get('/dashboard/api/jobs/:id/trace', async (c) => {
    const id = c.req.param('id');
    const found = JOB_ID.test(id) ? await timeline(s, id) : null;
    if (!found) throw new ApiError('not_found', `no job ${id}`);
    c.header('Cache-Control', 'no-store');
    return c.json(found);
  });

  return app;
}
