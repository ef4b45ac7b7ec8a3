/**
 * Nothing unaccounted, and no flood hides an action, with a small ring buffer that nobody reads while the
 * actions run: every decision counts, and events received + folded + dropped equal the kernel's decision
 * counters exactly. Each test has its own pinned programs and ring.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import { Enforcer } from '../../agent/enforcement/enforcer.js';
import type { KrsiEvent, PolicyName } from '../../agent/enforcement/layout.js';
import { OBJECT, OTHER, USER, modes, policy, probe, shellAs, userDir } from './fixture.js';
import { parseCidr } from '../../agent/enforcement/cidr.js';
import { scaled, waitFor } from '../vm/pace.js';

const PIN = '/sys/fs/bpf/krsi-accounting-test';

const strict = policy({
  modes: modes({ skconnections: 'audit', fileperms: 'enforce', sshlisteners: 'enforce' }),
  connectRules: [{ cidr: parseCidr('192.0.2.0/24'), verdict: 'deny' }],
});

describe('event accounting with a small ring buffer (kernel)', function () {
  this.timeout(scaled(180_000));
  let enforcer: Enforcer;
  const uids: number[] = [];

  function open(ringBufferBytes: number): void {
    Enforcer.removePinned(PIN);
    enforcer = Enforcer.open({ objectPath: OBJECT, pinDir: PIN, ringBufferBytes });
  }

  afterEach(async () => {
    for (const uid of uids.splice(0)) enforcer.clearUidPolicy(uid);
    await enforcer.close();
    Enforcer.removePinned(PIN);
  });

  function underPolicy(...list: number[]): void {
    for (const uid of list) {
      enforcer.setUidPolicy(uid, strict);
      uids.push(uid);
    }
  }

  /** read what is in the ring, and check decisions = received + folded + dropped for the policies */
  async function receiveAll(policies: PolicyName[]): Promise<{ received: KrsiEvent[]; decisions: bigint; folded: bigint; dropped: bigint }> {
    const sum = (slot: 'deny' | 'audit' | 'folded' | 'dropped') => policies.reduce((n, p) => n + enforcer.counters()[p][slot], 0n);
    const decisions = sum('deny') + sum('audit');
    const folded = sum('folded');
    const dropped = sum('dropped');
    const received: KrsiEvent[] = [];
    enforcer.subscribe((e) => received.push(e));
    // what was waiting in the ring arrives; the check below would also catch an extra event
    await waitFor('every event that fitted in the ring to be delivered', () => BigInt(received.length) + folded + dropped >= decisions)
      .catch(() => undefined);
    await enforcer.unsubscribe();
    expect(BigInt(received.length) + folded + dropped, `${received.length} received + ${folded} folded + ${dropped} dropped = ${decisions} decisions`)
      .to.equal(decisions);
    console.log(`      ${decisions} decisions: ${received.length} events delivered, ${folded} folded, ${dropped} dropped`);
    return { received, decisions, folded, dropped };
  }

  it('counts every decision: repeats fold, distinct actions of many uids fill the ring and the rest is counted as dropped', async () => {
    open(4096); // one page: room for 20 records
    const many = Array.from({ length: 30 }, (_, i) => 3000 + i);
    underPolicy(USER, ...many);
    // one uid repeats one action: one event, 59 folded
    expect(await probe(USER, '--repeat', '60', 'sendto4', '192.0.2.1', '9')).to.equal('ERR ENETUNREACH');
    // 30 uids, one distinct action each, nobody reading: more than the ring holds
    for (const uid of many) expect(await probe(uid, 'sendto4', '192.0.2.1', String(uid))).to.equal('ERR ENETUNREACH');
    const { received, folded, dropped } = await receiveAll(['skconnections']);
    expect(folded).to.equal(59n);
    expect(dropped > 0n, 'some events must have been dropped').to.equal(true);
    expect(received.find((e) => e.uid === USER)).to.include({ port: 9, repeats: 0 });
  });

  it('a uid flooding distinct actions into a filling ring folds by kind; its other actions and other uids\' still get events', async () => {
    open(16384); // 81 records: past 40 the ring is half full, and a uid's share is 81/16 = 5 a second
    underPolicy(USER, OTHER);
    const dir = await userDir(USER, 'accounting');
    expect((await shellAs(USER, '0022', `touch ${dir}/probe-file`)).exitCode).to.equal(0);
    // 2000 distinct destinations from one process, far more than the ring holds
    expect(await probe(USER, '--repeat', '2000', 'sendto4', '192.0.2.1', '%i')).to.equal('ERR ENETUNREACH');
    // the same uid's actions of other kinds, and another uid's action of the flooded kind
    expect(await probe(USER, 'chmod', join(dir, 'probe-file'), '04755')).to.equal('ERR EPERM');
    expect(await probe(USER, '--comm', 'ssh', 'listen4', '127.0.0.1', '2222')).to.equal('ERR EPERM');
    expect(await probe(OTHER, 'sendto4', '192.0.2.1', '7')).to.equal('ERR ENETUNREACH');

    const { received, folded, dropped } = await receiveAll(['skconnections', 'fileperms', 'sshlisteners']);
    expect(dropped, 'nothing dropped: the flood folded instead').to.equal(0n);
    expect(folded > 1000n, `most of the flood folded (${folded})`).to.equal(true);
    const kind = received.filter((e) => e.uid === USER && e.type === 'sksend' && e.foldScope === 'kind');
    expect(kind.length, 'the flood\'s events by kind').to.be.at.least(1);
    expect(received.some((e) => e.uid === USER && e.type === 'chmod' && e.name === 'probe-file'), 'the flooding uid\'s chmod').to.equal(true);
    expect(received.some((e) => e.uid === USER && e.type === 'listen' && e.port === 2222), 'the flooding uid\'s listen').to.equal(true);
    expect(received.some((e) => e.uid === OTHER && e.type === 'sksend' && e.port === 7 && e.foldScope === 'exact'), 'the other uid\'s send').to.equal(true);
    const ports = new Set(received.filter((e) => e.uid === USER && e.type === 'sksend' && e.foldScope === 'exact').map((e) => e.port));
    console.log(`      the flood: ${ports.size} distinct destinations logged one by one, ${kind.length} event(s) by kind`);
    expect(ports.size).to.be.at.least(40);
  });
});
