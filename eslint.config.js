// Flat config: typescript-eslint's recommended rules over every TypeScript source; build outputs ignored.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // .vm-work: the VM harness's work folder (old builds for the upgrade specs, run results)
  { ignores: ['dist/**', 'build/**', 'node_modules/**', '.vm-work/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
);
