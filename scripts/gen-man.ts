/**
 * Writes the man pages into build/man/ (npm run build:man, part of npm run build), from the same data as
 * `krsi-agent --help`, `krsictl --help` and the config key table. Generated at every build and never
 * committed, so that they cannot drift from the code.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderRoff } from '../agent/manual/manual.js';
import { MAN_PAGES, manFileName } from '../agent/manual/pages.js';
import { PACKAGE_ROOT } from '../agent/paths.js';

const { version } = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };
const dir = join(PACKAGE_ROOT, 'build', 'man');
mkdirSync(dir, { recursive: true });
for (const page of MAN_PAGES) writeFileSync(join(dir, manFileName(page)), renderRoff(page, `slurm-krsi ${version}`));
process.stdout.write(`wrote ${MAN_PAGES.map(manFileName).join(', ')} into ${dir}\n`);
