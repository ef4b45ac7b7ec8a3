/**
 * The uid_bits bitmap in front of uid_policy: the programs look a uid's policy up only when its bit is
 * set. Two uids that differ by a multiple of 65536 share a bit; clearing one of them must leave the
 * other enforced, and a bit is cleared only when no uid with a policy needs it.
 */
import { expect } from 'chai';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { BpfMap } from '../../libbpf-ts/index.js';
import { Enforcer } from '../../agent/enforcement/enforcer.js';
import { uidBitmapSlot } from '../../agent/enforcement/layout.js';
import { withWritablePins } from '../../agent/enforcement/pin-fs.js';
import { OBJECT, PIN_DIR, USER, checkAccounting, getEnforcer, modes, policy, shellAs, userDir } from './fixture.js';

/** a uid that shares USER's bit: same low 16 bits */
const TWIN = USER + 65536;
const FILEPERMS = policy({ modes: modes({ fileperms: 'enforce' }) });

async function chmodSuid(uid: number, name: string): Promise<{ exitCode: number; mode: number }> {
  const dir = await userDir(uid, name);
  const path = join(dir, 'f');
  expect((await shellAs(uid, '0022', `touch ${path}`)).exitCode).to.equal(0);
  const r = await shellAs(uid, '0022', `chmod u+s ${path}`);
  return { exitCode: r.exitCode, mode: statSync(path).mode & 0o7777 };
}

describe('uid bitmap (kernel)', function () {
  checkAccounting('fileperms');

  afterEach(() => {
    getEnforcer().clearUidPolicy(USER);
    getEnforcer().clearUidPolicy(TWIN);
  });

  it('two uids share a bit: clearing one keeps the other enforced, clearing both clears the bit', async () => {
    const enforcer = getEnforcer();
    expect(uidBitmapSlot(TWIN, 1024)).to.deep.equal(uidBitmapSlot(USER, 1024));
    expect(enforcer.uidBitSet(USER)).to.equal(false);

    enforcer.setUidPolicy(USER, FILEPERMS);
    enforcer.setUidPolicy(TWIN, FILEPERMS);
    expect(enforcer.uidBitSet(USER)).to.equal(true);
    expect((await chmodSuid(USER, 'bits-a')).mode).to.equal(0o644);
    expect((await chmodSuid(TWIN, 'bits-a')).mode).to.equal(0o644);

    expect(enforcer.clearUidPolicy(TWIN)).to.equal(true);
    expect(enforcer.uidBitSet(USER), 'bit kept for the uid still under policy').to.equal(true);
    const user = await chmodSuid(USER, 'bits-b');
    expect(user.exitCode).to.not.equal(0);
    expect(user.mode).to.equal(0o644);
    expect((await chmodSuid(TWIN, 'bits-b')).mode, 'the cleared uid is free').to.equal(0o4644);

    expect(enforcer.clearUidPolicy(USER)).to.equal(true);
    expect(enforcer.uidBitSet(USER)).to.equal(false);
    expect((await chmodSuid(USER, 'bits-c')).mode).to.equal(0o4644);
  });

  it('other bits of a word survive a write of that word', async () => {
    const enforcer = getEnforcer();
    const neighbour = USER + 1; // same word, next bit
    enforcer.setUidPolicy(USER, FILEPERMS);
    enforcer.setUidPolicy(neighbour, FILEPERMS);
    try {
      enforcer.clearUidPolicy(neighbour);
      expect(enforcer.uidBitSet(USER)).to.equal(true);
      expect(enforcer.uidBitSet(neighbour)).to.equal(false);
      expect((await chmodSuid(USER, 'bits-d')).mode).to.equal(0o644);
    } finally {
      enforcer.clearUidPolicy(neighbour);
    }
  });

  it('the programs skip a uid whose bit is clear, and an agent that opens the pinned maps restores the bit', async () => {
    const enforcer = getEnforcer();
    enforcer.setUidPolicy(USER, FILEPERMS);
    const { word } = uidBitmapSlot(USER, 1024);
    const key = Buffer.alloc(4);
    key.writeUInt32LE(word);
    // a read-write open of a pin is a write to the pins' read-only file system: made writable for it
    const bits = withWritablePins(PIN_DIR, () => BpfMap.openPinned(join(enforcer.generationDir, 'maps/uid_bits')));
    try {
      // what a bitmap that lost the bit (e.g. created after the entries) would do: the policy is not consulted
      bits.update(key, Buffer.alloc(8));
      expect((await chmodSuid(USER, 'bits-e')).mode).to.equal(0o4644);
    } finally {
      bits.close();
    }
    const second = Enforcer.open({ objectPath: OBJECT, pinDir: PIN_DIR });
    try {
      expect(second.adopted).to.equal(true);
      expect(enforcer.uidBitSet(USER)).to.equal(true);
      expect((await chmodSuid(USER, 'bits-f')).mode).to.equal(0o644);
    } finally {
      await second.close();
    }
  });
});
