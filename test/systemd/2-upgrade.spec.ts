/**
 * Upgrades as a site does them (install.sh replaces the files, then restarts the unit), from each build
 * test/vm/upgrade-builds.ts made on the host: the previous commit, this checkout's sources under another
 * build id, and 0.1.0 (before build ids). A strict job runs through each upgrade while its user tries a
 * denied chmod and a denied connect over and over: every attempt must be denied, before, during and after
 * the switch. After it the agent runs this build, only this build's programs are attached and pinned, and
 * every decision of the switch was logged exactly once.
 */
import { expect } from 'chai';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { generationDir, layoutOf, listGenerations, previousLayoutDir, readBuildId } from '../../agent/enforcement/generations.js';
import { REPO, WORK, sbatch, waitJobEnded, waitJobRunning } from '../slurm/cluster.js';
import { agentJobs, api } from '../slurm/node.js';
import { UPGRADE_BUILDS_ENV, type UpgradeBuild, type UpgradeBuilds } from '../vm/upgrade-builds.js';
import { scaled, waitFor } from '../vm/pace.js';
import { onBoot } from './boot.js';
import { AGENT_UNIT, EVENT_LOG, PIN_DIR, PIN_MOUNT_UNIT, UNIT_FILE, VM_AGENT_WAIT, installBuild, installConfig, krsiPrograms } from './node.js';
import { HOLD, attackLoop, chmodSuid, expectNodeServing, release } from './jobs.js';
import { journal, systemctl, unitProps, waitActive } from './systemctl.js';

const STRICT_USER = 1000;
const PKEY_DROP_IN = `${UNIT_FILE}.d/pkey.conf`;
const THIS_BUILD = readBuildId(join(REPO, 'build/bpf/krsi.bpf.o'));

function upgradeBuilds(): UpgradeBuilds {
  const text = process.env[UPGRADE_BUILDS_ENV];
  if (!text) throw new Error(`${UPGRADE_BUILDS_ENV} is not set: run the systemd group through test/vm/run-kernel-specs.ts`);
  return JSON.parse(text) as UpgradeBuilds;
}

/** status as an agent of any build reports it (0.1.0's has no buildId) */
interface AnyStatus {
  buildId?: string;
  adopted: boolean;
  programs: string[];
  pinned: string[];
  uidsUnderPolicy: number[];
}

async function status(): Promise<AnyStatus> {
  const r = await api<AnyStatus>('GET', '/v1/status');
  if (r.status !== 200) throw new Error(`GET /v1/status: ${r.status}`);
  return r.body;
}

/** the agent's unit serving: active and answering on its socket */
async function agentServing(): Promise<AnyStatus> {
  await waitActive(AGENT_UNIT);
  return waitFor('the agent to answer GET /v1/status', () => status().catch(() => undefined), { timeoutMs: 120_000, intervalMs: 250 });
}

/** A node running `build`, as a site running it has it: its unit and agent, only its pins, an empty job table. */
async function runOnly(build: UpgradeBuild): Promise<void> {
  await systemctl('stop', AGENT_UNIT);
  // no agent runs: the pins' own file system may go (its unmount unpins everything), and what an earlier
  // layout left on the bpffs above with it
  await systemctl('stop', PIN_MOUNT_UNIT);
  for (const dir of [PIN_DIR, previousLayoutDir(PIN_DIR)]) {
    if (!existsSync(dir)) continue;
    const r = await execa('rm', ['-rf', dir], { reject: false });
    if (r.exitCode !== 0) {
      const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes('/sys/fs/bpf')).join('\n');
      throw new Error(`cannot remove ${dir} (${r.stderr.trim()}); mounts under /sys/fs/bpf:\n${mounts}\n${(await execa('ls', ['-la', dirname(dir)], { reject: false })).stdout}`);
    }
  }
  for (const name of existsSync('/var/lib/slurm-krsi') ? readdirSync('/var/lib/slurm-krsi') : []) rmSync(join('/var/lib/slurm-krsi', name), { recursive: true, force: true });
  const unit = readFileSync(join(build.root, 'deploy/krsi-agent.service'), 'utf8');
  writeFileSync(UNIT_FILE, unit);
  // 0.1.0's unit kills its agent as Node.js starts (V8's pkey_alloc is outside its SystemCallFilter): a
  // site running it under systemd needs this drop-in, and keeps it through the upgrade (it adds nothing then)
  if (!/^SystemCallFilter=.*@pkey/m.test(unit)) {
    mkdirSync(dirname(PKEY_DROP_IN), { recursive: true });
    writeFileSync(PKEY_DROP_IN, '[Service]\nSystemCallFilter=@pkey\n');
  }
  installBuild(build.root);
  // a node running it has its config (install.sh keeps an existing config through the upgrade)
  installConfig(build.root);
  await systemctl('daemon-reload');
  await systemctl('start', AGENT_UNIT);
}

