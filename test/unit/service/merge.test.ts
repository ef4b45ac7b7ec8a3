import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { parseConfig, type ProfileConfig } from '../../../agent/config/config.js';
import { parseCidr } from '../../../agent/enforcement/cidr.js';
import { POLICIES, type Mode, type PolicyName } from '../../../agent/enforcement/layout.js';
import { mergeConnections, mergeProfiles, withNat64 } from '../../../agent/service/merge.js';
import { chooseProfile, profileFromComment } from '../../../agent/service/profile-choice.js';

function profile(name: string, modes: Partial<Record<PolicyName, Mode>>, rest: Partial<ProfileConfig> = {}): ProfileConfig {
  const all = Object.fromEntries(POLICIES.map((p) => [p, modes[p] ?? 'off'])) as Record<PolicyName, Mode>;
  return { name, modes: all, suidexecAllow: [], sshClients: [], connectDeny: [], connectAllow: null, connectNat64: [], ...rest };
}
const cidrs = (...list: string[]) => list.map(parseCidr);

describe('policy union (merge)', () => {
  it('takes the strictest mode per policy', () => {
    const m = mergeProfiles([profile('floor', { fileperms: 'audit' }), profile('strict', { fileperms: 'enforce', suidexec: 'audit' })]);
    expect(m.modes).to.deep.equal({ fileperms: 'enforce', suidexec: 'audit', sshlisteners: 'off', skconnections: 'off', killtasks: 'off' });
  });

  it('intersects suid allowlists of the parts that have suidexec on, unites ssh clients', () => {
    const a = profile('a', { suidexec: 'enforce', sshlisteners: 'enforce' }, { suidexecAllow: ['/usr/bin/passwd', '/usr/bin/su'], sshClients: ['/usr/bin/ssh'] });
    const b = profile('b', { suidexec: 'audit', sshlisteners: 'audit' }, { suidexecAllow: ['/usr/bin/passwd'], sshClients: ['/opt/ssh'] });
    const off = profile('off', {}, { suidexecAllow: ['/usr/bin/mount'], sshClients: ['/ignored'] });
    const m = mergeProfiles([a, b, off]);
    expect(m.suidexecAllow).to.deep.equal(['/usr/bin/passwd']);
    expect(m.sshClients).to.deep.equal(['/opt/ssh', '/usr/bin/ssh']);
  });

  it('unites deny-lists (default allow)', () => {
    const r = mergeConnections([{ deny: cidrs('192.0.2.0/24'), allow: null }, { deny: cidrs('2001:db8::/32', '192.0.2.0/24'), allow: null }]);
    expect(r.connectDefault).to.equal('allow');
    expect(r.rules.map((x) => `${x.verdict} ${x.cidr.text}`)).to.deep.equal(['deny 192.0.2.0/24', 'deny 2001:db8::/32']);
  });

  it('intersects allow-lists, keeps deny holes inside them, drops allowed networks that are denied whole', () => {
    const r = mergeConnections([
      { deny: cidrs('198.51.100.128/25', '203.0.113.0/24'), allow: null },
      { deny: [], allow: cidrs('198.51.100.0/24', '203.0.113.64/26', '127.0.0.0/8') },
      { deny: [], allow: cidrs('198.51.100.0/23', '127.0.0.1', '203.0.113.0/24') },
    ]);
    expect(r.connectDefault).to.equal('deny');
    expect(r.rules.map((x) => `${x.verdict} ${x.cidr.text}`)).to.deep.equal([
      'allow 198.51.100.0/24', 'allow 127.0.0.1/32', 'deny 198.51.100.128/25',
    ]);
  });

  it('an allow-list and a deny-list of different families stay apart', () => {
    const r = mergeConnections([{ deny: cidrs('2001:db8::/32'), allow: null }, { deny: [], allow: cidrs('10.0.0.0/8', '2001:db8:1::/48') }]);
    expect(r.rules.map((x) => `${x.verdict} ${x.cidr.text}`)).to.deep.equal(['allow 10.0.0.0/8']);
  });

  it('the shipped strict profile united with the floor', () => {
    const config = parseConfig(readFileSync(new URL('../../../deploy/krsi.ini', import.meta.url), 'utf8'), 'krsi.ini', { fileExists: () => true });
    const m = mergeProfiles([config.profiles.get('default')!, config.profiles.get('strict')!]);
    expect(m.modes.fileperms).to.equal('enforce');
    expect(m.connectRules).to.deep.equal([
      { cidr: '192.0.2.0/24', verdict: 'deny' },
      { cidr: '2001:db8::/32', verdict: 'deny' },
      { cidr: '64:ff9b::c000:200/120', verdict: 'deny' },
    ]);
  });

  it('NAT64: every IPv4 rule applies again under each /96 prefix, IPv6 rules stay as they are', () => {
    const text = (list: { text: string }[]) => list.map((c) => c.text);
    expect(text(withNat64(cidrs('192.0.2.0/24', '198.51.100.7', '2001:db8::/32', '0.0.0.0/0'), cidrs('64:ff9b::/96', '2001:db8:64::/96')))).to.deep.equal([
      '192.0.2.0/24', '198.51.100.7/32', '2001:db8::/32', '0.0.0.0/0',
      '64:ff9b::c000:200/120', '2001:db8:64::c000:200/120', '64:ff9b::c633:6407/128', '2001:db8:64::c633:6407/128',
      '64:ff9b::/96', '2001:db8:64::/96',
    ]);
    expect(text(withNat64(cidrs('192.0.2.0/24'), []))).to.deep.equal(['192.0.2.0/24']);
  });

  it('NAT64 in the union: a deny-list denies the translated networks, an allow-list allows them and keeps its holes', () => {
    const nat64 = cidrs('64:ff9b::/96');
    const deny = mergeProfiles([profile('d', { skconnections: 'enforce' }, { connectDeny: cidrs('192.0.2.0/24'), connectNat64: nat64 })]);
    expect(deny.connectRules).to.deep.equal([{ cidr: '192.0.2.0/24', verdict: 'deny' }, { cidr: '64:ff9b::c000:200/120', verdict: 'deny' }]);
    const allow = mergeProfiles([
      profile('a', { skconnections: 'enforce' }, { connectAllow: cidrs('10.0.0.0/8'), connectDeny: cidrs('10.0.0.1'), connectNat64: nat64 }),
    ]);
    expect(allow.connectDefault).to.equal('deny');
    expect(allow.connectRules).to.deep.equal([
      { cidr: '10.0.0.0/8', verdict: 'allow' },
      { cidr: '64:ff9b::a00:0/104', verdict: 'allow' },
      { cidr: '10.0.0.1/32', verdict: 'deny' },
      { cidr: '64:ff9b::a00:1/128', verdict: 'deny' },
    ]);
    const off = mergeProfiles([profile('o', { skconnections: 'enforce' }, { connectDeny: cidrs('192.0.2.0/24') })]);
    expect(off.connectRules).to.deep.equal([{ cidr: '192.0.2.0/24', verdict: 'deny' }]);
  });
});

