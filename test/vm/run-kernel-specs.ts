// Entry point of `npm run test:vm`: boots one VM that runs every compiled kernel spec
// (dist/test/kernel/**/*.spec.js) under mocha, streams the console, and exits with mocha's status.
// The last line printed is always "N passed, N failed".
//
// Environment:
//   KRSI_VM_GREP        only run tests matching this pattern (mocha --grep)
//   KRSI_VM_KERNEL      kernel version to boot (default: newest /boot/vmlinuz-*-amd64)
//   KRSI_VM_TIMEOUT_S   kill the VM after this many seconds (default 1200)
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { parseMochaSummary, shellQuote } from './mocha-summary.js';
import { repoRoot } from './paths.js';
import { runInVm, type RunInVmOptions, type RunInVmResult } from './qemu.js';

const SPEC_GLOB = 'dist/test/kernel/**/*.spec.js';

function specScript(root: string, grep: string | undefined): string {
  const mocha = [
    shellQuote(process.execPath),
    'node_modules/mocha/bin/mocha.js',
    '--timeout', '60000',
    '--reporter', 'spec',
    ...(grep === undefined ? [] : ['--grep', shellQuote(grep)]),
    shellQuote(SPEC_GLOB),
  ].join(' ');
  return [
    'set -u',
    `cd ${shellQuote(root)}`,
    'echo "krsi-vm: kernel $(uname -r); lsm $(cat /sys/kernel/security/lsm)"',
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
  const timeoutS = Number(process.env.KRSI_VM_TIMEOUT_S ?? '1200');
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
    `\nkrsi-vm: boot ${result.bootSeconds.toFixed(1)} s, total ${result.totalSeconds.toFixed(1)} s, ` +
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
