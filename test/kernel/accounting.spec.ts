/**
 * Nothing unaccounted: when the ring buffer is full, a decision still counts, its event is counted as
 * dropped, and events received + dropped equal the kernel's decision counters exactly.
 */
import { expect } from 'chai';
import { Enforcer } from '../../agent/enforcement/enforcer.js';
import type { KrsiEvent } from '../../agent/enforcement/layout.js';
import { OBJECT, USER, modes, policy, probe } from './fixture.js';
import { parseCidr } from '../../agent/enforcement/cidr.js';
import { scaled, waitFor } from '../vm/pace.js';

const PIN = '/sys/fs/bpf/krsi-accounting-test';

describe('event accounting with a full ring buffer (kernel)', function () {
  this.timeout(scaled(120_000));
  let enforcer: Enforcer;

  before(() => {
    Enforcer.removePinned(PIN);
    // one page: room for about 20 records of 192 bytes (+ 8-byte headers)
    enforcer = Enforcer.open({ objectPath: OBJECT, pinDir: PIN, ringBufferBytes: 4096 });
  });
  after(async () => {
    enforcer.clearUidPolicy(USER);
    await enforcer.close();
    Enforcer.removePinned(PIN);
  });

  it('counts every decision, drops what does not fit, and received + dropped = decisions', async () => {
    enforcer.setUidPolicy(USER, policy({
      modes: modes({ skconnections: 'audit' }),
      connectRules: [{ cidr: parseCidr('192.0.2.0/24'), verdict: 'deny' }],
    }));
    const attempts = 60;
    // nobody consumes while the probes run: the ring fills up
    for (let i = 0; i < attempts; i++) expect(await probe(USER, 'sendto4', '192.0.2.1', '9')).to.equal('ERR ENETUNREACH');
    const counters = enforcer.counters().skconnections;
    expect(counters.audit).to.equal(BigInt(attempts));
    expect(counters.dropped > 0n, 'some events must have been dropped').to.equal(true);

    const received: KrsiEvent[] = [];
    enforcer.subscribe((e) => received.push(e));
    // what was waiting in the ring arrives; the check below would also catch an extra event
    await waitFor('every event that fitted in the ring to be delivered', () => BigInt(received.length) + counters.dropped >= counters.audit)
      .catch(() => undefined);
    await enforcer.unsubscribe();
    expect(received.length).to.be.above(0);
    expect(BigInt(received.length) + counters.dropped).to.equal(counters.audit);
    console.log(`      ${attempts} decisions: ${received.length} events delivered, ${counters.dropped} counted as dropped`);
  });
});
