// `lid --help` and every command's --help load only the command tree: no server, no runtime, no image store, no
// Redis client. Each run of the real `lid` (bin/lid.js, from dist/ or through tsx) records every module Node
// resolves, through a resolve hook registered with --import; the control runs a command that does load its code.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const lidBin = new URL('../bin/lid.js', import.meta.url).pathname;
const root = path.resolve(import.meta.dirname, '..');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-cli-main-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
let runs = 0;

const dataUrl = (source: string) => `data:text/javascript,${encodeURIComponent(source)}`;

/** Runs lid with `args`; returns its exit code, stdout, and the project files and packages it loaded. */
function lidLoading(args: string[]) {
  const log = path.join(tmp, `imports-${++runs}.log`);
  const hooks = `import fs from 'node:fs';
export async function resolve(specifier, context, next) {
  const resolved = await next(specifier, context);
  fs.appendFileSync(${JSON.stringify(log)}, resolved.url + '\\n');
  return resolved;
}`;
  const register = `import { register } from 'node:module'; register(${JSON.stringify(dataUrl(hooks))});`;
  const r = spawnSync(process.execPath, ['--import', dataUrl(register), lidBin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, LID_DATA_DIR: path.join(tmp, 'data') },
    timeout: 60_000,
  });
  const urls = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : [];
  const local = urls.filter((u) => u.startsWith('file://') && !u.includes('/node_modules/'));
  const files = local.map((u) => path.relative(root, new URL(u).pathname).replace(/^dist\//, ''));
  const packages = urls.flatMap((u) => {
    const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(u);
    return m ? [m[1]!] : [];
  });
  return { code: r.status, out: r.stdout, files: [...new Set(files)], packages: [...new Set(packages)] };
}

// What only an action needs. Help that loads any of it pays for every command at once (0.6-0.8 s, issue 9).
const HEAVY_FILES =
  /^(runtime|worker)\/|^gateway\/(server|app)\.|^images\/(store|acquire|import|gc|registry\/client)\./;
const HEAVY_PACKAGES = ['ioredis', 'bullmq', 'koffi', 'pino', 'hono', 'tar-stream', 'prom-client', '@opentelemetry'];

describe('lid help loads no command’s code', () => {
  it.each([
    [['--help']],
    [['sandbox', 'run', '--help']],
    [['images', '--help']],
    [['images', 'pull', '--help']],
    [['tenants', 'create', '--help']],
    [['up', '--help']],
    [['worker', '--help']],
    [['run', '--help']],
  ])('lid %j', (args) => {
    const r = lidLoading(args);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^Usage: lid/);
    expect(r.files.some((f) => /^cli\/main\.(js|ts)$/.test(f))).toBe(true);
    expect(r.files.filter((f) => HEAVY_FILES.test(f))).toEqual([]);
    expect(r.packages.filter((p) => HEAVY_PACKAGES.some((h) => p.startsWith(h)))).toEqual([]);
  });

  it('loads a command’s code when it runs (the control: the recorder sees it)', () => {
    const r = lidLoading(['images', 'ls', '--json']);
    expect(r).toMatchObject({ code: 0, out: '[]\n' });
    expect(r.files.filter((f) => HEAVY_FILES.test(f))).toEqual(
      expect.arrayContaining([expect.stringMatching(/^images\/store\./)]),
    );
  });
});
