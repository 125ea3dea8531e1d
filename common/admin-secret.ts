// Comparing an operator's secret (LID_ADMIN_TOKEN, LID_METRICS_TOKEN) with what a request brought, shared by the
// gateway and the worker's metrics listener. Hashing both sides first gives equal-length buffers, so
// timingSafeEqual neither throws nor leaks the secret's length through an early return.
import crypto from 'node:crypto';

const digest = (s: string) => crypto.createHash('sha256').update(s).digest();

export function sameSecret(given: string | null | undefined, expected: string): boolean {
  return typeof given === 'string' && crypto.timingSafeEqual(digest(given), digest(expected));
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | null | undefined): string | null {
  const match = header ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
  return match ? match[1]! : null;
}
