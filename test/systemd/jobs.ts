/**
 * Jobs and checks the systemd and package specs share: the node registered, strict hold jobs, the strict
 * user's denied chmod and its attacks in a loop, the node's state as Slurm sees it.
 */
import { expect } from 'chai';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { type Cluster, WORK, nodeInfo, systemdCluster } from '../slurm/cluster.js';
import { PROBE, probe } from '../kernel/fixture.js';
import { waitFor } from '../vm/pace.js';
import { CLUSTER } from './node.js';
import { journalTail } from './systemctl.js';

export { HOLD, releaseJob as release } from '../slurm/cluster.js';

/**
 * What the kernel answers a chmod u+s by `uid` of a fresh file of its own, outside any job ("ERR EPERM"
 * under strict's fileperms, "OK" for a free uid). The file is new each time: a chmod that keeps a bit the
 * file already has is allowed.
 */
export async function chmodSuid(uid: number, tag: string): Promise<string> {
  const file = join(WORK, `chmod-${tag}-${uid}`);
  await execa('install', ['-o', String(uid), '-g', String(uid), '-m', '0644', '/dev/null', file]);
  return probe(uid, 'chmod', file, '4755');
}

/** the node is neither drained nor down (what a failed prolog does to it) */
export async function expectNodeServing(): Promise<void> {
  const node = await nodeInfo();
  expect(node.State, `node state (reason: ${node.Reason ?? 'none'})`).to.match(/^(IDLE|MIXED|ALLOCATED)/).and.not.match(/DRAIN|DOWN|FAIL/);
}

/**
 * This boot's cluster, once slurmd has registered. slurmctld restores the node as the last boot left it
 * (not responding) until then; with ReturnToService=1 (CLUSTER) a node that registers after an unexpected
 * reboot goes DOWN and slurmctld ends or requeues its jobs. Such a node is resumed, as its operator would,
 * and what slurmctld said is printed.
 */
export async function registeredCluster(): Promise<Cluster> {
  const node = await waitFor('slurmd to register with slurmctld', async () => {
    const r = await execa('sinfo', ['-h', '-N', '-o', '%N|%T|%E'], { reject: false });
    const [name, state, why] = String(r.stdout).trim().split('|');
    return r.exitCode === 0 && name && state && !state.endsWith('*') && !/unknown/i.test(state) ? { name, state, why } : undefined;
  }, { timeoutMs: 240_000, detail: () => journalTail('slurmctld.service') });
  if (/^down/.test(node.state)) {
    console.log(`      node ${node.name} registered ${node.state} (${node.why}): resumed`);
    const r = await execa('scontrol', ['update', `NodeName=${node.name}`, 'State=RESUME'], { reject: false, all: true });
    if (r.exitCode !== 0) throw new Error(`scontrol update NodeName=${node.name} State=RESUME: ${r.all}`);
  }
  return systemdCluster(CLUSTER);
}

export interface Attempt {
  atMs: number;
  action: 'chmod' | 'connect';
  verdict: string;
}

/**
 * `uid` (under strict) tries a chmod u+s of its own file (fileperms) and a connect to 192.0.2.10
 * (skconnections) in a loop, each attempt one krsi-probe process, until stop(); `attempts` fills as they
 * are made. What an upgrade must keep denying while the agents switch. `pauseS` between rounds leaves
 * the (emulated) CPUs to a long upgrade, such as a package manager's.
 */
export function attackLoop(uid: number, tag: string, pauseS = 0): { attempts: Attempt[]; file: string; stop: () => Promise<Attempt[]> } {
  const file = join(WORK, `upgrade-${tag}`);
  const stopFlag = join(WORK, `upgrade-${tag}.stop`);
  rmSync(stopFlag, { force: true });
  // each attempt a distinct action (another set-uid mode, another port): the kernel folds repeats of one
  // action within a second into the next event's repeats= (fold.spec.ts tests that), and the repeats an
  // old build still held when it stopped deciding are counted, not logged, so that the log would not
  // show every decision of the switch
  const script = `install -m 0644 /dev/null ${file}
i=0
while [ ! -e ${stopFlag} ]; do
  echo "$(date +%s%3N) chmod $(${PROBE} chmod ${file} $(printf %o $((04000 + i % 512))))"
  echo "$(date +%s%3N) connect $(${PROBE} connect4 192.0.2.10 $((1000 + i % 512)))"
  i=$((i + 1))${pauseS > 0 ? `
  sleep ${pauseS}` : ''}
done`;
  const loop = execa('bash', ['-c', script], {
    uid, gid: uid, cwd: WORK, reject: false, buffer: false, stderr: 'inherit', env: { PATH: '/usr/bin:/bin' }, extendEnv: false,
  });
  const attempts: Attempt[] = [];
  let pending = '';
  loop.stdout!.on('data', (chunk: Buffer) => {
    const lines = (pending + chunk.toString()).split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      const [at, action, ...verdict] = line.split(' ');
      attempts.push({ atMs: Number(at), action: action as Attempt['action'], verdict: verdict.join(' ') });
    }
  });
  return {
    attempts,
    file,
    stop: async () => {
      writeFileSync(stopFlag, '');
      const r = await loop;
      if (r.exitCode !== 0) throw new Error(`the attack loop failed (exit ${r.exitCode})`);
      return attempts;
    },
  };
}
