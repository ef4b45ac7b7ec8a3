/**
 * Folding on the real kernel (bpf/krsi.h): repeats of one action within the fold window get no event of
 * their own and are reported as `repeats` by the action's next event; distinct actions each get their
 * event; a flood of one action hides no other action, of the same uid or of another. Every decision is
 * counted: decisions = events + folded (+ dropped, which must stay 0 here).
 */
import { expect } from 'chai';
import { join } from 'node:path';
import type { KrsiEvent } from '../../agent/enforcement/layout.js';
import { formatEvent } from '../../agent/events/format.js';
import { parseCidr } from '../../agent/enforcement/cidr.js';
import { OTHER, PROBE, USER, eventsSince, events, getEnforcer, modes, policy, probe, runAs, shellAs, startFixture, userDir } from './fixture.js';
import { scaled, waitFor } from '../vm/pace.js';

type Counters = ReturnType<ReturnType<typeof getEnforcer>['counters']>;

/** decisions, folded and dropped of some policies since `base` */
function since(base: Counters, policies: (keyof Counters)[]): { decisions: bigint; folded: bigint; dropped: bigint } {
  const now = getEnforcer().counters();
  let decisions = 0n, folded = 0n, dropped = 0n;
  for (const p of policies) {
    decisions += now[p].deny - base[p].deny + now[p].audit - base[p].audit;
    folded += now[p].folded - base[p].folded;
    dropped += now[p].dropped - base[p].dropped;
  }
  return { decisions, folded, dropped };
}

const deniedNet = policy({
  modes: modes({ skconnections: 'enforce', fileperms: 'enforce' }),
  connectRules: [{ cidr: parseCidr('192.0.2.0/24'), verdict: 'deny' }, { cidr: parseCidr('198.51.100.0/24'), verdict: 'deny' }],
});

const skconnTo = (uid: number, addr: string, port: number) => (e: KrsiEvent) =>
  e.type === 'skconn' && e.uid === uid && e.addr === addr && e.port === port;

