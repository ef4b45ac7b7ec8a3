// Entry point of `npm run test:vm`: boots the VM for each group of specs, streams the console, and exits
// with the specs' status. The last line printed is always "N passed, N failed", over every boot.
//
// Groups:
//   kernel   dist/test/kernel/**/*.spec.js in one boot whose PID 1 is the harness's bash init: the
//            programs, the agent and Slurm, started by the specs themselves
//   systemd  dist/test/systemd/**/*.spec.js under real systemd (test/systemd/node.ts): the agent's unit,
//            readiness, restarts and upgrades in a first boot, which ends by losing power; then a second
//            boot with the state the first left on a persistent host folder (the reboot specs).
//   package  dist/test/package/**/*.spec.js under real systemd, in one boot of a node with nothing of
//            slurm-krsi on it: the .deb and the .rpm installed, upgraded, removed and purged as an admin
//            does, with the node's own Node.js hidden. The packages are built on the host first
//            (package-builds.ts).
// The builds the upgrade specs of the kernel and systemd groups start from are made on the host first
// (upgrade-builds.ts).
//
// Environment:
//   KRSI_VM_GROUP       run only this group (kernel, systemd or package)
//   KRSI_VM_GREP        only run tests matching this pattern (mocha --grep)
//   KRSI_VM_KERNEL      kernel version to boot (default: newest /boot/vmlinuz-*-amd64)
//   KRSI_VM_TIMEOUT_S   kill a VM after this many seconds (default 3600: a safety net, not a speed check)
//
// Before mocha starts, the guest times three `node -e 0` and exports their median over the reference
// as KRSI_VM_PACE (pace.ts): every deadline in the specs, mocha's own per-test timeout included, is
// stretched by it, so a slow or busy build machine gets proportionally longer safety nets.
import { existsSync } from 'node:fs';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';

import { NODE_UNITS, PERSIST, PERSIST_TAG, SETUP_UNIT, nodeBootUnits } from '../systemd/node.js';
import { BOOT_ENV, BOOTS_ENV } from '../systemd/boot.js';
import { parseMochaSummary, shellQuote } from './mocha-summary.js';
import { PACE_ENV, REFERENCE_NODE_START_MS } from './pace.js';
import { repoRoot, workDir } from './paths.js';
import { SYSTEMD_RUN_UNIT, runInVm, type RunInVmOptions, type RunInVmResult } from './qemu.js';
import { UPGRADE_BUILDS_ENV, prepareUpgradeBuilds } from './upgrade-builds.js';
import { PACKAGES_ENV, preparePackages } from './package-builds.js';

/** mocha's per-test safety net before scaling; tests that need longer set their own, also scaled */
const BASE_TEST_TIMEOUT_MS = 180_000;

/** one VM boot: which specs run in it, with what environment */
interface Boot {
  title: string;
  specs: string;
  env: Record<string, string>;
  vm: Pick<RunInVmOptions, 'systemd' | 'shares'>;
}

