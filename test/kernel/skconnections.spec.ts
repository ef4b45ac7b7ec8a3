/**
 * skconnections on the real kernel. The VM has no network device: a destination that the policy lets
 * through fails with ENETUNREACH (or ECONNREFUSED on loopback), one it stops fails with EPERM, so every
 * verdict is visible without a packet leaving the VM. Forbidden ranges are the documentation ranges.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { parseCidr } from '../../agent/enforcement/cidr.js';
import { withNat64 } from '../../agent/service/merge.js';
import {
  OTHER, PROBE, USER, checkAccounting, eventsSince, events, getEnforcer, modes, policy, probe, runAs,
} from './fixture.js';

const rules = (verdict: 'allow' | 'deny', ...cidrs: string[]) => cidrs.map((c) => ({ cidr: parseCidr(c), verdict }));
const DENY = rules('deny', '192.0.2.0/24', '2001:db8::/32', '198.51.100.7');
const ALLOW_LOOPBACK = { connectDefault: 'deny' as const, connectRules: rules('allow', '127.0.0.0/8', '::1/128') };

/** krsi-probe as a uid that holds CAP_NET_RAW (ambient, as a capability-aware launcher would give it) */
async function probeWithNetRaw(uid: number, ...args: string[]): Promise<string> {
  const r = await runAs(0, 'setpriv', [
    `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--inh-caps=+net_raw', '--ambient-caps=+net_raw', PROBE, ...args,
  ]);
  return r.stdout.split('\n').pop() ?? r.stderr;
}

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

  describe('the family the kernel will use for the address', () => {
    it('an AF_UNSPEC destination on an IPv4 UDP socket is sent as IPv4 (udp_sendmsg): judged as such', async () => {
      const from = events.length;
      expect(await probe(USER, 'sendto4-unspec', '192.0.2.20', '53')).to.equal('ERR EPERM');
      const [e] = await eventsSince(from, (x) => x.type === 'sksend');
      expect(e).to.include({ family: 2, addr: '192.0.2.20', port: 53, name: 'AF_UNSPEC' });
      expect(await probe(USER, 'sendto4-unspec', '127.0.0.1', '9')).to.equal('OK');
      // without the policy the datagram really heads for 192.0.2.20: no route in the VM
      expect(await probe(OTHER, 'sendto4-unspec', '192.0.2.20', '53')).to.equal('ERR ENETUNREACH');
    });

    it('on an IPv6 UDP socket AF_UNSPEC means "no address" (udpv6_sendmsg), and connect() with it disconnects', async () => {
      expect(await probe(USER, 'sendto6-unspec', '2001:db8::20', '53')).to.equal('ERR EDESTADDRREQ');
      expect(await probe(USER, 'connect-family', '0', '4', 'udp', '192.0.2.10', '53')).to.equal('OK');
      expect(await probe(USER, 'connect-family', '0', '6', 'tcp', '2001:db8::10', '22')).to.equal('OK');
    });

    it('refuses families it cannot judge on IPv4/IPv6 sockets, in a deny-list and in an allow-list', async () => {
      const from = events.length;
      expect(await probe(USER, 'connect-family', '5', '4', 'tcp', '127.0.0.1', '1')).to.equal('ERR EPERM');
      expect(await probe(USER, 'connect-family', '17', '6', 'udp', '::1', '1')).to.equal('ERR EPERM');
      const [e] = await eventsSince(from, (x) => x.type === 'skconn');
      expect(e).to.include({ family: 5, addr: '' });
      getEnforcer().setUidPolicy(USER, policy({ modes: modes({ skconnections: 'enforce' }), ...ALLOW_LOOPBACK }));
      expect(await probe(USER, 'connect-family', '5', '4', 'tcp', '127.0.0.1', '1')).to.equal('ERR EPERM');
      expect(await probe(OTHER, 'connect-family', '5', '4', 'tcp', '127.0.0.1', '1')).to.equal('ERR EAFNOSUPPORT');
    });

    it('raw sockets take family 0 as their own (raw_sendmsg, rawv6_sendmsg): judged, for a uid holding CAP_NET_RAW', async () => {
      expect(await probeWithNetRaw(USER, 'raw4', '192.0.2.1')).to.equal('ERR EPERM');
      expect(await probeWithNetRaw(USER, 'raw6', '2001:db8::1')).to.equal('ERR EPERM');
      expect(await probeWithNetRaw(USER, 'raw4', '127.0.0.1')).to.equal('OK');
      expect(await probeWithNetRaw(OTHER, 'raw4', '192.0.2.1')).to.equal('ERR ENETUNREACH');
    });

    describe('ping sockets', () => {
      let saved = '';
      before(async () => {
        saved = (await execa('sysctl', ['-n', 'net.ipv4.ping_group_range'])).stdout.replace(/\s+/, ' ');
        await execa('sysctl', ['-w', 'net.ipv4.ping_group_range=0 2147483647']);
      });
      after(async () => {
        await execa('sysctl', ['-w', `net.ipv4.ping_group_range=${saved}`]);
      });

      it('an ICMP echo on an unprivileged ping socket is judged like a datagram', async () => {
        expect(await probe(USER, 'ping4', '192.0.2.1')).to.equal('ERR EPERM');
        expect(await probe(USER, 'ping6', '2001:db8::1')).to.equal('ERR EPERM');
        expect(await probe(USER, 'ping4', '127.0.0.1')).to.equal('OK');
      });
    });

    it('TCP fast open: sendto(MSG_FASTOPEN) connects without connect(), and is judged', async () => {
      expect(await probe(USER, 'tfo4', '192.0.2.10', '80')).to.equal('ERR EPERM');
      expect(await probe(USER, 'tfo6', '2001:db8::10', '80')).to.equal('ERR EPERM');
      expect(await probe(OTHER, 'tfo4', '192.0.2.10', '80')).to.equal('ERR ENETUNREACH');
    });

    describe('SCTP (connectx and extra peers reach no connect hook)', () => {
      before(async () => {
        await execa('modprobe', ['sctp']);
      });

      it('connect, connectx with any denied address in the list, and a send naming a denied extra peer are denied', async () => {
        expect(await probe(USER, 'sctp-connect', '192.0.2.10', '9')).to.equal('ERR EPERM');
        const from = events.length;
        expect(await probe(USER, 'sctp-connectx', '127.0.0.1,192.0.2.10', '9')).to.equal('ERR EPERM');
        const [e] = await eventsSince(from, (x) => x.type === 'skconn' && x.name === 'SCTP_SOCKOPT_CONNECTX');
        expect(e).to.include({ addr: '192.0.2.10', port: 9 });
        expect(await probe(USER, 'sctp-sendmsg', '192.0.2.10', '9')).to.equal('ERR EPERM');
        expect(await probe(USER, 'sctp-sendmsg', '127.0.0.1', '9', '192.0.2.10')).to.equal('ERR EPERM');
      });

      it('allowed destinations go through (the kernel answers for itself)', async () => {
        expect(await probe(USER, 'sctp-connectx', '127.0.0.1', '9')).to.not.equal('ERR EPERM');
        expect(await probe(USER, 'sctp-sendmsg', '127.0.0.1', '9', '127.0.0.2')).to.equal('OK');
        expect(await probe(OTHER, 'sctp-connectx', '127.0.0.1,192.0.2.10', '9')).to.not.equal('ERR EPERM');
      });
    });

    it('AF_RDS sockets (their TCP transport connects from kernel sockets): judged on their sends', async () => {
      await execa('modprobe', ['rds_tcp']);
      expect(await probe(USER, 'rds-sendto', '192.0.2.10', '4000')).to.equal('ERR EPERM');
      expect(await probe(OTHER, 'rds-sendto', '192.0.2.10', '4000')).to.not.equal('ERR EPERM');
    });

    it('AF_SMC sockets (connect falls back to TCP through a socket no hook sees): judged on their own connect', async () => {
      await execa('modprobe', ['smc']);
      expect(await probe(USER, 'smc-connect4', '192.0.2.10', '22')).to.equal('ERR EPERM');
      expect(await probe(USER, 'smc-connect6', '2001:db8::10', '22')).to.equal('ERR EPERM');
      expect(await probe(USER, 'smc-connect4', '127.0.0.1', '1')).to.equal('ERR ECONNREFUSED');
    });
  });

  describe('options that send packets elsewhere than the address in the call', () => {
    // IPv4 source routes need CAP_NET_RAW on this kernel (ip_options_get); IPv6 routing headers do not
    it('without the policy, a source route or a routing header sends a loopback connect toward the denied network', async () => {
      expect(await probe(OTHER, 'connect4', '127.0.0.1', '1', 'tcp')).to.equal('ERR ECONNREFUSED');
      expect(await probeWithNetRaw(OTHER, 'lsrr-connect', '192.0.2.1', '127.0.0.1', '1')).to.equal('ERR ENETUNREACH');
      expect(await probe(OTHER, 'connect6', '::1', '1', 'tcp')).to.equal('ERR ECONNREFUSED');
      expect(await probe(OTHER, 'srh-connect', '2001:db8::1', '::1', '1')).to.equal('ERR ENETUNREACH');
    });

    it('a uid under skconnections may not set them (IP_OPTIONS, IPV6_RTHDR), with a deny-list or an allow-list', async () => {
      const from = events.length;
      expect(await probeWithNetRaw(USER, 'lsrr-connect', '192.0.2.1', '127.0.0.1', '1')).to.equal('ERR EPERM');
      expect(await probe(USER, 'srh-connect', '2001:db8::1', '::1', '1')).to.equal('ERR EPERM');
      const seen = await eventsSince(from, (x) => x.type === 'skopt', 2);
      expect(seen.map((e) => e.name)).to.deep.equal(['IP_OPTIONS', 'IPV6_RTHDR']);
      getEnforcer().setUidPolicy(USER, policy({ modes: modes({ skconnections: 'enforce' }), ...ALLOW_LOOPBACK }));
      expect(await probe(USER, 'srh-connect', '::2', '::1', '1')).to.equal('ERR EPERM');
    });

    it('nor send them with a datagram (IP_RETOPTS, IPV6_RTHDR ancillary data)', async () => {
      const from = events.length;
      expect(await probeWithNetRaw(USER, 'retopts-sendto', '192.0.2.1', '127.0.0.1', '9')).to.equal('ERR EPERM');
      expect(await probe(USER, 'rthdr-sendto', '2001:db8::1', '::1', '9')).to.equal('ERR EPERM');
      const seen = await eventsSince(from, (x) => x.type === 'sksend', 2);
      expect(seen.map((e) => e.name)).to.deep.equal(['IP_RETOPTS', 'IPV6_RTHDR']);
      expect(await probeWithNetRaw(OTHER, 'retopts-sendto', '192.0.2.1', '127.0.0.1', '9')).to.equal('ERR ENETUNREACH');
      expect(await probe(OTHER, 'rthdr-sendto', '2001:db8::1', '::1', '9')).to.equal('ERR ENETUNREACH');
    });
  });

  describe('NAT64 (64:ff9b::/96)', () => {
    const nat64 = [parseCidr('64:ff9b::/96')];

    it('an IPv4 rule alone does not match the NAT64 form of its addresses', async () => {
      expect(await probe(USER, 'connect6', '64:ff9b::192.0.2.10', '22', 'tcp')).to.equal('ERR ENETUNREACH');
    });

    it('with the profile\'s NAT64 prefixes (connect_nat64, default 64:ff9b::/96) the agent adds it, deny and allow alike', async () => {
      const deny = withNat64(DENY.map((r) => r.cidr), nat64).map((cidr) => ({ cidr, verdict: 'deny' as const }));
      getEnforcer().setUidPolicy(USER, policy({ modes: modes({ skconnections: 'enforce' }), connectRules: deny }));
      expect(await probe(USER, 'connect6', '64:ff9b::192.0.2.10', '22', 'tcp')).to.equal('ERR EPERM');
      expect(await probe(USER, 'sendto6', '64:ff9b::198.51.100.7', '53')).to.equal('ERR EPERM');
      expect(await probe(USER, 'connect6', '64:ff9b::198.51.100.8', '22', 'tcp')).to.equal('ERR ENETUNREACH');
      const allow = withNat64([parseCidr('198.51.100.0/24')], nat64).map((cidr) => ({ cidr, verdict: 'allow' as const }));
      getEnforcer().setUidPolicy(USER, policy({ modes: modes({ skconnections: 'enforce' }), connectDefault: 'deny', connectRules: allow }));
      expect(await probe(USER, 'connect6', '64:ff9b::198.51.100.8', '22', 'tcp')).to.equal('ERR ENETUNREACH');
      expect(await probe(USER, 'connect6', '64:ff9b::192.0.2.10', '22', 'tcp')).to.equal('ERR EPERM');
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
