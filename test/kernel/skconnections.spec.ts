/**
 * skconnections on the real kernel. The VM has no network device: a destination that the policy lets
 * through fails with ENETUNREACH (or ECONNREFUSED on loopback), one it stops fails with EPERM, so every
 * verdict is visible without a packet leaving the VM. Forbidden ranges are the documentation ranges.
 */
import { expect } from 'chai';
import { parseCidr } from '../../agent/enforcement/cidr.js';
import {
  OTHER, USER, checkAccounting, eventsSince, events, getEnforcer, modes, policy, probe,
} from './fixture.js';

const rules = (verdict: 'allow' | 'deny', ...cidrs: string[]) => cidrs.map((c) => ({ cidr: parseCidr(c), verdict }));
const DENY = rules('deny', '192.0.2.0/24', '2001:db8::/32', '198.51.100.7');

describe('skconnections (kernel)', function () {
  checkAccounting('skconnections');

  beforeEach(() => {
    getEnforcer().setUidPolicy(USER, policy({ modes: modes({ skconnections: 'enforce' }), connectRules: DENY }));
  });
  afterEach(() => {
    getEnforcer().clearUidPolicy(USER);
  });

  describe('deny-list', () => {
    const denied: [string, string[]][] = [
      ['TCP connect to an IPv4 address in a denied /24', ['connect4', '192.0.2.10', '22', 'tcp']],
      ['UDP connect to it', ['connect4', '192.0.2.10', '53', 'udp']],
      ['TCP connect to a denied IPv4 host route', ['connect4', '198.51.100.7', '80', 'tcp']],
      ['TCP connect to a denied IPv6 /32', ['connect6', '2001:db8:1::5', '22', 'tcp']],
      ['UDP connect over IPv6', ['connect6', '2001:db8::53', '53', 'udp']],
      ['TCP connect to the IPv4-mapped IPv6 form of a denied IPv4 address', ['connect6', '192.0.2.10', '22', 'tcp']],
      ['an AF_INET destination given to an AF_INET6 UDP socket', ['connect6-v4addr', '192.0.2.10', '53']],
      ['unconnected sendto over IPv4', ['sendto4', '192.0.2.20', '53']],
      ['unconnected sendto over IPv6', ['sendto6', '2001:db8::20', '53']],
      ['unconnected sendto to an IPv4-mapped address', ['sendto6', '192.0.2.20', '53']],
      ['sendmsg with msg_name over IPv4', ['sendmsg4', '192.0.2.30', '123']],
      ['sendmsg with msg_name over IPv6', ['sendmsg6', '2001:db8::30', '123']],
    ];
    for (const [title, args] of denied) {
      it(`denies ${title}`, async () => {
        expect(await probe(USER, ...args)).to.equal('ERR EPERM');
      });
    }

    it('logs proto, family, address and port as the test sent them (figure 11)', async () => {
      let from = events.length;
      await probe(USER, 'connect4', '192.0.2.10', '22', 'tcp');
      let [e] = await eventsSince(from, (x) => x.type === 'skconn');
      expect(e).to.include({ policy: 'skconnections', decision: 'deny', uid: USER, family: 2, proto: 6, addr: '192.0.2.10', port: 22, comm: 'krsi-probe' });
      from = events.length;
      await probe(USER, 'sendto6', '2001:db8::20', '53');
      [e] = await eventsSince(from, (x) => x.type === 'sksend');
      expect(e).to.include({ family: 10, proto: 17, addr: '2001:db8::20', port: 53 });
      from = events.length;
      await probe(USER, 'connect6', '192.0.2.10', '443', 'tcp');
      [e] = await eventsSince(from, (x) => x.type === 'skconn');
      expect(e).to.include({ family: 10, addr: '::ffff:192.0.2.10', port: 443 });
    });

    it('allows destinations outside the list (ENETUNREACH, ECONNREFUSED: the kernel went on)', async () => {
      const from = events.length;
      expect(await probe(USER, 'connect4', '203.0.113.5', '22', 'tcp')).to.equal('ERR ENETUNREACH');
      expect(await probe(USER, 'connect4', '192.0.3.1', '22', 'tcp')).to.equal('ERR ENETUNREACH');
      expect(await probe(USER, 'connect6', '2001:db9::1', '22', 'tcp')).to.equal('ERR ENETUNREACH');
      expect(await probe(USER, 'connect4', '127.0.0.1', '1', 'tcp')).to.equal('ERR ECONNREFUSED');
      expect(await probe(USER, 'connect6', '::1', '1', 'tcp')).to.equal('ERR ECONNREFUSED');
      expect(await probe(USER, 'sendto4', '127.0.0.1', '9')).to.equal('OK');
      expect(events.slice(from).filter((e) => e.policy === 'skconnections')).to.have.length(0);
    });

    it('does not restrict another uid or root', async () => {
      expect(await probe(OTHER, 'connect4', '192.0.2.10', '22', 'tcp')).to.equal('ERR ENETUNREACH');
      expect(await probe(0, 'sendto6', '2001:db8::20', '53')).to.equal('ERR ENETUNREACH');
    });

    it('judges the unspecified address as loopback, so 0.0.0.0 cannot reach a denied 127.0.0.0/8', async () => {
      getEnforcer().setUidPolicy(USER, policy({ modes: modes({ skconnections: 'enforce' }), connectRules: rules('deny', '127.0.0.0/8', '::1') }));
      expect(await probe(USER, 'connect4', '0.0.0.0', '1', 'tcp')).to.equal('ERR EPERM');
      expect(await probe(USER, 'connect6', '::', '1', 'tcp')).to.equal('ERR EPERM');
      expect(await probe(USER, 'connect6', '0.0.0.0', '1', 'tcp')).to.equal('ERR EPERM');
    });
  });

  describe('allow-list', () => {
    beforeEach(() => {
      getEnforcer().setUidPolicy(USER, policy({
        modes: modes({ skconnections: 'enforce' }),
        connectDefault: 'deny',
        connectRules: [...rules('allow', '127.0.0.0/8', '::1/128', '198.51.100.0/24'), ...rules('deny', '198.51.100.128/25')],
      }));
    });

    it('denies everything not listed, over IPv4, IPv6 and sendto', async () => {
      expect(await probe(USER, 'connect4', '203.0.113.5', '22', 'tcp')).to.equal('ERR EPERM');
      expect(await probe(USER, 'connect6', '2001:db8::1', '22', 'tcp')).to.equal('ERR EPERM');
      expect(await probe(USER, 'sendto4', '192.0.2.1', '53')).to.equal('ERR EPERM');
    });

    it('allows the listed networks, IPv4-mapped included', async () => {
      expect(await probe(USER, 'connect4', '127.0.0.1', '1', 'tcp')).to.equal('ERR ECONNREFUSED');
      expect(await probe(USER, 'connect6', '::1', '1', 'tcp')).to.equal('ERR ECONNREFUSED');
      expect(await probe(USER, 'connect6', '127.0.0.1', '1', 'tcp')).to.equal('ERR ECONNREFUSED');
      expect(await probe(USER, 'connect4', '198.51.100.9', '22', 'tcp')).to.equal('ERR ENETUNREACH');
    });

    it('a deny rule inside an allowed network carves a hole in it (longest prefix wins)', async () => {
      expect(await probe(USER, 'connect4', '198.51.100.200', '22', 'tcp')).to.equal('ERR EPERM');
      expect(await probe(USER, 'connect6', '198.51.100.200', '22', 'tcp')).to.equal('ERR EPERM');
      expect(await probe(USER, 'connect4', '198.51.100.127', '22', 'tcp')).to.equal('ERR ENETUNREACH');
    });
  });

  describe('modes and lifetimes', () => {
    it('audit mode lets the connect proceed and logs audit', async () => {
      getEnforcer().setUidPolicy(USER, policy({ modes: modes({ skconnections: 'audit' }), connectRules: DENY }));
      const from = events.length;
      expect(await probe(USER, 'connect4', '192.0.2.10', '22', 'tcp')).to.equal('ERR ENETUNREACH');
      const [e] = await eventsSince(from, (x) => x.type === 'skconn');
      expect(e).to.include({ decision: 'audit', uid: USER, addr: '192.0.2.10' });
    });

    it('replacing the policy swaps the lists atomically and leaves no stale entries', async () => {
      const enforcer = getEnforcer();
      await enforcer.settle(); // sets retired by earlier tests go after a grace period
      const before = enforcer.setEntryCounts().connect_cidrs;
      enforcer.setUidPolicy(USER, policy({ modes: modes({ skconnections: 'enforce' }), connectRules: rules('deny', '203.0.113.0/24') }));
      await enforcer.settle(); // the old set goes after a grace period
      expect(enforcer.setEntryCounts().connect_cidrs).to.equal(before - DENY.length + 1);
      expect(await probe(USER, 'connect4', '203.0.113.5', '22', 'tcp')).to.equal('ERR EPERM');
      expect(await probe(USER, 'connect4', '192.0.2.10', '22', 'tcp')).to.equal('ERR ENETUNREACH');
    });

    it('clearing the policy restores access and removes its trie entries', async () => {
      expect(await probe(USER, 'connect4', '192.0.2.10', '22', 'tcp')).to.equal('ERR EPERM');
      await getEnforcer().settle();
      const before = getEnforcer().setEntryCounts().connect_cidrs;
      getEnforcer().clearUidPolicy(USER);
      await getEnforcer().settle();
      expect(getEnforcer().setEntryCounts().connect_cidrs).to.equal(before - DENY.length);
      expect(await probe(USER, 'connect4', '192.0.2.10', '22', 'tcp')).to.equal('ERR ENETUNREACH');
    });
  });
});
