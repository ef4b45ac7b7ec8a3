/**
 * The packages the package specs (test/package/) install, built on the host before the VM boots, under
 * .vm-work/packages/ (inside the checkout, so the VM sees them at the same paths), each by
 * scripts/package.sh, as `npm run package` builds them:
 *   current  this checkout, at package.json's version
 *   next     the next version (NEXT_VERSION_SUFFIX appended): this checkout's sources under another BPF
 *            build id (upgrade-builds.ts, the salted build), as a release with changed programs is
 *            what an upgrade must switch without a gap
 * Both are gzip-compressed (KRSI_PACKAGE_COMPRESSION): the same files as the default xz, built in a
 * quarter of the time. One after the other: both would fetch the Node.js runtime into the one cache
 * when it is not there yet. They are remade every run, from the working tree.
 */
import { readFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { readBuildId } from '../../agent/enforcement/generations.js';
import { workDir } from './paths.js';
import { buildSalted, saltedBuildDir } from './upgrade-builds.js';

/** the environment variable that carries the built packages into the VM (JSON: Packages) */
export const PACKAGES_ENV = 'KRSI_PACKAGES';
/** appended to package.json's version for the next version: 0.1.0 -> 0.1.0.1, later for dpkg and rpm */
export const NEXT_VERSION_SUFFIX = '.1';

export interface BuiltPackage {
  version: string;
  /** the BPF build id of its programs */
  buildId: string;
  deb: string;
  rpm: string;
}

export interface Packages {
  current: BuiltPackage;
  next: BuiltPackage;
  seconds: number;
}

/** scripts/package.sh of the built tree `tree` into `out`, at `version` */
async function packageTree(tree: string, out: string, version: string): Promise<BuiltPackage> {
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  const r = await execa('bash', [join(tree, 'scripts/package.sh'), out], {
    env: { KRSI_PACKAGE_COMPRESSION: 'gzip', KRSI_PACKAGE_VERSION: version },
    reject: false,
    all: true,
  });
  if (r.exitCode !== 0) throw new Error(`scripts/package.sh of ${tree} at version ${version} failed (${r.exitCode}):\n${r.all}`);
  return { version, buildId: readBuildId(join(tree, 'build/bpf/krsi.bpf.o')), deb: join(out, `slurm-krsi_${version}_amd64.deb`), rpm: join(out, `slurm-krsi-${version}-1.x86_64.rpm`) };
}

/** Build both versions' packages; throws naming what failed. */
export async function preparePackages(root: string, log: (msg: string) => void): Promise<Packages> {
  const started = Date.now();
  const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  const base = join(workDir(), 'packages');
  const salted = saltedBuildDir();
  await buildSalted(root, salted);
  const current = await packageTree(root, join(base, 'current'), version);
  const next = await packageTree(salted, join(base, 'next'), `${version}${NEXT_VERSION_SUFFIX}`);
  if (current.buildId === next.buildId) throw new Error(`the next version's build id ${next.buildId} is the current one's: the salted build did not change it`);
  const seconds = (Date.now() - started) / 1000;
  log(`packages built in ${seconds.toFixed(0)} s: ${current.version} (build ${current.buildId}) and ${next.version} (build ${next.buildId})`);
  return { current, next, seconds };
}
