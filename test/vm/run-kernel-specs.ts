// Entry point of `npm run test:vm`: boots one VM that runs every compiled kernel spec
// (dist/test/kernel/**/*.spec.js) under mocha, streams the console, and exits with mocha's status.
// The last line printed is always "N passed, N failed".
//
// Environment:
//   KRSI_VM_GREP        only run tests matching this pattern (mocha --grep)
//   KRSI_VM_KERNEL      kernel version to boot (default: newest /boot/vmlinuz-*-amd64)
//   KRSI_VM_TIMEOUT_S   kill the VM after this many seconds (default 3600: a safety net, not a speed check)
//
// Before mocha starts, the guest times three `node -e 0` and exports their median over the reference
// as KRSI_VM_PACE (pace.ts): every deadline in the specs, mocha's own per-test timeout included, is
// stretched by it, so a slow or busy build machine gets proportionally longer safety nets.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { parseMochaSummary, shellQuote } from './mocha-summary.js';
import { PACE_ENV, REFERENCE_NODE_START_MS } from './pace.js';
import { repoRoot } from './paths.js';
import { runInVm, type RunInVmOptions, type RunInVmResult } from './qemu.js';

const SPEC_GLOB = 'dist/test/kernel/**/*.spec.js';
/** mocha's per-test safety net before scaling; tests that need longer set their own, also scaled */
const BASE_TEST_TIMEOUT_MS = 180_000;

function specScript(root: string, grep: string | undefined): string {
  const node = shellQuote(process.execPath);
  const mocha = [
    node,
    'node_modules/mocha/bin/mocha.js',
    '--timeout', '"$mocha_timeout"',
    // a failed test can leave a process (an agent) that keeps node's event loop alive: end anyway
    '--exit',
    '--reporter', 'spec',
    ...(grep === undefined ? [] : ['--grep', shellQuote(grep)]),
    shellQuote(SPEC_GLOB),
  ].join(' ');
  return [
    'set -u',
    `cd ${shellQuote(root)}`,
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

async function main(): Promise<number> {
  const root = repoRoot();
  if (!existsSync(join(root, 'dist/test/kernel'))) {
    console.error(`krsi-vm: ${join(root, 'dist/test/kernel')} does not exist: run \`npx tsc -p tsconfig.json\` first`);
    console.log('0 passed, 1 failed');
    return 2;
  }
  const grep = process.env.KRSI_VM_GREP || undefined;
  const timeoutS = Number(process.env.KRSI_VM_TIMEOUT_S ?? '3600');
  const opts: RunInVmOptions = {
    script: specScript(root, grep),
    timeoutMs: timeoutS * 1000,
    onConsole: (line) => process.stdout.write(`[vm] ${line}\n`),
  };
  if (process.env.KRSI_VM_KERNEL) opts.kernelVersion = process.env.KRSI_VM_KERNEL;

  let result: RunInVmResult;
  try {
    result = await runInVm(opts);
  } catch (err) {
    console.error(`\nkrsi-vm: harness failure: ${(err as Error).message.replace(/^krsi-vm: /, '')}`);
    console.log('0 passed, 1 failed');
    return 2;
  }

  let log: string;
  try {
    log = await readFile(join(result.resultsDir, 'mocha.log'), 'utf8');
  } catch {
    log = result.console;
  }
  const summary = parseMochaSummary(log);
  console.log(
    `\nkrsi-vm: waited ${result.lockWaitSeconds.toFixed(1)} s for the VM lock, boot ${result.bootSeconds.toFixed(1)} s, total ${result.totalSeconds.toFixed(1)} s, ` +
      `exit status ${result.exitCode}, results in ${result.resultsDir}`,
  );
  if (summary === undefined) {
    console.error('krsi-vm: mocha printed no summary (it crashed or found no spec files)');
    console.log('0 passed, 1 failed');
    return result.exitCode === 0 ? 1 : result.exitCode;
  }
  if (summary.pending > 0) console.log(`krsi-vm: ${summary.pending} pending`);
  console.log(`${summary.passing} passed, ${summary.failing} failed`);
  return result.exitCode;
}

process.exitCode = await main();
