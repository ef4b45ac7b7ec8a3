/**
 * `npm test`: the unit tests on the host, then the kernel, agent and Slurm tests in the VM, then the
 * packages and the agent under systemd in the VM, and one closing line that counts them all: "N passed,
 * N failed". Every suite always runs; the exit status is non-zero if any failed.
 *
 * The VM parts are the kernel group (one boot), the package group (the .deb and the .rpm built on the
 * host, then installed, upgraded, removed and purged in one boot under systemd) and the systemd group
 * (the unit under real systemd: readiness, a restart while jobs start, upgrades from older builds, a
 * reboot with persistent state; two boots).
 */
import { execa } from 'execa';
import { join } from 'node:path';
import { parseMochaSummary } from './vm/mocha-summary.js';
import { repoRoot } from './vm/paths.js';

const root = repoRoot();

async function run(title: string, file: string, args: string[], env: Record<string, string> = {}): Promise<{ passed: number; failed: number; exitCode: number }> {
  console.log(`\n==> ${title}`);
  let out = '';
  const proc = execa(file, args, { cwd: root, reject: false, all: true, buffer: false, env: { FORCE_COLOR: '0', ...env } });
  proc.all!.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    process.stdout.write(chunk);
  });
  const r = await proc;
  const exitCode = r.exitCode ?? 1;
  // the VM runner ends with its own "N passed, N failed"; mocha on the host ends with "N passing"
  const own = /^(\d+) passed, (\d+) failed$/m.exec(out.split('\n').filter((l) => /^\d+ passed, \d+ failed$/.test(l)).pop() ?? '');
  if (own) return { passed: Number(own[1]), failed: Number(own[2]), exitCode };
  const summary = parseMochaSummary(out);
  if (!summary) return { passed: 0, failed: 1, exitCode: exitCode || 1 };
  return { passed: summary.passing, failed: summary.failing, exitCode };
}

const unit = await run('unit tests (host)', process.execPath, [join(root, 'node_modules/mocha/bin/mocha.js'), '--import=tsx/esm', 'test/unit/**/*.test.ts']);
const vm = await run('kernel, agent and Slurm tests (VM)', process.execPath, [join(root, 'dist/test/vm/run-kernel-specs.js')], { KRSI_VM_GROUP: 'kernel' });
const pkg = await run('the packages under systemd (VM)', process.execPath, [join(root, 'dist/test/vm/run-kernel-specs.js')], { KRSI_VM_GROUP: 'package' });
const systemd = await run('the agent under real systemd: restarts, upgrades, a reboot (VM)', process.execPath, [join(root, 'dist/test/vm/run-kernel-specs.js')], { KRSI_VM_GROUP: 'systemd' });
const all = [unit, vm, pkg, systemd];
console.log(`\nunit: ${unit.passed} passed, ${unit.failed} failed; VM: ${vm.passed} passed, ${vm.failed} failed; packages: ${pkg.passed} passed, ${pkg.failed} failed; systemd: ${systemd.passed} passed, ${systemd.failed} failed`);
const passed = all.reduce((n, r) => n + r.passed, 0);
const failed = all.reduce((n, r) => n + r.failed, 0);
console.log(`${passed} passed, ${failed} failed`);
process.exit(all.some((r) => r.exitCode !== 0) || failed > 0 ? 1 : 0);
