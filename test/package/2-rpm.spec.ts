/**
 * The .rpm on the same node once the .deb is purged: installed with `rpm -i --nodeps` (the node is
 * Debian: its rpm database knows none of the libraries the package requires, which dpkg provides), the
 * agent on the bundled Node.js, a strict job through the packaged prolog and epilog, then `rpm -e` (the
 * upgrade is the .deb's: the scriptlets run the same maintainer scripts). rpm
 * has no purge: what the package did not install (the generated profiles.lua, the job table, the event
 * log) stays, as after dpkg -r.
 */
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { execa } from 'execa';
import type { AgentStatus } from '../../agent/service/types.js';
import { chmodSuid } from '../systemd/jobs.js';
import { scaled } from '../vm/pace.js';
import {
  BUNDLED_NODE, EPILOG, FREE_USER, PIN_DIR, PROLOG, STRICT_USER, admin, agentProcess, krsictlJson, nodeOnPath, packages,
  pinMount, pinsLeft, slurmHook, stepByStep, waitProgramsGone,
} from './node.js';

const { current } = packages();
/** what rpm -e leaves: the folders of files the package did not install (rpm has no purge) */
const KEPT_DIRS = ['/etc/slurm-krsi', '/var/lib/slurm-krsi', '/var/log/slurm-krsi'];

describe('the .rpm under systemd (rpm -i --nodeps on the Debian node)', function () {
  stepByStep();

  let paths: string[] = [];
  let existedBefore = new Set<string>();
  before(async function () {
    this.timeout(scaled(180_000));
    // a node without slurm-krsi: the .deb specs purge it, and if one of them failed first, this does
    const deb = await execa('dpkg-query', ['-W', '-f=${Status}', 'slurm-krsi'], { reject: false });
    if (deb.exitCode === 0 && !/not-installed/.test(deb.stdout)) {
      console.log(`      the .deb specs left slurm-krsi ${deb.stdout}: dpkg --purge first`);
      await admin('dpkg', ['--purge', 'slurm-krsi']);
    }
    expect((await agentProcess()).pid, 'an agent running before rpm -i').to.equal(0);
    expect(await nodeOnPath('/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'), 'the node\'s own Node.js (hidden by the .deb specs)').to.equal(null);
    paths = (await execa('rpm', ['-qpl', current.rpm])).stdout.split('\n').filter(Boolean);
    existedBefore = new Set(paths.filter((p) => existsSync(p)));
  });

  it('rpm -i: the agent reaches READY on the bundled Node.js, the pins mounted; a strict job by the packaged prolog denied, freed by the epilog', async function () {
    this.timeout(scaled(600_000));
    const t0 = Date.now();
    const out = await admin('rpm', ['-i', '--nodeps', current.rpm]);
    console.log(`      rpm -i took ${((Date.now() - t0) / 1000).toFixed(0)} s:\n${out.trimEnd().replace(/^/gm, '        ')}`);
    expect(out).to.include('slurm-krsi: krsi-agent enabled and started');
    const agent = await agentProcess();
    expect(agent.active, 'krsi-agent.service').to.equal('active');
    expect(agent.exe, 'the agent\'s executable').to.equal(BUNDLED_NODE);
    expect(await nodeOnPath(agent.path ?? '', agent.pid), 'command -v node in the agent\'s mount namespace, with its PATH').to.equal(null);
    expect(await pinMount(), PIN_DIR).to.deep.include({ fstype: 'bpf' });
    expect((await krsictlJson<AgentStatus>('status')).buildId).to.equal(current.buildId);
    expect(paths.filter((p) => !existsSync(p)), 'paths of the package missing once installed').to.deep.equal([]);

    expect(await slurmHook(PROLOG, 201, STRICT_USER, 'policy:strict'), 'the prolog of job 201').to.deep.include({ exitCode: 0 });
    expect(await chmodSuid(STRICT_USER, 'rpm'), `uid ${STRICT_USER} under strict`).to.equal('ERR EPERM');
    expect(await chmodSuid(FREE_USER, 'rpm'), `uid ${FREE_USER}, no job`).to.equal('OK');
    expect(await slurmHook(EPILOG, 201, STRICT_USER), 'the epilog of job 201').to.deep.include({ exitCode: 0 });
    expect(await chmodSuid(STRICT_USER, 'rpm-ended'), `uid ${STRICT_USER} once its job ended`).to.equal('OK');
    // and under policy again for the removal to end
    expect(await slurmHook(PROLOG, 202, STRICT_USER, 'policy:strict'), 'the prolog of job 202').to.deep.include({ exitCode: 0 });
    expect(await chmodSuid(STRICT_USER, 'rpm-again'), `uid ${STRICT_USER} under strict again`).to.equal('ERR EPERM');
  });

  it('rpm -e: the agent stopped, the pins unmounted and gone, the strict user free, no file of the package left', async function () {
    this.timeout(scaled(300_000));
    const out = await admin('rpm', ['-e', 'slurm-krsi']);
    console.log(out.trimEnd().replace(/^/gm, '        '));
    expect(out).to.include(`slurm-krsi: removed the pinned programs (${PIN_DIR})`);
    expect((await agentProcess()).pid, 'the agent\'s main pid').to.equal(0);
    expect(await pinMount(), PIN_DIR).to.equal(null);
    expect(pinsLeft(), 'slurm-krsi* in /sys/fs/bpf').to.deep.equal([]);
    await waitProgramsGone();
    expect(await chmodSuid(STRICT_USER, 'erased'), `uid ${STRICT_USER}, no policy left`).to.equal('OK');
    expect((await execa('rpm', ['-q', 'slurm-krsi'], { reject: false })).exitCode, 'rpm -q slurm-krsi').to.equal(1);
    const left = paths.filter((p) => !existedBefore.has(p) && existsSync(p));
    expect(left.filter((p) => !KEPT_DIRS.includes(p)), 'paths of the package left').to.deep.equal([]);
    const kept = (await execa('find', KEPT_DIRS.filter((d) => existsSync(d)), { reject: false })).stdout;
    console.log(`      left by rpm -e (no purge):\n${kept.replace(/^/gm, '        ')}`);
  });
});