describe('folding repeated decisions (kernel)', function () {
  this.timeout(scaled(180_000));

  // its own fixture: run alone (KRSI_VM_GREP) no other spec file has started it
  before(async () => {
    await startFixture();
  });
  beforeEach(() => {
    getEnforcer().setUidPolicy(USER, deniedNet);
    getEnforcer().setUidPolicy(OTHER, deniedNet);
  });
  afterEach(() => {
    getEnforcer().clearUidPolicy(USER);
    getEnforcer().clearUidPolicy(OTHER);
  });

  it('repeats of one action: one event at once, the count on the action\'s next event after the window', async () => {
    const base = getEnforcer().counters();
    const from = events.length;
    expect(await probe(USER, '--repeat', '500', 'connect4', '192.0.2.1', '9', 'udp')).to.equal('ERR EPERM');
    const [first] = await eventsSince(from, skconnTo(USER, '192.0.2.1', 9));
    expect(first).to.include({ repeats: 0, foldScope: 'exact', decision: 'deny' });
    expect(since(base, ['skconnections']).folded).to.equal(499n);

    // the same action again until it gets its next event: that one reports every decision folded before it
    let attempts = 0;
    const [second] = await waitFor('the repeated connect\'s next event, once the fold window has passed', async () => {
      attempts++;
      expect(await probe(USER, 'connect4', '192.0.2.1', '9', 'udp')).to.equal('ERR EPERM');
      const found = events.slice(from).filter(skconnTo(USER, '192.0.2.1', 9));
      return found.length >= 2 && found.slice(1);
    }, { timeoutMs: 30_000, intervalMs: 100 });
    const total = since(base, ['skconnections']);
    console.log(`      501 + ${attempts - 1} decisions: 2 events, the second with repeats=${second!.repeats}`);
    expect(total.decisions).to.equal(BigInt(500 + attempts));
    expect(BigInt(second!.repeats)).to.equal(total.folded);
    expect(second!.repeats).to.equal(500 + attempts - 2);
    expect(total.decisions).to.equal(2n + total.folded);
    expect(formatEvent(second!, { time: new Date(0) })).to.match(/ dport=9 act=deny repeats=\d+$/);
  });

  it('distinct actions each get their event: another port, address, family, socket type, file and mode', async () => {
    const dir = await userDir(USER, 'fold-distinct');
    expect((await shellAs(USER, '0022', `touch ${dir}/a ${dir}/b`)).exitCode).to.equal(0);
    const base = getEnforcer().counters();
    const from = events.length;
    const attempts: string[][] = [
      ['--repeat', '5', 'connect4', '192.0.2.1', '%i', 'udp'], // ports 1..5
      ['connect4', '192.0.2.2', '1', 'udp'],
      ['connect4', '198.51.100.1', '1', 'udp'],
      ['connect4', '192.0.2.1', '1', 'tcp'],
      ['connect6', '::ffff:192.0.2.1', '1', 'udp'],
      ['sendto4', '192.0.2.1', '1'],
      ['chmod', join(dir, 'a'), '04755'],
      ['chmod', join(dir, 'b'), '04755'],
      ['chmod', join(dir, 'a'), '0666'],
    ];
    for (const argv of attempts) expect(await probe(USER, ...argv), argv.join(' ')).to.equal('ERR EPERM');
    const expected = 5 + attempts.length - 1;
    const got = await eventsSince(from, (e) => e.uid === USER && (e.policy === 'skconnections' || e.policy === 'fileperms'), expected);
    expect(got.every((e) => e.repeats === 0)).to.equal(true);
    expect(got.filter((e) => e.type === 'skconn' && e.addr === '192.0.2.1' && e.proto === 17).map((e) => e.port).sort()).to.deep.equal([1, 2, 3, 4, 5]);
    expect(got.filter((e) => e.type === 'chmod').map((e) => `${e.name} ${(e.newMode & 0o7777).toString(8)}`).sort()).to.deep.equal(['a 4755', 'a 666', 'b 4755']);
    const total = since(base, ['skconnections', 'fileperms']);
    expect(total).to.deep.equal({ decisions: BigInt(expected), folded: 0n, dropped: 0n });
  });

  it('a flood of one action hides no other action of the same uid, nor the same action of another uid', async () => {
    const dir = await userDir(USER, 'fold-flood');
    expect((await shellAs(USER, '0022', `touch ${dir}/other-file`)).exitCode).to.equal(0);
    const base = getEnforcer().counters();
    const from = events.length;
    // the flood runs while the probes below do: tens of thousands of denied connects from one process
    const flood = runAs(USER, PROBE, ['--repeat', '40000', 'connect4', '192.0.2.1', '9', 'udp']);
    await eventsSince(from, skconnTo(USER, '192.0.2.1', 9));
    expect(await probe(USER, 'connect4', '198.51.100.7', '443', 'tcp')).to.equal('ERR EPERM');
    expect(await probe(USER, 'chmod', join(dir, 'other-file'), '0666')).to.equal('ERR EPERM');
    expect(await probe(OTHER, 'connect4', '192.0.2.1', '9', 'udp')).to.equal('ERR EPERM');
    const floodResult = await flood;
    expect(floodResult.stdout).to.equal('ERR EPERM');

    await eventsSince(from, skconnTo(USER, '198.51.100.7', 443));
    await eventsSince(from, (e) => e.type === 'chmod' && e.uid === USER && e.name === 'other-file');
    await eventsSince(from, skconnTo(OTHER, '192.0.2.1', 9));
    const total = since(base, ['skconnections', 'fileperms']);
    const received = events.slice(from).filter((e) => (e.uid === USER || e.uid === OTHER) && (e.policy === 'skconnections' || e.policy === 'fileperms'));
    const floodEvents = received.filter(skconnTo(USER, '192.0.2.1', 9));
    console.log(`      ${total.decisions} decisions: ${received.length} events (${floodEvents.length} of the flooded action), ${total.folded} folded, ${total.dropped} dropped`);
    expect(total.decisions).to.equal(40003n);
    expect(total.dropped).to.equal(0n);
    expect(total.decisions).to.equal(BigInt(received.length) + total.folded);
    // the flooded action: one event per fold window at most, plus the first
    expect(floodEvents.length).to.be.below(40);
  });
});
