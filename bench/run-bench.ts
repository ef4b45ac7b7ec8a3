/**
 * `npm run bench`: builds the workloads, boots the VM twice with instruction counting (BPF LSM on and
 * off), runs bench/vm/driver.ts inside each, and writes docs/BENCHMARKS.md from what they measured.
 *
 *   node dist/bench/run-bench.js [--quick] [--boot on|off] [--out PATH]
 *   node dist/bench/run-bench.js --sections overhead,perjob,rounds,jobstart,pipeline,flood,adversary [--quick]
 *
 * --quick: fewer iterations and actions (a smoke run of the harness); --boot: one boot only.
 * --sections: boot A only, run only those parts, print the driver's results; no document is written.
 * The figures are printed, never asserted: this is not a test and does not fail on a number.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { repoRoot } from '../test/vm/paths.js';
import { DEFAULT_LSM, runInVm } from '../test/vm/qemu.js';
import { QEMU } from '../test/vm/initramfs.js';
import type { BootResult } from './vm/common.js';
import { renderReport, type HostInfo } from './report.js';

const root = repoRoot();
const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const sections = argv.includes('--sections') ? argv[argv.indexOf('--sections') + 1] : undefined;
const only = sections ? 'on' : argv.includes('--boot') ? argv[argv.indexOf('--boot') + 1] : undefined;
const outPath = argv.includes('--out') ? argv[argv.indexOf('--out') + 1]! : join(root, 'docs/BENCHMARKS.md');

/** the default list without bpf: the paper's "non-KRSI kernel" */
const LSM_OFF = DEFAULT_LSM.split(',').filter((m) => m !== 'bpf').join(',');

async function boot(which: 'on' | 'off'): Promise<{ result: BootResult; seconds: number }> {
  const script = [
    'set -u',
    `cd ${root}`,
    `${process.execPath} dist/bench/vm/driver.js --boot ${which} --out /krsi-results/bench.json${quick ? ' --quick' : ''}${sections ? ` --sections ${sections}` : ''} 2>&1 | tee /krsi-results/driver.log`,
    'exit "${PIPESTATUS[0]}"',
    '',
  ].join('\n');
  const started = Date.now();
  const r = await runInVm({
    script,
    icount: true,
    kernelArgs: [`lsm=${which === 'on' ? DEFAULT_LSM : LSM_OFF}`],
    timeoutMs: 40 * 60_000,
    onConsole: (line) => process.stdout.write(`[vm ${which}] ${line}\n`),
  });
  const file = join(r.resultsDir, 'bench.json');
  if (r.exitCode !== 0 || !existsSync(file)) {
    throw new Error(`benchmark boot "${which}" failed (exit ${r.exitCode}); see ${r.resultsDir}/driver.log`);
  }
  return { result: JSON.parse(readFileSync(file, 'utf8')) as BootResult, seconds: (Date.now() - started) / 1000 };
}

function hostInfo(): HostInfo {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown';
  const qemu = execFileSync(QEMU, ['--version'], { encoding: 'utf8' }).split('\n')[0] ?? '';
  let os = 'unknown';
  try {
    os = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? os;
  } catch {
    // keep unknown
  }
  return { cpuModel: model, cores: cpus().length, hostKernel: release(), os, qemu, node: process.version, date: new Date().toISOString(), source: sourceRevision() };
}

/** which source the figures are of, so that a committed document can be traced to the code it measured */
function sourceRevision(): string {
  try {
    const commit = execFileSync('git', ['-C', root, 'rev-parse', '--short=12', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['-C', root, 'status', '--porcelain', '--untracked-files=no'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return `commit ${commit}${dirty ? ' with uncommitted changes' : ' (clean tree)'}`;
  } catch {
    return 'a source tree that is not a git checkout';
  }
}

/** `node -e 0` on the host: what any Node.js process start costs there */
async function hostNodeStart(): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < (quick ? 5 : 30); i++) {
    const t0 = process.hrtime.bigint();
    await execa(process.execPath, ['-e', '0'], { extendEnv: false, reject: false });
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return times;
}

/**
 * prolog start to exit on the host, where no agent runs (on_error = allow): process start on real hardware.
 * agent_wait = 0: the prolog does not wait for an agent to come up (by default it retries a missing
 * socket for 10 s, and this figure would be that wait).
 */
async function hostPrologStart(): Promise<number[]> {
  const dir = join(root, '.vm-work', 'bench-host');
  mkdirSync(dir, { recursive: true });
  const config = join(dir, 'krsi.ini');
  writeFileSync(config, `[agent]\nsocket = ${join(dir, 'nobody.sock')}\non_error = allow\nagent_wait = 0\n\n[profile default]\nfileperms = audit\n`);
  const times: number[] = [];
  for (let i = 0; i < (quick ? 5 : 30); i++) {
    const t0 = process.hrtime.bigint();
    await execa(process.execPath, [join(root, 'dist/prolog/prolog.js')], {
      env: { SLURM_JOB_ID: String(1 + i), SLURM_JOB_UID: '1000', KRSI_CONFIG: config }, extendEnv: false, reject: false,
    });
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return times;
}

/**
 * --from RESULTS.json: render the document again from the saved results of an earlier run (run-bench
 * keeps them beside the document's source, in .vm-work/bench-last.json) without booting anything.
 */
async function rerender(file: string): Promise<void> {
  const saved = JSON.parse(readFileSync(file, 'utf8')) as Parameters<typeof renderReport>[0];
  writeFileSync(outPath, renderReport(saved));
  process.stdout.write(`bench: wrote ${outPath} from ${file}\n`);
}

async function main(): Promise<void> {
  if (argv.includes('--from')) return rerender(argv[argv.indexOf('--from') + 1]!);
  const t0 = Date.now();
  execFileSync('bash', [join(root, 'bench/build.sh')], { stdio: 'inherit' });
  const host = hostInfo();
  const hostProlog = await hostPrologStart();
  const hostNode = await hostNodeStart();
  if (sections) {
    const part = await boot('on');
    process.stdout.write(`${JSON.stringify(part.result, null, 1)}\nbench: sections ${sections} done in ${part.seconds.toFixed(0)} s (no document written)\n`);
    return;
  }
  const on = only === 'off' ? undefined : await boot('on');
  const off = only === 'on' ? undefined : await boot('off');
  const input = {
    host, on: on?.result, off: off?.result, hostPrologMs: hostProlog, hostNodeMs: hostNode,
    vmSeconds: { on: on?.seconds ?? 0, off: off?.seconds ?? 0 }, totalSeconds: (Date.now() - t0) / 1000, quick,
  };
  writeFileSync(join(root, '.vm-work', 'bench-last.json'), JSON.stringify(input, null, 1));
  const report = renderReport(input);
  mkdirSync(join(outPath, '..'), { recursive: true });
  writeFileSync(outPath, report);
  process.stdout.write(`\n${report}\nbench: wrote ${outPath} in ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
}

main().catch((err: Error) => {
  process.stderr.write(`bench: ${err.message}\n`);
  process.exitCode = 1;
});
