// Lint: typescript-eslint's recommended rules plus a few that catch real bugs in async, syscall-heavy code, and the
// import rules of the design notes (who may import whom), so that a wrong import fails `npm test` instead of waiting for a reviewer.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

// Who may not import whom. runtime and images import only common (the worker hands layer directories from one to
// the other); the gateway reaches workers only through Redis; common is the bottom; nothing imports the cli, the
// top; and no product code imports a test helper. Tests (*.test.ts, test/, load-tests/) may import anything.
export const IMPORT_RULES = {
  runtime: { forbidden: ['images', 'worker', 'gateway', 'cli'], why: 'runtime/ imports only common/' },
  images: { forbidden: ['runtime', 'worker', 'gateway', 'cli'], why: 'images/ imports only common/' },
  gateway: { forbidden: ['worker', 'runtime', 'images', 'cli'], why: 'the gateway reaches workers only through Redis' },
  worker: { forbidden: ['gateway', 'cli'], why: 'the worker never imports the gateway or the cli' },
  common: {
    forbidden: ['runtime', 'images', 'worker', 'gateway', 'cli'],
    why: 'common/ is the bottom: shared contracts live here, not above',
  },
};
const TEST_DIRS = ['test', 'load-tests'];

/**
 * One config block per area. A relative import is matched by the top-level folder it climbs to ("../runtime/x.js"
 * from gateway/, "../../runtime/x.js" from gateway/compat/): no area has a subfolder named like another area, so
 * that reads the same at any depth. Static imports and re-exports go through no-restricted-imports; import()
 * through no-restricted-syntax, which the former does not see.
 */
function importRules() {
  return Object.entries(IMPORT_RULES).map(([area, { forbidden, why }]) => {
    const targets = [...forbidden, ...TEST_DIRS].join('|');
    const regex = `^(\\.\\./)+(${targets})(/|$)`;
    const areas = forbidden.map((a) => `${a}/`).join(', ');
    const message = `${area}/ must not import ${areas} nor test helpers: ${why} (import rules: eslint.config.js)`;
    return {
      files: [`${area}/**/*.ts`],
      ignores: ['**/*.test.ts'],
      rules: {
        'no-restricted-imports': ['error', { patterns: [{ regex, caseSensitive: true, message }] }],
        'no-restricted-syntax': [
          'error',
          // esquery ends a regex at the first "/", so the selector spells it \x2F.
          { selector: `ImportExpression[source.value=/${regex.replaceAll('/', '\\x2F')}/]`, message },
        ],
      },
    };
  });
}

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'var/**', 'build/**', '.proto/**', 'load-tests/reports/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { project: './tsconfig.check.json', tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  ...importRules(),
  { files: ['**/*.js', 'vitest.config.ts'], ...tseslint.configs.disableTypeChecked },
  { files: ['**/*.js'], languageOptions: { globals: globals.node } },
);
