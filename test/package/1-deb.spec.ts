/**
 * The .deb on a node under real systemd whose own Node.js is hidden, as an admin runs it: dpkg -i, a
 * strict job through the packaged prolog, the man pages, the journal; an upgrade to the next version
 * (another BPF build) while the job's user keeps trying; removal keeping the pins, a reinstall, purge
 * (whose removal takes the pins). Each step builds on the one before: once one fails, the rest are skipped.
 */
import { expect } from 'chai';
import { existsSync } from 'node:fs';
import { execa } from 'execa';
import { generationDir, listGenerations } from '../../agent/enforcement/generations.js';
import { MAN_PAGES, manFileName } from '../../agent/manual/pages.js';
import type { AgentStatus, JobView } from '../../agent/service/types.js';
import { chmodSuid } from '../systemd/jobs.js';
import { scaled, waitFor } from '../vm/pace.js';
import {
  AGENT_UNIT, BUNDLED_NODE, CONFIG, FREE_USER, PIN_DIR, PROLOG, STRICT_USER, admin, agentProcess, fileTree, hideSystemNode,
  krsictlJson, nodeOnPath, packages, pinMount, pinsLeft, prepareUsers, notDenied, slurmHook, stepByStep, upgradeUnderAttack, waitProgramsGone,
} from './node.js';

const { current, next } = packages();
const JOB = 101;
/** where the maintainer scripts write besides the package's own paths (/usr is checked by the package's list) */
const SNAPSHOT_DIRS = ['/etc', '/var', '/opt', '/srv', '/usr/local'];
/** what dpkg itself keeps of a package it purged: its database and log */
const DPKG_RECORDS = /^\/var\/(lib\/dpkg\/|log\/dpkg\.log$)/;

/** the paths in a .deb, as dpkg installs them ("/usr/sbin/krsictl"; folders too) */
async function debPaths(deb: string): Promise<string[]> {
  const r = await execa('sh', ['-c', 'dpkg-deb --fsys-tarfile "$0" | tar -t --quoting-style=literal', deb]);
  return r.stdout.split('\n').map((l) => l.replace(/^\./, '').replace(/(.)\/$/, '$1')).filter((p) => p !== '' && p !== '/');
}

