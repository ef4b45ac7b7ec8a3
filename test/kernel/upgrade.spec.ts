/**
 * Upgrading another build's pinned programs (Enforcer.open / retirePrevious) on the real kernel, one step
 * at a time, with a crash (an Enforcer dropped without finishing) between the steps: the other build is
 * this checkout's sources under another build id (test/vm/upgrade-builds.ts). At every step the uid under
 * policy stays denied, and the next open finishes what the crash left. The whole agent upgrading under
 * systemd, from real older builds, is test/systemd/2-upgrade.spec.ts.
 */
import { expect } from 'chai';
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { Enforcer } from '../../agent/enforcement/enforcer.js';
import { generationDir, listGenerations, previousLayoutDir, readBuildId } from '../../agent/enforcement/generations.js';
import { isPinFsMount, withWritablePins } from '../../agent/enforcement/pin-fs.js';
import { decodeEvent, type KrsiEvent } from '../../agent/enforcement/layout.js';
import { UPGRADE_BUILDS_ENV, type UpgradeBuild, type UpgradeBuilds } from '../vm/upgrade-builds.js';
import { OBJECT, SCRATCH, USER, modes, policy, probe, startFixture } from './fixture.js';

const PIN_DIR = '/sys/fs/bpf/krsi-upgrade-test';
const STRICT = policy({ modes: modes({ fileperms: 'enforce' }) });

/** one of the builds test/vm/upgrade-builds.ts made on the host */
function upgradeBuild(name: UpgradeBuild['name']): UpgradeBuild {
  const text = process.env[UPGRADE_BUILDS_ENV];
  if (!text) throw new Error(`${UPGRADE_BUILDS_ENV} is not set: run the kernel specs through test/vm/run-kernel-specs.ts`);
  const builds = JSON.parse(text) as UpgradeBuilds;
  const build = builds.builds.find((b) => b.name === name);
  if (!build) throw new Error(`no build ${name} among the upgrade builds: ${builds.problems.join('; ') || text}`);
  return build;
}

/** this checkout's sources under another build id */
function otherBuildObject(): string {
  return join(upgradeBuild('salted').root, 'build/bpf/krsi.bpf.o');
}

/** a chmod u+s by USER of a fresh file: "ERR EPERM" while fileperms enforces for it */
let serial = 0;
async function chmodSuid(): Promise<string> {
  const dir = join(SCRATCH, 'upgrade');
  if (!existsSync(dir)) {
    mkdirSync(dir);
    chmodSync(dir, 0o1777); // not through mkdir's mode: the umask would take o+w away
  }
  const file = join(dir, `f${++serial}`);
  expect(await probe(USER, 'create', file, '0644', '022')).to.equal('OK');
  return probe(USER, 'chmod', file, '4755');
}

function linksOf(dir: string): string[] {
  return existsSync(join(dir, 'links')) ? readdirSync(join(dir, 'links')) : [];
}

