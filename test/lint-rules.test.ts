// The import rules (who may import whom) as the project's own ESLint config enforces them (eslint.config.js, run by
// `npm test` through `npm run lint`): a deliberately wrong import in a file of each area is reported, and the
// imports the rules allow are not. The files are virtual (lintText with a path inside the project), so nothing is
// written to the tree; type information is left out, since these rules read only the import's text.
import path from 'node:path';
import { ESLint } from 'eslint';
import { beforeAll, describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..');
let eslint: ESLint;

beforeAll(() => {
  eslint = new ESLint({
    cwd: root,
    overrideConfig: { languageOptions: { parserOptions: { project: null, projectService: false } } },
    ruleFilter: ({ ruleId }) => ruleId === 'no-restricted-imports' || ruleId === 'no-restricted-syntax',
  });
});

/** The import-rule messages ESLint reports for `code` as the file at `file` (relative to the project). */
async function reported(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath: path.join(root, file) });
  const fatal = result!.messages.filter((m) => m.fatal);
  if (fatal.length) throw new Error(`${file} did not parse: ${fatal[0]!.message}`);
  return result!.messages.map((m) => `${m.ruleId}: ${m.message}`);
}

const importing = (spec: string) => `import { x } from '${spec}';\nexport const y = x;\n`;

describe('import rules (eslint.config.js)', () => {
  it.each([
    // runtime/ imports only common/
    ['runtime/x.ts', '../images/store.js'],
    ['runtime/net/x.ts', '../../worker/worker.js'],
    ['runtime/x.ts', '../gateway/app.js'],
    // images/ imports only common/
    ['images/x.ts', '../runtime/index.js'],
    ['images/registry/x.ts', '../../runtime/index.js'],
    ['images/x.ts', '../worker/job-runner.js'],
    // gateway/ never imports worker/, runtime/ or images/
    ['gateway/x.ts', '../runtime/index.js'],
    ['gateway/x.ts', '../worker/worker.js'],
    ['gateway/x.ts', '../images/store.js'],
    ['gateway/compat/x.ts', '../../images/store.js'],
    // worker/ never imports gateway/ or cli/
    ['worker/x.ts', '../gateway/submission.js'],
    ['worker/x.ts', '../cli/progress.js'],
    // common/ imports none of the areas above it
    ['common/x.ts', '../runtime/index.js'],
    ['common/x.ts', '../images/store.js'],
    ['common/x.ts', '../worker/worker.js'],
    ['common/x.ts', '../gateway/app.js'],
    ['common/x.ts', '../cli/main.js'],
    // nothing imports cli/
    ['images/x.ts', '../cli/progress.js'],
    ['gateway/x.ts', '../cli/admin-token.js'],
    ['runtime/x.ts', '../cli/main.js'],
    // product code never imports a test helper
    ['runtime/x.ts', '../test/privileged.js'],
    ['gateway/x.ts', '../load-tests/load.js'],
  ])('reports %s importing %s', async (file, spec) => {
    const messages = await reported(file, importing(spec));
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatch(
      new RegExp(
        `^no-restricted-imports: .*${file.split('/')[0]}/ must not import .*\\(import rules: eslint.config.js\\)$`,
      ),
    );
  });

  it('reports type-only imports, re-exports and import() the same way', async () => {
    expect(await reported('gateway/x.ts', "import type { Job } from '../worker/job-runner.js';\n")).toHaveLength(1);
    expect(await reported('gateway/x.ts', "export { SandboxRuntime } from '../runtime/index.js';\n")).toHaveLength(1);
    expect(await reported('gateway/x.ts', "export * from '../images/store.js';\n")).toHaveLength(1);
    const dynamic = await reported('common/x.ts', "export const load = () => import('../runtime/index.js');\n");
    expect(dynamic).toEqual([expect.stringMatching(/^no-restricted-syntax: common\/ must not import runtime/)]);
  });

  it.each([
    ['runtime/x.ts', '../common/errors.js'],
    ['runtime/net/x.ts', '../syscalls.js'],
    ['runtime/x.ts', './syscalls.js'],
    ['images/x.ts', '../common/errors.js'],
    ['images/registry/x.ts', '../../common/policed-fetch.js'],
    ['images/registry/x.ts', '../store.js'],
    ['gateway/x.ts', '../common/job.js'],
    ['gateway/compat/x.ts', '../app.js'],
    ['worker/x.ts', '../runtime/index.js'],
    ['worker/x.ts', '../images/acquire.js'],
    ['worker/x.ts', '../common/job.js'],
    ['common/x.ts', './errors.js'],
    ['cli/x.ts', '../gateway/server.js'],
    ['cli/x.ts', '../worker/worker.js'],
    ['cli/x.ts', '../runtime/index.js'],
    ['cli/x.ts', './progress.js'],
    // tests and load tests may import anything
    ['gateway/x.test.ts', '../runtime/index.js'],
    ['images/x.test.ts', '../runtime/index.js'],
    ['common/x.test.ts', '../cli/main.js'],
    ['test/x.ts', '../cli/main.js'],
    ['load-tests/x.ts', '../runtime/index.js'],
  ])('allows %s importing %s', async (file, spec) => {
    expect(await reported(file, importing(spec))).toEqual([]);
  });
});