describe('the .deb under systemd, on a node without a Node.js of its own', function () {
  stepByStep();

  let paths: string[] = [];
  let existedBefore = new Set<string>();
  let treeBefore = new Set<string>();
  before(async function () {
    this.timeout(scaled(120_000));
    await prepareUsers();
    const hidden = await hideSystemNode();
    console.log(`      the node's own Node.js hidden: ${hidden.join(', ')}`);
    paths = await debPaths(current.deb);
    existedBefore = new Set(paths.filter((p) => existsSync(p)));
    treeBefore = await fileTree(SNAPSHOT_DIRS);
  });

  it('dpkg -i: the agent reaches READY on the bundled Node.js, with node not on its PATH; the pins mounted; krsictl status works', async function () {
    this.timeout(scaled(600_000));
    const t0 = Date.now();
    const out = await admin('dpkg', ['-i', current.deb]);
    console.log(`      dpkg -i took ${((Date.now() - t0) / 1000).toFixed(0)} s:\n${out.trimEnd().replace(/^/gm, '        ')}`);
    expect(out).to.include('slurm-krsi: krsi-agent enabled and started');

    const agent = await agentProcess();
    expect(agent.active, 'krsi-agent.service').to.equal('active');
    expect(agent.exe, 'the agent\'s executable').to.equal(BUNDLED_NODE);
    expect(agent.path, 'the agent\'s PATH').to.be.a('string');
    expect(await nodeOnPath(agent.path!, agent.pid), 'command -v node in the agent\'s mount namespace, with its PATH').to.equal(null);
    expect(await pinMount(), `${PIN_DIR}`).to.deep.include({ fstype: 'bpf' });
    expect((await pinMount())!.options.split(','), 'the pins\' file system once the agent pinned').to.include('ro');

    const status = await krsictlJson<AgentStatus>('status');
    expect(status.buildId, 'the build the agent runs').to.equal(current.buildId);
    expect(status.version).to.equal(current.version);
    expect(status.programs.length, 'programs attached').to.be.greaterThan(0);
    const text = await admin('/usr/sbin/krsictl', ['status']);
    expect(text, 'krsictl status').to.include(current.buildId);
    const listed = (await execa('dpkg', ['-L', 'slurm-krsi'])).stdout.split('\n').filter((p) => p !== '/.');
    expect(listed.sort(), 'dpkg -L slurm-krsi: the package\'s paths').to.deep.equal([...paths].sort());
    expect(paths.filter((p) => !existsSync(p)), 'paths of the package missing once installed').to.deep.equal([]);
  });

  it('a strict job registered by the packaged prolog: its user is denied chmod u+s, another user is not; journalctl KRSI_JOB finds the decision with its fields', async function () {
    this.timeout(scaled(180_000));
    const prolog = await slurmHook(PROLOG, JOB, STRICT_USER, 'policy:strict');
    expect(prolog, 'the prolog').to.deep.include({ exitCode: 0 });
    const jobs = await krsictlJson<{ jobs: JobView[] }>('jobs');
    expect(jobs.jobs.find((j) => j.jobId === String(JOB)), `job ${JOB} in krsictl jobs`).to.deep.include({ uid: STRICT_USER, requested: 'strict' });
    expect(await chmodSuid(STRICT_USER, 'deb'), `uid ${STRICT_USER} under strict`).to.equal('ERR EPERM');
    expect(await chmodSuid(FREE_USER, 'deb'), `uid ${FREE_USER}, no job`).to.equal('OK');

    type Entry = Record<string, string>;
    const entries = await waitFor(`journalctl KRSI_JOB=${JOB} to find the denied chmod`, async () => {
      const r = await execa('journalctl', [`KRSI_JOB=${JOB}`, '-o', 'json', '--no-pager'], { reject: false });
      const found = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Entry).filter((e) => e.KRSI_TYPE === 'chmod');
      return found.length > 0 && found;
    }, { timeoutMs: 30_000, intervalMs: 500 });
    expect(entries[0], 'the journal entry of the decision').to.deep.include({
      KRSI_JOB: String(JOB), KRSI_UID: String(STRICT_USER), KRSI_POLICY: 'fileperms', KRSI_ACTION: 'deny',
      SYSLOG_IDENTIFIER: 'krsi-agent', _SYSTEMD_UNIT: AGENT_UNIT,
    });
    expect(entries[0]!.MESSAGE).to.match(new RegExp(`\\bjob=${JOB}\\b`)).and.to.match(/\bact=deny\b/);
  });

  it('every man page: man finds it by name, and man -l renders it without a warning', async function () {
    this.timeout(scaled(120_000));
    for (const m of MAN_PAGES) {
      const file = `/usr/share/man/man${m.section}/${manFileName(m)}.gz`;
      const where = await execa('man', ['-w', String(m.section), m.name], { reject: false });
      expect(where.stdout.trim(), `man -w ${m.section} ${m.name}`).to.equal(file);
      const r = await execa('man', ['--warnings', '-l', file], { env: { MANWIDTH: '80' }, reject: false });
      expect(r.exitCode, `man -l ${file}: ${r.stderr}`).to.equal(0);
      expect(r.stderr, `man -l ${file}`).to.equal('');
      expect(r.stdout, file).to.include(m.name);
    }
  });

  it('dpkg -i of the next version while the strict user loops chmod u+s: denied throughout; the new build runs, the old pins are gone, the job kept', async function () {
    this.timeout(scaled(600_000));
    const { out, attempts, during } = await upgradeUnderAttack(STRICT_USER, 'deb', 'dpkg', ['-i', next.deb]);
    expect(out).to.include(`slurm-krsi: upgraded from ${current.version}: krsi-agent restarted`);
    expect(notDenied(attempts), 'attempts not denied').to.deep.equal([]);
    expect(during.length, 'attempts while dpkg -i ran').to.be.greaterThan(0);

    const status = await krsictlJson<AgentStatus>('status');
    expect(status.buildId, 'the build the agent runs').to.equal(next.buildId);
    expect(status.version).to.equal(next.version);
    expect(listGenerations(PIN_DIR), 'only the new build\'s pins').to.deep.equal([{ dir: generationDir(PIN_DIR, next.buildId), buildId: next.buildId }]);
    expect(status.uidsUnderPolicy).to.include(STRICT_USER);
    expect((await krsictlJson<{ jobs: JobView[] }>('jobs')).jobs.map((j) => j.jobId), 'the job kept').to.include(String(JOB));
    expect((await agentProcess()).exe).to.equal(BUNDLED_NODE);
  });

  it('SLURM_KRSI_KEEP_PINS=yes dpkg -r: the agent stopped, its files gone, the pins mounted and still denying the strict user', async function () {
    this.timeout(scaled(300_000));
    const out = await admin('dpkg', ['-r', 'slurm-krsi'], { SLURM_KRSI_KEEP_PINS: 'yes' });
    console.log(out.trimEnd().replace(/^/gm, '        '));
    expect(out).to.include(`slurm-krsi: keeping ${PIN_DIR} (SLURM_KRSI_KEEP_PINS=yes)`);
    expect((await agentProcess()).pid, 'the agent\'s main pid').to.equal(0);
    expect(existsSync('/usr/sbin/krsi-agent') || existsSync('/usr/lib/slurm-krsi'), 'the package\'s files').to.equal(false);
    expect(existsSync(CONFIG), 'the configuration (removed, not purged)').to.equal(true);
    expect(await pinMount(), PIN_DIR).to.deep.include({ fstype: 'bpf' });
    expect(await chmodSuid(STRICT_USER, 'kept'), `uid ${STRICT_USER}, its job's policy in the kept pins`).to.equal('ERR EPERM');
    expect(await chmodSuid(FREE_USER, 'kept'), `uid ${FREE_USER}`).to.equal('OK');
  });

  it('dpkg -i again: the agent starts, takes the kept pins and the job table over, the strict user still denied', async function () {
    this.timeout(scaled(600_000));
    const out = await admin('dpkg', ['-i', next.deb]);
    console.log(out.trimEnd().replace(/^/gm, '        '));
    // dpkg runs the postinst of a reinstall as an upgrade from the version whose configuration stayed
    expect(out).to.include(`slurm-krsi: krsi-agent enabled and started (over the configuration of ${next.version})`);
    const agent = await agentProcess();
    expect(agent.active, 'krsi-agent.service after reinstalling').to.equal('active');
    const status = await krsictlJson<AgentStatus>('status');
    expect(status.adopted, 'the agent adopted the kept pins of its own build').to.equal(true);
    expect((await krsictlJson<{ jobs: JobView[] }>('jobs')).jobs.map((j) => j.jobId), 'the job table kept').to.include(String(JOB));
    expect(await chmodSuid(STRICT_USER, 'reinstalled'), `uid ${STRICT_USER}`).to.equal('ERR EPERM');
  });

  it('dpkg --purge (without SLURM_KRSI_KEEP_PINS): the pins unmounted and gone, no program of slurm-krsi loaded, the strict user free; no file of the package left, nor of its configuration, state, log or pins', async function () {
    this.timeout(scaled(300_000));
    // dpkg runs the postrm's remove (which decides about the pins), then its purge
    const out = await admin('dpkg', ['--purge', 'slurm-krsi']);
    console.log(out.trimEnd().replace(/^/gm, '        '));
    expect(out).to.include(`slurm-krsi: removed the pinned programs (${PIN_DIR})`);
    expect(await pinMount(), PIN_DIR).to.equal(null);
    expect(pinsLeft(), 'slurm-krsi* in /sys/fs/bpf').to.deep.equal([]);
    await waitProgramsGone();
    expect(await chmodSuid(STRICT_USER, 'removed'), `uid ${STRICT_USER}, no policy left`).to.equal('OK');

    const status = await execa('dpkg-query', ['-W', '-f=${Status}', 'slurm-krsi'], { reject: false });
    expect(status.exitCode === 0 ? status.stdout : 'unknown', 'dpkg-query -W slurm-krsi').to.match(/^(unknown|purge ok not-installed|deinstall ok not-installed)$/);
    expect(paths.filter((p) => !existedBefore.has(p) && existsSync(p)), 'paths of the package left').to.deep.equal([]);
    const treeAfter = await fileTree(SNAPSHOT_DIRS);
    const left = [...treeAfter].filter((p) => !treeBefore.has(p) && !DPKG_RECORDS.test(p));
    expect(left, `new under ${SNAPSHOT_DIRS.join(' ')} since before dpkg -i`).to.deep.equal([]);
    for (const dir of ['/etc/slurm-krsi', '/var/lib/slurm-krsi', '/var/log/slurm-krsi', '/run/slurm-krsi']) expect(existsSync(dir), dir).to.equal(false);
  });
});
