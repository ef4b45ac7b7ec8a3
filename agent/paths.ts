/**
 * Where the agent finds its own files. The package root is the folder holding package.json above this
 * module, both when running compiled (dist/agent/paths.js) and from source (agent/paths.ts); the BPF
 * objects are built into <root>/build/bpf.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('slurm-krsi: cannot find the package root (no package.json above the agent)');
    dir = parent;
  }
  return dir;
}

export const PACKAGE_ROOT = findPackageRoot();
export const BPF_DIR = join(PACKAGE_ROOT, 'build', 'bpf');
export const OBJECTS = {
  enforcement: join(BPF_DIR, 'krsi.bpf.o'),
  identity: join(BPF_DIR, 'identity.bpf.o'),
  preflight: join(BPF_DIR, 'preflight.bpf.o'),
} as const;