function specScript(root: string, boot: Boot, grep: string | undefined): string {
  const node = shellQuote(process.execPath);
  const mocha = [
    node,
    'node_modules/mocha/bin/mocha.js',
    '--timeout', '"$mocha_timeout"',
    // a failed test can leave a process (an agent) that keeps node's event loop alive: end anyway
    '--exit',
    '--reporter', 'spec',
    // in file name order: the systemd group's files are numbered in the order their boot needs them
    '--sort',
    ...(grep === undefined ? [] : ['--grep', shellQuote(grep)]),
    shellQuote(boot.specs),
  ].join(' ');
  return [
    'set -u',
    `cd ${shellQuote(root)}`,
    ...Object.entries(boot.env).map(([k, v]) => `export ${k}=${shellQuote(v)}`),
    'echo "krsi-vm: kernel $(uname -r); lsm $(cat /sys/kernel/security/lsm)"',
    // the run's pace: the median of three Node.js starts against the reference (the first start warms caches)
    `${node} -e 0`,
    'starts=()',
    'for _ in 1 2 3; do t0=$(date +%s%N); ' + `${node} -e 0; ` + 'starts+=($(( ($(date +%s%N) - t0) / 1000000 ))); done',
    'median=$(printf "%s\\n" "${starts[@]}" | sort -n | sed -n 2p)',
    `export ${PACE_ENV}=$(awk -v m="$median" 'BEGIN { p = m / ${REFERENCE_NODE_START_MS}; if (p < 1) p = 1; printf "%.2f", p }')`,
    `mocha_timeout=$(awk -v p="$${PACE_ENV}" 'BEGIN { printf "%d", p * ${BASE_TEST_TIMEOUT_MS} }')`,
    `echo "krsi-vm: node -e 0 took \${starts[*]} ms (reference ${REFERENCE_NODE_START_MS} ms): deadlines x$${PACE_ENV}, mocha timeout $mocha_timeout ms"`,
    `${mocha} 2>&1 | tee /krsi-results/mocha.log`,
    'exit "${PIPESTATUS[0]}"',
    '',
  ].join('\n');
}

interface BootOutcome {
  passed: number;
  failed: number;
  exitCode: number;
}

async function runBoot(root: string, boot: Boot, grep: string | undefined, timeoutS: number): Promise<BootOutcome> {
  console.log(`\nkrsi-vm: ==> ${boot.title}`);
  const opts: RunInVmOptions = {
    ...boot.vm,
    script: specScript(root, boot, grep),
    timeoutMs: timeoutS * 1000,
    onConsole: (line) => process.stdout.write(`[vm] ${line}\n`),
  };
  if (process.env.KRSI_VM_KERNEL) opts.kernelVersion = process.env.KRSI_VM_KERNEL;

  let result: RunInVmResult;
  try {
    result = await runInVm(opts);
  } catch (err) {
    console.error(`\nkrsi-vm: harness failure (${boot.title}): ${(err as Error).message.replace(/^krsi-vm: /, '')}`);
    return { passed: 0, failed: 1, exitCode: 2 };
  }
  let log: string;
  try {
    log = await readFile(join(result.resultsDir, 'mocha.log'), 'utf8');
  } catch {
    log = result.console;
  }
  const summary = parseMochaSummary(log);
  console.log(
    `\nkrsi-vm: ${boot.title}: waited ${result.lockWaitSeconds.toFixed(1)} s for the VM lock, boot ${result.bootSeconds.toFixed(1)} s, ` +
      `total ${result.totalSeconds.toFixed(1)} s, exit status ${result.exitCode}, results in ${result.resultsDir}`,
  );
  if (summary === undefined) {
    console.error(`krsi-vm: ${boot.title}: mocha printed no summary (it crashed or found no spec files)`);
    return { passed: 0, failed: 1, exitCode: result.exitCode === 0 ? 1 : result.exitCode };
  }
  if (summary.pending > 0) console.log(`krsi-vm: ${boot.title}: ${summary.pending} pending`);
  console.log(`krsi-vm: ${boot.title}: ${summary.passing} passed, ${summary.failing} failed`);
  return { passed: summary.passing, failed: summary.failing, exitCode: result.exitCode };
}

const SYSTEMD_BOOTS = 2;

/** the systemd group: a fresh persistent folder, and its boots */
async function systemdBoots(root: string, upgradeEnv: Record<string, string>): Promise<Boot[]> {
  const persist = join(workDir(), 'persist');
  await rm(persist, { recursive: true, force: true });
  await mkdir(persist, { recursive: true });
  const boots: Boot[] = [];
  for (let n = 1; n <= SYSTEMD_BOOTS; n++) {
    boots.push({
      title: `systemd boot ${n} of ${SYSTEMD_BOOTS}`,
      specs: 'dist/test/systemd/**/*.spec.js',
      env: { [BOOT_ENV]: String(n), [BOOTS_ENV]: String(SYSTEMD_BOOTS), ...upgradeEnv },
      vm: {
        systemd: { units: nodeBootUnits(root), wants: [SETUP_UNIT, ...NODE_UNITS] },
        shares: [{ hostPath: persist, tag: PERSIST_TAG, mountAt: PERSIST, readonly: false }],
      },
    });
  }
  return boots;
}

