/**
 * `npm run demo`: boots the test VM (Debian's kernel with BPF LSM, under qemu), and inside it a
 * single-node Slurm cluster with slurm-krsi installed, where a strict job and an unrestricted one try the
 * seed paper's attacks (figures 8-12): see slurm-demo.ts. Prints the jobs, each attempt with allowed or
 * denied, and the agent's event lines. Everything happens in the VM's throwaway overlay: nothing is left
 * behind on this machine.
 */
import { join } from 'node:path';
import { repoRoot } from '../test/vm/paths.js';
import { runInVm } from '../test/vm/qemu.js';

const root = repoRoot();
const script = [
  'set -u',
  `cd '${root}'`,
  `'${process.execPath}' ${join('dist', 'demo', 'slurm-demo.js')} 2>&1 | tee /krsi-results/demo.log`,
  'exit "${PIPESTATUS[0]}"',
  '',
].join('\n');

console.log('krsi-demo: booting the VM (software emulation) and bringing up Slurm in it: a few minutes...');
const result = await runInVm({
  script,
  timeoutMs: 30 * 60_000, // a safety net: about 2-3 minutes on an idle build machine
  onConsole: (line) => {
    if (!/^\[\s*\d+\.\d+\]/.test(line)) process.stdout.write(`${line}\n`);
  },
});
console.log(`krsi-demo: done in ${result.totalSeconds.toFixed(0)} s, exit status ${result.exitCode}`);
process.exit(result.exitCode);
