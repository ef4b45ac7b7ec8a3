/**
 * The builds the upgrade specs (test/systemd/upgrade.spec.ts) start from, built on the host before the VM
 * boots, under .vm-work/builds/ (inside the checkout, so the VM sees them at the same paths):
 *   previous  the previous commit (HEAD~1), as a site upgrading by one commit runs it
 *   salted    this checkout's sources built with another build id (KRSI_BUILD_ID_SALT): HEAD~1 may have the
 *             same BPF build id as HEAD, and then only this one exercises the cross-build path every run
 *   v0.1.0    commit RELEASE_0_1_0, the last before build ids existed: what sites run today
 * A commit is exported with `git archive` (nothing is registered in the repository, unlike a worktree)
 * and built as `npm run build` would, only the parts a node runs (the BPF objects, the agent, prolog and
 * epilog); it shares this checkout's node_modules when its lockfile is the same. A commit's build is kept
 * and reused by later runs; the salted build mirrors the working tree and is redone every run.
 */
import { existsSync, readFileSync } from 'node:fs';
import { cp, mkdir, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { workDir } from './paths.js';

/** the last commit before build ids: the layout and programs of 0.1.0 */
export const RELEASE_0_1_0 = '6712c18';
/** hashed into the salted build's id */
export const UPGRADE_SALT = 'krsi-upgrade-test';
/** the environment variable that carries the prepared builds into the VM (JSON) */
export const UPGRADE_BUILDS_ENV = 'KRSI_UPGRADE_BUILDS';

export interface UpgradeBuild {
  name: 'previous' | 'salted' | 'v0.1.0';
  /** what it is, for test titles and messages */
  title: string;
  /** a folder laid out as install.sh's /usr/lib/slurm-krsi: dist/, build/bpf/, node_modules, package.json */
  root: string;
  /** its BPF build id, or null for a build from before build ids */
  buildId: string | null;
}

export interface UpgradeBuilds {
  builds: UpgradeBuild[];
  /** builds that could not be made, with the reason (the specs fail naming it) */
  problems: string[];
  seconds: number;
}

const NODE_SOURCES = ['agent/**/*.ts', 'libbpf-ts/**/*.ts', 'prolog/**/*.ts', 'epilog/**/*.ts'];

async function git(root: string, args: string[]): Promise<string> {
  return (await execa('git', ['-C', root, ...args])).stdout.trim();
}

function buildIdOf(buildRoot: string): string | null {
  const file = join(buildRoot, 'build/bpf/krsi.build-id');
  return existsSync(file) ? readFileSync(file, 'utf8').trim() : null;
}

/** node_modules of `dir`: this checkout's when the lockfiles agree, else its own (npm ci) */
async function provideModules(root: string, dir: string): Promise<void> {
  const same = readFileSync(join(root, 'package-lock.json'), 'utf8') === readFileSync(join(dir, 'package-lock.json'), 'utf8');
  if (same) {
    await symlink(join(root, 'node_modules'), join(dir, 'node_modules'));
  } else {
    await execa('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: dir });
  }
}

/** the BPF objects and the node's TypeScript (agent, libbpf-ts, prolog, epilog) of a source tree in `dir` */
async function buildTree(root: string, dir: string, env: Record<string, string> = {}): Promise<void> {
  await execa('bash', [join(dir, 'bpf/build.sh')], { env });
  const tsconfig = join(dir, 'tsconfig.upgrade-build.json');
  await writeFile(tsconfig, JSON.stringify({ extends: './tsconfig.json', include: NODE_SOURCES }));
  await execa(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', tsconfig], { cwd: dir });
}

async function buildCommit(root: string, commit: string, dir: string): Promise<void> {
  if (existsSync(join(dir, '.complete'))) return;
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await execa('bash', ['-c', 'git -C "$0" archive "$1" | tar -x -C "$2"', root, commit, dir]);
  await provideModules(root, dir);
  await buildTree(root, dir);
  await writeFile(join(dir, '.complete'), `${commit}\n`);
}

/** where the salted build is made */
export function saltedBuildDir(): string {
  return join(workDir(), 'builds', 'salted');
}

/**
 * This checkout's sources, its built dist/ and man pages, with the BPF objects rebuilt under another build
 * id, in `dir`: a tree install.sh's layout runs from, and one scripts/package.sh packages (the next version
 * the package specs upgrade to; the Node.js runtime comes from this checkout's cache, fetched once).
 * Returns the new build id.
 */
export async function buildSalted(root: string, dir = saltedBuildDir()): Promise<string | null> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'build'), { recursive: true });
  for (const name of ['bpf', 'dist', 'package.json', 'package-lock.json', 'deploy', 'scripts', 'slurm', 'README.md', 'build/man']) {
    await cp(join(root, name), join(dir, name), { recursive: true });
  }
  await symlink(join(root, 'node_modules'), join(dir, 'node_modules'));
  await mkdir(join(root, 'build/pkg-cache'), { recursive: true });
  await symlink(join(root, 'build/pkg-cache'), join(dir, 'build/pkg-cache'));
  await execa('bash', [join(dir, 'bpf/build.sh')], { env: { KRSI_BUILD_ID_SALT: UPGRADE_SALT } });
  return buildIdOf(dir);
}

/** Make (or reuse) every upgrade source; a source that cannot be made is a problem, not an exception. */
export async function prepareUpgradeBuilds(root: string, log: (msg: string) => void): Promise<UpgradeBuilds> {
  const started = Date.now();
  const base = join(workDir(), 'builds');
  await mkdir(base, { recursive: true });
  const builds: UpgradeBuild[] = [];
  const problems: string[] = [];
  const keep = new Set<string>(['salted']);

  const commits: { name: 'previous' | 'v0.1.0'; rev: string; what: string }[] = [
    { name: 'previous', rev: 'HEAD~1', what: 'the previous commit (HEAD~1)' },
    { name: 'v0.1.0', rev: RELEASE_0_1_0, what: `0.1.0 (commit ${RELEASE_0_1_0}, before build ids)` },
  ];
  for (const c of commits) {
    let sha: string;
    try {
      sha = await git(root, ['rev-parse', '--verify', '--quiet', `${c.rev}^{commit}`]);
    } catch {
      problems.push(`${c.what}: commit ${c.rev} is not in this clone (a shallow clone? fetch the history: git fetch --unshallow)`);
      continue;
    }
    const dir = join(base, sha);
    keep.add(sha);
    try {
      const t0 = Date.now();
      const reused = existsSync(join(dir, '.complete'));
      await buildCommit(root, sha, dir);
      log(`upgrade source ${c.name}: ${sha.slice(0, 12)} ${reused ? 'reused' : `built in ${((Date.now() - t0) / 1000).toFixed(0)} s`}`);
      builds.push({ name: c.name, title: `${c.what}, ${sha.slice(0, 12)}`, root: dir, buildId: buildIdOf(dir) });
    } catch (err) {
      problems.push(`${c.what}: cannot build ${sha.slice(0, 12)} in ${dir}: ${(err as Error).message}`);
    }
  }

  try {
    const dir = saltedBuildDir();
    const t0 = Date.now();
    const buildId = await buildSalted(root, dir);
    log(`upgrade source salted: built in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    builds.push({ name: 'salted', title: 'this checkout\'s sources under another build id', root: dir, buildId });
  } catch (err) {
    problems.push(`this checkout's sources under another build id: ${(err as Error).message}`);
  }

  for (const name of await readdir(base)) if (!keep.has(name)) await rm(join(base, name), { recursive: true, force: true });
  return { builds, problems, seconds: (Date.now() - started) / 1000 };
}