describe('upgrading another build\'s pinned programs, with crashes between the steps (kernel)', function () {
  let other: string;
  let otherId: string;
  const thisId = readBuildId(OBJECT);

  before(async () => {
    await startFixture(); // the scratch folder
    other = otherBuildObject();
    otherId = readBuildId(other);
    expect(otherId, 'another build id').to.not.equal(thisId);
    expect(otherId.slice(0, 8), 'of the same record layout').to.equal(thisId.slice(0, 8));
  });
  beforeEach(() => Enforcer.removePinned(PIN_DIR));
  after(() => Enforcer.removePinned(PIN_DIR));

  it('every step safe to crash after; the next open finishes; the old ring\'s records are read once', async () => {
    // the other build enforces a strict uid, and denies once with no agent reading its ring
    const old = Enforcer.open({ objectPath: other, pinDir: PIN_DIR });
    old.setUidPolicy(USER, STRICT);
    await old.close();
    expect(await chmodSuid(), 'the old build enforces').to.equal('ERR EPERM');

    // step 1: this build attaches beside it, its maps still empty; crash
    const first = Enforcer.open({ objectPath: OBJECT, pinDir: PIN_DIR });
    expect(first.adopted).to.equal(false);
    expect(first.previous.map((g) => g.buildId)).to.deep.equal([otherId]);
    expect(first.uidPolicy(USER), 'nothing written yet').to.equal(null);
    expect(await chmodSuid(), 'the old programs still deny').to.equal('ERR EPERM');
    await first.close();

    // step 2: the next open adopts its own half-done generation and writes the uid (the agent's start); crash
    const second = Enforcer.open({ objectPath: OBJECT, pinDir: PIN_DIR });
    expect(second.adopted, 'adopts its own build\'s pins').to.equal(true);
    expect(second.previous.map((g) => g.buildId)).to.deep.equal([otherId]);
    second.setUidPolicy(USER, STRICT);
    await second.close();

    // step 3 interrupted: the old links are gone (its programs stopped), its maps and ring are not
    const oldDir = generationDir(PIN_DIR, otherId);
    expect(linksOf(oldDir).length, 'the old build\'s links').to.be.greaterThan(0);
    withWritablePins(PIN_DIR, () => rmSync(join(oldDir, 'links'), { recursive: true }));
    expect(await chmodSuid(), 'this build alone denies').to.equal('ERR EPERM');

    // the next open finishes: what is left of the old generation goes, its ring's records are handed over
    const third = Enforcer.open({ objectPath: OBJECT, pinDir: PIN_DIR });
    const drained: KrsiEvent[] = [];
    const retired = await third.retirePrevious((raw) => drained.push(decodeEvent(raw)));
    expect(retired).to.deep.equal([{ buildId: otherId, detached: 0, events: 2 }]);
    expect(drained.map((e) => [e.type, e.policy, e.decision, e.uid]), 'the two denials while only the old build ran').to.deep.equal([
      ['chmod', 'fileperms', 'deny', USER],
      ['chmod', 'fileperms', 'deny', USER],
    ]);
    expect(listGenerations(PIN_DIR)).to.deep.equal([{ dir: generationDir(PIN_DIR, thisId), buildId: thisId }]);
    expect(await chmodSuid(), 'still denied after the upgrade').to.equal('ERR EPERM');
    expect(await third.retirePrevious(() => undefined), 'nothing left to retire').to.deep.equal([]);
    third.clearUidPolicy(USER);
    expect(await chmodSuid(), 'free once cleared').to.equal('OK');
    await third.close();
  });

  it('a generation that cannot be removed stays attached and listed, reported, and goes at the next try', async () => {
    const old = Enforcer.open({ objectPath: other, pinDir: PIN_DIR });
    old.setUidPolicy(USER, STRICT);
    await old.close();
    const e = Enforcer.open({ objectPath: OBJECT, pinDir: PIN_DIR });
    e.setUidPolicy(USER, STRICT);
    // something in the old links folder that is no pin: unlink fails on it
    const stuck = join(generationDir(PIN_DIR, otherId), 'links', 'zz-not-a-pin');
    withWritablePins(PIN_DIR, () => mkdirSync(stuck));
    const first = await e.retirePrevious(() => undefined);
    expect(first).to.have.length(1);
    expect(first[0]!.error, 'the failure, named').to.match(/zz-not-a-pin/);
    expect(e.previous.map((g) => g.buildId), 'still listed').to.deep.equal([otherId]);
    expect(await chmodSuid(), 'denied meanwhile').to.equal('ERR EPERM');
    withWritablePins(PIN_DIR, () => rmSync(stuck, { recursive: true }));
    const second = await e.retirePrevious(() => undefined);
    expect(second).to.have.length(1);
    expect(second[0]!.error).to.equal(undefined);
    expect(e.previous).to.deep.equal([]);
    expect(listGenerations(PIN_DIR).map((g) => g.buildId)).to.deep.equal([thisId]);
    expect(await chmodSuid(), 'denied by this build').to.equal('ERR EPERM');
    e.clearUidPolicy(USER);
    await e.close();
  });

  it('takes over 0.1.0\'s pins, straight on the bpffs above, from the folder they are moved aside to, without a gap', async () => {
    // 0.1.0 itself (test/vm/upgrade-builds.ts) pins its programs straight under PIN_DIR, on /sys/fs/bpf
    // in a process of its own: its libbpf bindings and this build's cannot share one (koffi types are global)
    const v010 = upgradeBuild('v0.1.0');
    const script = `const { Enforcer } = await import(${JSON.stringify(join(v010.root, 'dist/agent/enforcement/enforcer.js'))});
const e = Enforcer.open({ objectPath: ${JSON.stringify(join(v010.root, 'build/bpf/krsi.bpf.o'))}, pinDir: ${JSON.stringify(PIN_DIR)} });
e.setUidPolicy(${USER}, ${JSON.stringify(STRICT)});
await e.close();`;
    const legacy = await execa(process.execPath, ['--input-type=module', '-e', script], { reject: false });
    expect(legacy.exitCode, `0.1.0's enforcer: ${legacy.stderr}`).to.equal(0);
    expect(isPinFsMount(PIN_DIR), 'no file system of its own under 0.1.0').to.equal(false);
    expect(listGenerations(PIN_DIR).map((g) => g.buildId)).to.deep.equal([null]);
    expect(await chmodSuid(), '0.1.0 enforces').to.equal('ERR EPERM');

    const messages: string[] = [];
    const e = Enforcer.open({ objectPath: OBJECT, pinDir: PIN_DIR, log: (m) => messages.push(m) });
    expect(isPinFsMount(PIN_DIR), 'this build\'s pins on a file system of their own').to.equal(true);
    expect(messages.join('\n')).to.include(`to ${previousLayoutDir(PIN_DIR)}`);
    expect(e.previous).to.deep.equal([{ dir: previousLayoutDir(PIN_DIR), buildId: null }]);
    expect(await chmodSuid(), '0.1.0\'s programs, moved aside, still deny').to.equal('ERR EPERM');
    e.setUidPolicy(USER, STRICT);
    const retired = await e.retirePrevious(() => undefined);
    expect(retired).to.have.length(1);
    // 0.1.0's event records have another layout than this build's: never read
    expect(retired[0]).to.include({ buildId: null, events: null });
    expect(retired[0]!.detached).to.be.greaterThan(0);
    expect(existsSync(previousLayoutDir(PIN_DIR)), 'the folder they were moved to is gone').to.equal(false);
    expect(readdirSync(PIN_DIR), 'only this build\'s folder').to.deep.equal([`build-${thisId}`]);
    expect(await chmodSuid(), 'denied by this build').to.equal('ERR EPERM');
    e.clearUidPolicy(USER);
    expect(await chmodSuid(), 'free once cleared: nothing of 0.1.0 enforces any more').to.equal('OK');
    await e.close();
  });
});
