// Where the harness lives on disk: the repository root (found from this file, so it works both from
// test/vm/*.ts under tsx and from dist/test/vm/*.js) and the gitignored work directory beside it.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const PACKAGE_NAME = 'slurm-krsi';

/** The repository root: the nearest ancestor of this file whose package.json is slurm-krsi's. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        const parsed = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown };
        if (parsed.name === PACKAGE_NAME) return dir;
      } catch {
        // not the manifest we are looking for; keep climbing
      }
    }
    const parent = resolve(dir, '..');
    if (parent === dir) {
      throw new Error(`krsi-vm: cannot find the ${PACKAGE_NAME} repository root above ${fileURLToPath(import.meta.url)}`);
    }
    dir = parent;
  }
}

/** The harness's cache and per-run folders (gitignored). */
export function workDir(): string {
  return join(repoRoot(), '.vm-work');
}
