/**
 * What status says of an upgrade the agent could not finish (Enforcer.retirePrevious left another
 * build's programs attached): a warning naming the build, where its pins are and what to look at.
 */
import { expect } from 'chai';
import { fakeKernelStatus, rig } from './fakes.js';

describe('status of an unfinished upgrade', () => {
  it('warns while programs of another build stay pinned, and says nothing once none do', async () => {
    const previous: { dir: string; buildId: string | null }[] = [{ dir: '/sys/fs/bpf/slurm-krsi', buildId: null }];
    const { agent } = rig({ options: { kernelStatus: fakeKernelStatus({ previous }) } });
    await agent.start();
    const warned = agent.status().warnings.filter((w) => /programs of build/.test(w));
    expect(warned).to.deep.equal([
      'the programs of build 0.1.0 are still pinned under /sys/fs/bpf/slurm-krsi beside this build\'s: the upgrade to e2f8852b-ae1364784ce6 is not finished (see the agent\'s log; the next start tries again)',
    ]);
    previous.pop();
    expect(agent.status().warnings.filter((w) => /programs of build/.test(w))).to.deep.equal([]);
  });
});