/** the package group: its packages built on the host, then one boot under systemd with nothing else */
async function packageBoot(root: string): Promise<Boot> {
  const packages = await preparePackages(root, (msg) => console.log(`krsi-vm: ${msg}`));
  return {
    title: 'package specs',
    specs: 'dist/test/package/**/*.spec.js',
    env: { [PACKAGES_ENV]: JSON.stringify(packages) },
    // the specs start once the system is up, as an admin's shell would. Nothing else of this boot pulls
    // in sysinit.target: the agent's unit would, when dpkg starts it, and systemd-tmpfiles-setup would
    // then empty /tmp under the specs' feet
    vm: { systemd: { units: { [`${SYSTEMD_RUN_UNIT}.d/after-basic.conf`]: '[Unit]\nWants=basic.target\nAfter=basic.target\n' } } },
  };
}

const GROUPS = ['kernel', 'systemd', 'package'] as const;

async function main(): Promise<number> {
  const root = repoRoot();
  if (!existsSync(join(root, 'dist/test/kernel'))) {
    console.error(`krsi-vm: ${join(root, 'dist/test/kernel')} does not exist: run \`npx tsc -p tsconfig.json\` first`);
    console.log('0 passed, 1 failed');
    return 2;
  }
  const grep = process.env.KRSI_VM_GREP || undefined;
  const timeoutS = Number(process.env.KRSI_VM_TIMEOUT_S ?? '3600');
  const group = process.env.KRSI_VM_GROUP || undefined;
  if (group !== undefined && !(GROUPS as readonly string[]).includes(group)) {
    console.error(`krsi-vm: KRSI_VM_GROUP=${group}: not a group (${GROUPS.join(', ')})`);
    console.log('0 passed, 1 failed');
    return 2;
  }
  const runs = (g: (typeof GROUPS)[number]): boolean => group === undefined || group === g;

  const boots: Boot[] = [];
  let failed = 0;
  if (runs('kernel') || runs('systemd')) {
    const upgrade = await prepareUpgradeBuilds(root, (msg) => console.log(`krsi-vm: ${msg}`));
    console.log(`krsi-vm: upgrade sources ready in ${upgrade.seconds.toFixed(0)} s${upgrade.problems.length > 0 ? `; problems: ${upgrade.problems.join('; ')}` : ''}`);
    const upgradeEnv = { [UPGRADE_BUILDS_ENV]: JSON.stringify(upgrade) };
    if (runs('kernel')) boots.push({ title: 'kernel specs', specs: 'dist/test/kernel/**/*.spec.js', env: upgradeEnv, vm: {} });
    if (runs('systemd')) boots.push(...(await systemdBoots(root, upgradeEnv)));
  }
  if (runs('package')) {
    try {
      boots.push(await packageBoot(root));
    } catch (err) {
      // the other groups still run; the missing packages count as a failure
      console.error(`krsi-vm: the packages could not be built, the package specs do not run: ${(err as Error).message}`);
      failed += 1;
    }
  }

  let passed = 0;
  let exitCode = 0;
  for (const boot of boots) {
    const outcome = await runBoot(root, boot, grep, timeoutS);
    passed += outcome.passed;
    failed += outcome.failed;
    if (exitCode === 0) exitCode = outcome.exitCode;
  }
  console.log(`${passed} passed, ${failed} failed`);
  return exitCode !== 0 ? exitCode : failed > 0 ? 1 : 0;
}

process.exitCode = await main();
