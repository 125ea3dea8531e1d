// The package as a user's program sees it: `import { LidClient, LidQueueClient } from 'lid'` resolves through
// package.json "exports" to the build (dist/common/index.js, with its .d.ts), loads without connecting to anything,
// and gives TypeScript the API's types, so a misspelt field fails to compile. Needs `npm run build` first.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, expect, it } from 'vitest';

const root = new URL('..', import.meta.url).pathname;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lid-consumer-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

it('resolves from its name to the build, and loads without connecting to anything', () => {
  expect(fs.existsSync(path.join(root, 'dist/common/index.js')), 'run npm run build first').toBe(true);
  const script = "import * as lid from 'lid'; console.log(JSON.stringify(Object.keys(lid)));";
  // Run from the package's own directory, where Node resolves the package's name to itself through "exports".
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: root,
    encoding: 'utf8',
    timeout: 30_000,
  });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
  expect(JSON.parse(r.stdout)).toEqual(
    expect.arrayContaining(['LidClient', 'LidQueueClient', 'LidApiError', 'isLidApiError', 'LidError']),
  );
});

it("gives a TypeScript user the API's types", () => {
  fs.mkdirSync(path.join(tmp, 'node_modules'));
  fs.symlinkSync(root, path.join(tmp, 'node_modules/lid'));
  fs.writeFileSync(path.join(tmp, 'package.json'), JSON.stringify({ name: 'consumer', type: 'module' }));
  const compilerOptions = {
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: ['node'],
    typeRoots: [path.join(root, 'node_modules/@types')],
  };
  fs.writeFileSync(path.join(tmp, 'tsconfig.json'), JSON.stringify({ compilerOptions, files: ['main.ts'] }));
  const tsc = (source: string) => {
    fs.writeFileSync(path.join(tmp, 'main.ts'), source);
    const r = spawnSync(process.execPath, [path.join(root, 'node_modules/typescript/bin/tsc'), '-p', tmp], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    return { code: r.status, out: r.stdout };
  };
  const program = (job: string) => `
    import { LidClient, LidQueueClient, isLidApiError, type JobRecord } from 'lid';
    const lid = new LidClient({ url: 'http://127.0.0.1:8080', apiKey: 'lid_x' });
    export async function run(): Promise<string | null | undefined> {
      try {
        const record: JobRecord = await lid.wait((await lid.submit(${job})).id);
        for await (const event of lid.events(record.id)) if (event.type === 'output') return event.data;
        return record.result?.stdout;
      } catch (e) {
        if (isLidApiError(e)) return e.code;
        throw e;
      }
    }
    export const queue = LidQueueClient;`;
  expect(tsc(program("{ image: 'python', command: ['python3', '-c', 'print(42)'] }"))).toEqual({ code: 0, out: '' });
  const misspelt = tsc(program("{ imgae: 'python' }"));
  expect(misspelt.code).not.toBe(0);
  expect(misspelt.out).toMatch(/imgae/);
});
