/**
 * Upgrading another build's pinned programs (Enforcer.open / retirePrevious) on the real kernel, one step
 * at a time, with a crash (an Enforcer dropped without finishing) between the steps: the other build is
 * this checkout's sources under another build id (test/vm/upgrade-builds.ts). At every step the uid under
 * policy stays denied, and the next open finishes what the crash left. The whole agent upgrading under
 * systemd, from real older builds, is test/systemd/2-upgrade.spec.ts.
 */
import { expect } from 'chai';
import { chmodSync, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Enforcer } from '../../agent/enforcement/enforcer.js';
import { generationDir, listGenerations, readBuildId } from '../../agent/enforcement/generations.js';
import { decodeEvent, type KrsiEvent } from '../../agent/enforcement/layout.js';
import { UPGRADE_BUILDS_ENV, type UpgradeBuilds } from '../vm/upgrade-builds.js';
import { OBJECT, SCRATCH, USER, modes, policy, probe, startFixture } from './fixture.js';

const PIN_DIR = '/sys/fs/bpf/krsi-upgrade-test';
const STRICT = policy({ modes: modes({ fileperms: 'enforce' }) });

function otherBuildObject(): string {
  const text = process.env[UPGRADE_BUILDS_ENV];
  if (!text) throw new Error(`${UPGRADE_BUILDS_ENV} is not set: run the kernel specs through test/vm/run-kernel-specs.ts`);
  const salted = (JSON.parse(text) as UpgradeBuilds).builds.find((b) => b.name === 'salted');
  if (!salted) throw new Error(`no build of this checkout under another build id: ${text}`);
  return join(salted.root, 'build/bpf/krsi.bpf.o');
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
    rmSync(join(oldDir, 'links'), { recursive: true });
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
    mkdirSync(stuck);
    const first = await e.retirePrevious(() => undefined);
    expect(first).to.have.length(1);
    expect(first[0]!.error, 'the failure, named').to.match(/zz-not-a-pin/);
    expect(e.previous.map((g) => g.buildId), 'still listed').to.deep.equal([otherId]);
    expect(await chmodSuid(), 'denied meanwhile').to.equal('ERR EPERM');
    rmSync(stuck, { recursive: true });
    const second = await e.retirePrevious(() => undefined);
    expect(second).to.have.length(1);
    expect(second[0]!.error).to.equal(undefined);
    expect(e.previous).to.deep.equal([]);
    expect(listGenerations(PIN_DIR).map((g) => g.buildId)).to.deep.equal([thisId]);
    expect(await chmodSuid(), 'denied by this build').to.equal('ERR EPERM');
    e.clearUidPolicy(USER);
    await e.close();
  });

  it('retires 0.1.0\'s layout (links/ and maps/ straight under the pin dir) and leaves the pin dir to this build', async () => {
    // 0.1.0's layout: the same programs, pinned without a build folder (made here by moving this build's pins)
    const legacy = Enforcer.open({ objectPath: other, pinDir: PIN_DIR });
    legacy.setUidPolicy(USER, STRICT);
    await legacy.close();
    const oldDir = generationDir(PIN_DIR, otherId);
    for (const sub of ['links', 'maps']) {
      mkdirSync(join(PIN_DIR, sub));
      for (const name of readdirSync(join(oldDir, sub))) {
        // a rename within bpffs moves the pin, as 0.1.0 would have made it
        renameSync(join(oldDir, sub, name), join(PIN_DIR, sub, name));
      }
      rmSync(join(oldDir, sub), { recursive: true });
    }
    rmSync(oldDir, { recursive: true });
    expect(listGenerations(PIN_DIR).map((g) => g.buildId)).to.deep.equal([null]);
    expect(await chmodSuid(), '0.1.0\'s layout enforces').to.equal('ERR EPERM');

    const e = Enforcer.open({ objectPath: OBJECT, pinDir: PIN_DIR });
    expect(e.previous).to.deep.equal([{ dir: PIN_DIR, buildId: null }]);
    e.setUidPolicy(USER, STRICT);
    const retired = await e.retirePrevious(() => undefined);
    expect(retired).to.have.length(1);
    expect(retired[0]).to.include({ buildId: null, events: 1 });
    expect(retired[0]!.detached).to.be.greaterThan(0);
    expect(readdirSync(PIN_DIR), 'only this build\'s folder').to.deep.equal([`build-${thisId}`]);
    expect(await chmodSuid(), 'denied by this build').to.equal('ERR EPERM');
    e.clearUidPolicy(USER);
    await e.close();
  });
});
