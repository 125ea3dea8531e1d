// The all-in-one's dashboard token: `lid up` opens /dashboard without asking the developer to invent a secret.
// LID_ADMIN_TOKEN wins when set; otherwise a random token is made once and kept in LID_DATA_DIR/admin-token
// (mode 0600, written to a temporary file and renamed, so a crash never leaves half a token), and reused after.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { LidConfig } from '../common/config.js';

const MIN_LENGTH = 16;

export function adminToken(config: LidConfig): string {
  if (config.adminToken) return config.adminToken;
  const file = path.resolve(config.dataDir, 'admin-token');
  try {
    const saved = fs.readFileSync(file, 'utf8').trim();
    if (saved.length >= MIN_LENGTH) return saved;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  const token = crypto.randomBytes(24).toString('base64url');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${token}\n`, { mode: 0o600 });
  fs.renameSync(tmp, file);
  return token;
}
