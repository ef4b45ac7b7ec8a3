/**
 * Jobs and checks the systemd specs share: strict hold jobs, the strict user's denied chmod, the node's
 * state as Slurm sees it.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import { execa } from 'execa';
import { WORK, nodeInfo } from '../slurm/cluster.js';
import { probe } from '../kernel/fixture.js';

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