onBoot(1, 'upgrades from another build with a strict job running', function () {
  const { builds, problems } = upgradeBuilds();

  after(async function () {
    this.timeout(scaled(120_000));
    // leave the node as the later specs expect it: this checkout's agent and unit
    writeFileSync(UNIT_FILE, readFileSync(join(REPO, 'deploy/krsi-agent.service')));
    installBuild(REPO);
    installConfig(REPO, VM_AGENT_WAIT);
    await systemctl('daemon-reload');
    await systemctl('restart', AGENT_UNIT);
  });

  for (const problem of problems) {
    it(`an upgrade source could be built: ${problem.split(':')[0]}`, () => {
      throw new Error(problem);
    });
  }

  for (const build of builds) {
    it(`from ${build.title} (build ${build.buildId ?? 'none'}): denied throughout the switch, this build after, the old pins gone, every decision logged once`, async function () {
      this.timeout(scaled(600_000));
      await runOnly(build);
      const old = await agentServing();
      expect(old.buildId, 'the old agent runs').to.equal(build.buildId ?? undefined);

      const job = await sbatch(STRICT_USER, HOLD, ['--comment=policy:strict', '-J', `upgrade-${build.name}`, `--output=${WORK}/out-%j.txt`]);
      await waitJobRunning(job);
      await waitFor(`job ${job} registered by the old agent`, async () => (await agentJobs()).some((j) => j.jobId === job));
      const attacks = attackLoop(STRICT_USER, build.name);
      await waitFor('the attack loop\'s first attempts', () => attacks.attempts.length >= 4);

      // install.sh's upgrade: the new unit file and agent, daemon-reload, restart (returns at READY=1)
      writeFileSync(UNIT_FILE, readFileSync(join(REPO, 'deploy/krsi-agent.service')));
      installBuild(REPO);
      // pins of a version from before the pins' own file system go aside before systemd mounts it
      await execa(join(REPO, 'deploy/move-earlier-pins.sh'), [PIN_DIR]);
      await systemctl('daemon-reload');
      const switchStart = Date.now();
      await systemctl('restart', AGENT_UNIT);
      const switchEnd = Date.now();
      const newPid = Number((await unitProps(AGENT_UNIT, ['MainPID'])).MainPID);
      // and on after it, when the new programs alone enforce
      await waitFor('attempts after the switch', () => attacks.attempts.filter((a) => a.atMs > switchEnd).length >= 10);
      const attempts = await attacks.stop();

      const during = attempts.filter((a) => a.atMs >= switchStart && a.atMs <= switchEnd);
      console.log(`      ${attempts.length} attempts, ${during.length} during the ${((switchEnd - switchStart) / 1000).toFixed(1)} s switch`);
      const wrong = attempts.filter((a) => a.verdict !== 'ERR EPERM');
      expect(wrong, 'attempts not denied by the policy').to.deep.equal([]);
      expect(during.length, 'attempts while the agents switched').to.be.greaterThan(0);

      const now = await status();
      expect(now.buildId, 'the agent runs this build').to.equal(THIS_BUILD);
      expect(now.uidsUnderPolicy).to.include(STRICT_USER);
      expect((await agentJobs()).map((j) => j.jobId), 'the job moved over').to.include(job);
      const gens = listGenerations(PIN_DIR);
      expect(gens, 'only this build\'s pins are left').to.deep.equal([{ dir: generationDir(PIN_DIR, THIS_BUILD), buildId: THIS_BUILD }]);
      expect(existsSync(previousLayoutDir(PIN_DIR)), `${previousLayoutDir(PIN_DIR)} (the pins of an earlier layout) removed`).to.equal(false);
      expect(now.adopted, 'adopted pins of its own build').to.equal(build.buildId === THIS_BUILD);

      // every decision of the loop logged once: by the old agent, from the old ring by the new one at its
      // start (when the layouts match), or by the new one; a layout the new build cannot read is not read
      const layoutsMatch = layoutOf({ dir: '', buildId: build.buildId }) === layoutOf({ dir: '', buildId: THIS_BUILD });
      const name = attacks.file.split('/').pop()!;
      const logged = (): string[] => readFileSync(EVENT_LOG, 'utf8').split('\n').filter((l) => /type=chmod /.test(l) && l.includes(` name=${name} `) && /act=deny/.test(l));
      const chmods = attempts.filter((a) => a.action === 'chmod').length;
      // the new agent's own lines (the unit's journal holds the earlier upgrades of this boot too)
      const upgradeLines = (await journal(AGENT_UNIT)).filter((e) => e.pid === newPid && /upgraded from another build/.test(e.message));
      if (build.buildId === THIS_BUILD) {
        expect(upgradeLines, 'no upgrade: the same build').to.deep.equal([]);
      } else {
        expect(upgradeLines.map((e) => e.message), 'the upgrade logged').to.have.length(1);
        expect(upgradeLines[0]!.message).to.include(layoutsMatch ? 'events=' : 'were not read');
      }
      if (layoutsMatch) {
        await waitFor(`${chmods} chmod denials in ${EVENT_LOG}`, () => logged().length >= chmods, { timeoutMs: 30_000 });
        expect(logged().length, 'chmod denials logged, none lost, none twice').to.equal(chmods);
      }

      release(job);
      await waitJobEnded(job);
      await expectNodeServing();
      await waitFor('uid 1000 free after its job ended', async () => (await chmodSuid(STRICT_USER, `upgrade-${build.name}`)) === 'OK');

      // what the kernel runs, by program id: with the agent stopped (a running agent may hide its programs
      // from everyone else), only this build's programs are attached, each carrying its build id
      await systemctl('stop', AGENT_UNIT);
      const progs = await krsiPrograms();
      expect(progs.length, 'programs attached (the pins hold them)').to.equal(now.programs.length);
      expect(progs.filter((p) => p.buildId !== THIS_BUILD), 'programs of another build still attached').to.deep.equal([]);
    });
  }
});