describe('choosing a profile from the job comment', () => {
  it('finds policy:NAME anywhere, or nothing', () => {
    expect(profileFromComment('run 3 policy:strict')).to.deep.equal({ name: 'strict', problem: null });
    expect(profileFromComment('policy:strict')).to.deep.equal({ name: 'strict', problem: null });
    expect(profileFromComment('x,policy:gpu.v2;y')).to.deep.equal({ name: 'gpu.v2', problem: null });
    expect(profileFromComment('no policy here')).to.deep.equal({ name: null, problem: null });
    expect(profileFromComment('mypolicy:strict')).to.deep.equal({ name: null, problem: null });
    expect(profileFromComment(undefined)).to.deep.equal({ name: null, problem: null });
  });

  it('reports malformed and ambiguous requests (they get the strictest profile)', () => {
    expect(profileFromComment('policy:$(reboot)').problem).to.match(/malformed/);
    expect(profileFromComment('policy:').problem).to.match(/malformed/);
    expect(profileFromComment("policy:str'ict\n").problem).to.match(/malformed/);
    expect(profileFromComment('policy:a policy:b').problem).to.match(/several/);
    expect(profileFromComment('policy:a policy:a')).to.deep.equal({ name: 'a', problem: null });
  });

  it('a profile given directly wins over the comment', () => {
    expect(chooseProfile('strict', 'policy:default')).to.deep.equal({ name: 'strict', problem: null });
    expect(chooseProfile('bad name', undefined).problem).to.match(/malformed/);
  });
});
