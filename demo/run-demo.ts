/**
 * `npm run demo`: boots the test VM (Debian's kernel with BPF LSM, under qemu) and replays the seed
 * paper's figures 8-12 there with the real programs: see policies-demo.ts. Prints the table of what
 * each user tried and what the kernel did, and the agent's event lines.
 */
import { join } from 'node:path';
import { repoRoot } from '../test/vm/paths.js';
import { runInVm } from '../test/vm/qemu.js';

const root = repoRoot();
const script = [
  'set -u',
  `cd '${root}'`,
  `'${process.execPath}' ${join('dist', 'demo', 'policies-demo.js')} 2>&1 | tee /krsi-results/demo.log`,
  'exit "${PIPESTATUS[0]}"',
  '',
].join('\n');

console.log('krsi-demo: booting the VM (software emulation, about a minute)...');
const result = await runInVm({
  script,
  timeoutMs: 10 * 60_000,
  onConsole: (line) => {
    if (!/^\[\s*\d+\.\d+\]/.test(line)) process.stdout.write(`${line}\n`);
  },
});
console.log(`krsi-demo: done in ${result.totalSeconds.toFixed(0)} s, exit status ${result.exitCode}`);
process.exit(result.exitCode);
