// `lid images ...` and `lid sandbox run --image`, through the real command, on a private data directory.
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startHostileRegistry, testImage } from '../test/hostile-registry.js';
import { busyboxLayer, writeOciLayout } from '../test/oci-fixtures.js';
import { describePrivileged } from '../test/privileged.js';

const lidBin = new URL('../bin/lid.js', import.meta.url).pathname;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-cli-images-'));
const dataDir = path.join(tmp, 'data');
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function lid(args: string[]) {
  const r = spawnSync(process.execPath, [lidBin, ...args], {
    encoding: 'utf8',
    env: { ...process.env, LID_DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 120_000,
  });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describePrivileged('lid images', () => {
  let layout: string;
  let manifestDigest: string;
  beforeAll(async () => {
    layout = path.join(tmp, 'layout');
    ({ manifestDigest } = await writeOciLayout(layout, {
      layers: [busyboxLayer([{ type: 'directory', name: 'app' }])],
      refName: 'demo/app:1',
      config: {
        Entrypoint: ['sh', '-c'],
        Cmd: ['echo default command'],
        Env: ['GREETING=from-image'],
        WorkingDir: '/app',
        User: 'app',
      },
    }));
  });

  it('imports a layout and lists it, quietly when stderr is not a terminal', () => {
    const imp = lid(['images', 'import', layout]);
    expect(imp).toMatchObject({ code: 0, out: `demo/app:1 ${manifestDigest}\n`, err: '' });
    const ls = lid(['images', 'ls', '--json']);
    expect(JSON.parse(ls.out)).toEqual([expect.objectContaining({ name: 'demo/app:1', manifestDigest, layers: 1 })]);
    expect(lid(['images', 'ls']).out).toMatch(/^NAME\s+DIGEST\s+SIZE\s+LAYERS\s+LAST USED\ndemo\/app:1\s/);
  });

  it('imports the same archive twice: the second time exits 0 and says the image is unchanged', () => {
    const archive = path.join(tmp, 'twice.tar');
    spawnSync('tar', ['-cf', archive, '-C', layout, '.']);
    const line = `twice/app:1 ${manifestDigest}\n`;
    expect(lid(['images', 'import', archive, '--name', 'twice/app:1'])).toMatchObject({ code: 0, out: line, err: '' });
    expect(lid(['images', 'import', archive, '--name', 'twice/app:1'])).toEqual({
      code: 0,
      out: line,
      err: 'lid images import: twice/app:1 is already in the store, unchanged\n',
    });
    expect(lid(['images', 'rm', 'twice/app:1']).code).toBe(0);
  });

  it('runs an image with its config as the defaults, and the job’s own command and env on top', () => {
    const byDefault = lid(['sandbox', 'run', '--image', 'demo/app:1']);
    expect(byDefault).toMatchObject({ code: 0, out: 'default command\n' });
    const own = lid([
      'sandbox',
      'run',
      '--image',
      'demo/app:1',
      '--env',
      'EXTRA=1',
      '--',
      'echo $GREETING $EXTRA; pwd; id -u',
    ]);
    expect(own.out).toBe('from-image 1\n/app\n1234\n');
  });

  it('inspects, removes and collects an image', () => {
    expect(JSON.parse(lid(['images', 'inspect', 'demo/app:1']).out)).toMatchObject({
      name: 'demo/app:1',
      manifestDigest,
      config: { config: { User: 'app' } },
    });
    expect(lid(['images', 'rm', 'demo/app:1']).code).toBe(0);
    expect(lid(['images', 'gc']).out).toMatch(/^removed 3 blobs and 1 layers, freed /);
    expect(JSON.parse(lid(['images', 'ls', '--json']).out)).toEqual([]);
  });

  it('says what to fix for unknown images and bad sources', () => {
    const missing = lid(['sandbox', 'run', '--image', 'no/such:1', '--', 'true']);
    expect(missing.code).toBe(125);
    expect(missing.err).toMatch(/no image named no\/such:1/);
    const bad = lid(['images', 'import', '/no/such/file']);
    expect(bad).toMatchObject({ code: 1, err: 'lid images import: /no/such/file does not exist\n' });
    expect(lid(['images', 'rm', 'nope']).err).toMatch(/no image named nope:latest/);
    expect(lid(['images', 'gc', '--max-size', 'lots']).err).toMatch(/"lots" is not a size/);
  });
});

/**
 * The environment of an operator whose docker login (in a home of its own) holds `login` for `host`, with none of
 * the variables that would widen a tenant's policy or point at other auth files.
 */
function operatorEnv(label: string, host: string, login: { username: string; password: string }): NodeJS.ProcessEnv {
  const home = path.join(tmp, `${label}-home`);
  const auth = Buffer.from(`${login.username}:${login.password}`).toString('base64');
  fs.mkdirSync(path.join(home, '.docker'), { recursive: true });
  fs.writeFileSync(path.join(home, '.docker', 'config.json'), JSON.stringify({ auths: { [host]: { auth } } }));
  const env: NodeJS.ProcessEnv = { ...process.env, LID_DATA_DIR: path.join(tmp, label), HOME: home };
  delete env.LID_ALLOW_PRIVATE_EGRESS;
  delete env.LID_REGISTRY_HOST_CREDENTIALS;
  delete env.REGISTRY_AUTH_FILE;
  delete env.XDG_RUNTIME_DIR;
  return env;
}

describePrivileged('lid images pull (the operator’s own request)', () => {
  it('reaches a registry on loopback under the default egress policy, with the login in the auth file', async () => {
    const image = await testImage();
    const login = { username: 'operator', password: 'pw' };
    const registry = await startHostileRegistry(image, { basic: login });
    const env = operatorEnv('pulled', registry.host, login);
    try {
      // Asynchronous: the registry answers from this very process.
      const { stdout } = await promisify(execFile)(
        process.execPath,
        [lidBin, 'images', 'pull', '--plain-http', `${registry.host}/test/app:v1`],
        { env, timeout: 120_000 },
      );
      expect(stdout).toBe(`${registry.host}/test/app:v1 ${image.manifest.digest}\n`);
      expect(registry.seen.map((r) => r.authorization)).toContain(
        `Basic ${Buffer.from('operator:pw').toString('base64')}`,
      );
    } finally {
      await registry.close();
    }
  });
});

describePrivileged('lid sandbox run --image from a registry (the operator’s own pull, as lid images pull)', () => {
  it('pulls a missing image on first use, from loopback with the host login, then runs it from the store', async () => {
    const image = await testImage(busyboxLayer([{ type: 'file', name: 'hello.txt', content: 'pulled\n' }]));
    const login = { username: 'operator', password: 'pw' };
    const registry = await startHostileRegistry(image, { basic: login });
    const env = operatorEnv('sandbox-pull', registry.host, login);
    const name = `${registry.host}/test/app:v1`;
    // Asynchronous: the registry answers from this very process.
    const run = () =>
      promisify(execFile)(
        process.execPath,
        [lidBin, 'sandbox', 'run', '--image', name, '--plain-http', '--', 'cat', '/hello.txt'],
        { env, timeout: 120_000 },
      );
    try {
      const first = await run();
      expect(first).toEqual({ stdout: 'pulled\n', stderr: `lid: pulling image ${name} (first use)\n` });
      expect(registry.seen.map((r) => r.authorization)).toContain(
        `Basic ${Buffer.from('operator:pw').toString('base64')}`,
      );
      const requests = registry.seen.length;
      expect(await run()).toEqual({ stdout: 'pulled\n', stderr: '' });
      expect(registry.seen).toHaveLength(requests);
    } finally {
      await registry.close();
    }
  });
});

describePrivileged('lid sandbox run --image with the recipe images', () => {
  it('builds python on first use and runs it; node and bash the same way', { timeout: 600_000 }, () => {
    const python = lid(['sandbox', 'run', '--image', 'python', '--', 'python3', '-c', 'print(6*7)']);
    expect(python).toMatchObject({ code: 0, out: '42\n' });
    expect(python.err).toContain('building image python from its recipe (first use)');
    expect(lid(['images', 'build', 'node']).out).toMatch(/^node:latest sha256:[a-f0-9]{64}\n$/);
    expect(lid(['sandbox', 'run', '--image', 'node', '--', 'node', '-e', 'console.log(6*7)'])).toMatchObject({
      code: 0,
      out: '42\n',
    });
    expect(
      lid(['sandbox', 'run', '--image', 'bash', '--', 'bash', '-c', 'echo $((6*7)); ls / | head -1']),
    ).toMatchObject({ code: 0, out: '42\nbin\n' });
    const ls = JSON.parse(lid(['images', 'ls', '--json']).out) as { name: string }[];
    expect(ls.map((i) => i.name)).toEqual(['bash:latest', 'node:latest', 'python:latest']);
  });
});

describePrivileged('progress on a terminal', () => {
  it(
    'shows long steps as one rewritten line on a terminal (and nothing in a pipe, tested above)',
    { timeout: 300_000 },
    () => {
      // script(1) gives the command a pseudo-terminal, as a person's shell would.
      const r = spawnSync('script', ['-qec', `${process.execPath} ${lidBin} images build busybox`, '/dev/null'], {
        encoding: 'utf8',
        env: { ...process.env, LID_DATA_DIR: path.join(tmp, 'tty') },
        timeout: 300_000,
      });
      expect(r.status).toBe(0);
      const redrawn = '\r\u001b[2K'; // carriage return + erase line: the progress line is rewritten in place
      expect(r.stdout).toContain(`${redrawn}unpacking packages 100% (1/1)`);
      expect(r.stdout).toMatch(/busybox:latest sha256:[a-f0-9]{64}/);
    },
  );
});

describePrivileged('lid images build, twice', () => {
  it('builds busybox, and the second build exits 0 and says the image is unchanged', { timeout: 300_000 }, () => {
    const env = { LID_DATA_DIR: path.join(tmp, 'build-twice') };
    const first = spawnSync(process.execPath, [lidBin, 'images', 'build', 'busybox'], {
      encoding: 'utf8',
      env: { ...process.env, ...env },
      timeout: 300_000,
    });
    expect(first.status, first.stderr).toBe(0);
    const again = spawnSync(process.execPath, [lidBin, 'images', 'build', 'busybox'], {
      encoding: 'utf8',
      env: { ...process.env, ...env },
      timeout: 300_000,
    });
    expect({ code: again.status, out: again.stdout, err: again.stderr }).toEqual({
      code: 0,
      out: first.stdout,
      err: 'lid images build: busybox:latest is already in the store, unchanged\n',
    });
  });
});
