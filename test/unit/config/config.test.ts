import { expect } from 'chai';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ConfigError,
  DEFAULT_CONFIG_PATH,
  defaultAgentSettings,
  loadConfig,
  parseConfig,
  profileNames,
  strictestProfile,
  type KrsiConfig,
} from '../../../agent/config/config.js';
import { AGENT_KEYS, PROFILE_KEYS } from '../../../agent/config/keys.js';
import { renderSampleIni } from '../../../agent/config/sample.js';
import { parseCidrList } from '../../../agent/config/values.js';
import { PACKAGE_ROOT } from '../../../agent/paths.js';

const FILE = '/etc/slurm-krsi/krsi.ini';
const SAMPLE = join(PACKAGE_ROOT, 'deploy', 'krsi.ini');
const exists = (): boolean => true;

function parse(text: string, fileExists: (p: string) => boolean = exists): KrsiConfig {
  return parseConfig(text, FILE, { fileExists });
}

function configError(text: string): ConfigError {
  try {
    parse(text);
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

/** a config with a default profile plus the given lines appended */
function withDefault(extra: string): string {
  return `[profile default]\nfileperms = audit\n${extra}\n`;
}

describe('config: the shipped sample deploy/krsi.ini', () => {
  const config = parseConfig(readFileSync(SAMPLE, 'utf8'), SAMPLE, { fileExists: exists });

  it('parses with the default agent settings and no warnings', () => {
    expect(config.agent).to.deep.equal(defaultAgentSettings());
    expect(config.warnings).to.deep.equal([]);
    expect(profileNames(config)).to.deep.equal(['default', 'strict']);
  });

  it('loads from disk with the real file system (missing executables would only be warnings)', () => {
    const loaded = loadConfig(SAMPLE);
    expect(profileNames(loaded)).to.deep.equal(['default', 'strict']);
    for (const w of loaded.warnings) expect(w).to.match(/does not exist/);
  });

  it('has the floor: fileperms audit, everything else off', () => {
    const floor = config.profiles.get('default');
    expect(floor?.modes).to.deep.equal({ fileperms: 'audit', suidexec: 'off', sshlisteners: 'off', skconnections: 'off', killtasks: 'off' });
    expect(floor).to.deep.include({ suidexecAllow: [], sshClients: [], connectDeny: [], connectAllow: null });
  });

  it('has strict as DESIGN.md shows it', () => {
    const strict = config.profiles.get('strict');
    expect(strict?.modes).to.deep.equal({
      fileperms: 'enforce',
      suidexec: 'enforce',
      sshlisteners: 'enforce',
      skconnections: 'enforce',
      killtasks: 'enforce',
    });
    expect(strict?.suidexecAllow).to.deep.equal(['/usr/bin/passwd']);
    expect(strict?.sshClients).to.deep.equal(['/usr/bin/ssh']);
    expect(strict?.connectDeny.map((c) => c.text)).to.deep.equal(['192.0.2.0/24', '2001:db8::/32']);
    expect(strict?.connectAllow).to.equal(null);
    expect(strictestProfile(config).name).to.equal('strict');
  });

  it('is what the key tables generate (npm run gen:ini)', () => {
    expect(readFileSync(SAMPLE, 'utf8')).to.equal(renderSampleIni());
  });

  it('lists every [agent] key of the table, commented out with its default; uncommented they give the defaults', () => {
    const text = readFileSync(SAMPLE, 'utf8');
    const agentPart = text.slice(text.indexOf('[agent]'), text.indexOf('[profile default]'));
    const lines = agentPart.split('\n').filter((l) => /^;[a-z_]+ =( |$)/.test(l)).map((l) => l.slice(1));
    expect(lines.map((l) => l.split('=')[0]?.trim())).to.deep.equal(Object.values(AGENT_KEYS).map((k) => k.name));
    const agent = parse(`[agent]\n${lines.join('\n')}\n[profile default]\n`).agent;
    expect(agent).to.deep.equal(defaultAgentSettings());
  });

  it('documents every profile key of the table', () => {
    const text = readFileSync(SAMPLE, 'utf8');
    for (const key of PROFILE_KEYS) expect(text).to.include(`;   ${key.name} (absent: ${key.absent}): `);
  });

  it('the commented allow-list example parses once uncommented', () => {
    const text = readFileSync(SAMPLE, 'utf8');
    const example = text.slice(text.indexOf(';[profile isolated]')).replace(/^;/gm, '');
    const isolated = parse(`${text}\n${example}`).profiles.get('isolated');
    expect(isolated?.modes.skconnections).to.equal('enforce');
    expect(isolated?.connectAllow?.map((c) => c.text)).to.deep.equal(['127.0.0.0/8', '::1/128', '10.0.0.0/8', 'fd00::/8']);
    expect(isolated?.connectDeny.map((c) => c.text)).to.deep.equal(['10.0.0.1/32']);
  });
});

describe('config: defaults and values', () => {
  it('an [agent]-less file with a default profile gets every default', () => {
    const config = parse('[profile default]\n');
    expect(config.agent).to.deep.equal({
      socket: '/run/slurm-krsi/agent.sock',
      metricsListen: { host: '127.0.0.1', port: 9817 },
      metricsAllow: parseCidrList('127.0.0.0/8, ::1'),
      adminGroup: null,
      defaultProfile: 'default',
      onError: 'fail',
      slurmdUser: 'root',
      stateDir: '/var/lib/slurm-krsi',
      eventLog: '/var/log/slurm-krsi/events.log',
      pinDir: '/sys/fs/bpf/slurm-krsi',
      ringBufferBytes: 8 * 1024 * 1024,
      eventsWindow: 10000,
      protectDaemons: [],
      agentWait: 10,
      reconcileInterval: 60,
      reconcileGrace: 300,
    });
    expect(config.path).to.equal(FILE);
    expect(DEFAULT_CONFIG_PATH).to.equal('/etc/slurm-krsi/krsi.ini');
  });

  it('reads every [agent] key', () => {
    const config = parse(`[agent]
socket = /run/krsi/a.sock
metrics_listen = [::1]:9900
metrics_allow = 10.0.0.5, 2001:db8::/64
admin_group = hpcadmin
default_profile = floor
on_error = allow
slurmd_user = slurm
state_dir = /var/lib/k
event_log = off
pin_dir = /sys/fs/bpf/k
ring_buffer_size = 16M
events_window = 500
protect_daemons = /usr/sbin/slurmd, /usr/sbin/munged,
agent_wait = 25
reconcile_interval = 0
reconcile_grace = 30
[profile floor]
`);
    expect(config.agent).to.deep.equal({
      socket: '/run/krsi/a.sock',
      metricsListen: { host: '::1', port: 9900 },
      metricsAllow: parseCidrList('10.0.0.5, 2001:db8::/64'),
      adminGroup: 'hpcadmin',
      defaultProfile: 'floor',
      onError: 'allow',
      slurmdUser: 'slurm',
      stateDir: '/var/lib/k',
      eventLog: null,
      pinDir: '/sys/fs/bpf/k',
      ringBufferBytes: 16 * 1024 * 1024,
      eventsWindow: 500,
      protectDaemons: ['/usr/sbin/slurmd', '/usr/sbin/munged'],
      agentWait: 25,
      reconcileInterval: 0,
      reconcileGrace: 30,
    });
  });

  it('metrics_listen: off or empty disables; hosts, IPv4 and [IPv6] accepted', () => {
    const listen = (v: string) => parse(`[agent]\nmetrics_listen = ${v}\n[profile default]\n`).agent.metricsListen;
    expect(listen('off')).to.equal(null);
    expect(listen('')).to.equal(null);
    expect(listen('0.0.0.0:1')).to.deep.equal({ host: '0.0.0.0', port: 1 });
    expect(listen('localhost:65535')).to.deep.equal({ host: 'localhost', port: 65535 });
    expect(listen('[::]:9817')).to.deep.equal({ host: '::', port: 9817 });
  });

  it('ring_buffer_size accepts bytes and K/M/G suffixes', () => {
    const ring = (v: string) => parse(`[agent]\nring_buffer_size = ${v}\n[profile default]\n`).agent.ringBufferBytes;
    expect(ring('4096')).to.equal(4096);
    expect(ring('4K')).to.equal(4096);
    expect(ring('64k')).to.equal(65536);
    expect(ring('8MiB')).to.equal(8 << 20);
    expect(ring('1G')).to.equal(1 << 30);
  });

  it('event_log empty disables the file; admin_group empty is none', () => {
    const config = parse('[agent]\nevent_log =\nadmin_group =\n[profile default]\n');
    expect(config.agent.eventLog).to.equal(null);
    expect(config.agent.adminGroup).to.equal(null);
  });

  it('comma lists: items trimmed, empty items and duplicates dropped', () => {
    const p = parse(withDefault('suidexec_allow = , /usr/bin/passwd ,,/usr/bin/su , /usr/bin/passwd,')).profiles.get('default');
    expect(p?.suidexecAllow).to.deep.equal(['/usr/bin/passwd', '/usr/bin/su']);
  });

  it('ssh_clients defaults to /usr/bin/ssh only when sshlisteners is on', () => {
    const config = parse(`${withDefault('')}[profile a]\nsshlisteners = audit\n[profile b]\nsshlisteners = off\n[profile c]\nsshlisteners = enforce\nssh_clients = /opt/ssh/bin/ssh\n`);
    expect(config.profiles.get('a')?.sshClients).to.deep.equal(['/usr/bin/ssh']);
    expect(config.profiles.get('b')?.sshClients).to.deep.equal([]);
    expect(config.profiles.get('c')?.sshClients).to.deep.equal(['/opt/ssh/bin/ssh']);
    expect(config.profiles.get('default')?.sshClients).to.deep.equal([]);
  });

  it('connect_nat64: the well-known prefix by default, a list of /96 prefixes, or off', () => {
    const nat64 = (lines: string) => parse(withDefault(`skconnections = enforce\n${lines}`)).profiles.get('default')?.connectNat64.map((c) => c.text);
    expect(nat64('')).to.deep.equal(['64:ff9b::/96']);
    expect(nat64('connect_nat64 = 64:ff9b:1:2::/96, 2001:db8:64::/96')).to.deep.equal(['64:ff9b:1:2::/96', '2001:db8:64::/96']);
    expect(nat64('connect_nat64 = off')).to.deep.equal([]);
    expect(nat64('connect_nat64 =')).to.deep.equal([]);
  });

  it('connect_allow makes an allow-list; connect_deny may carve holes in it', () => {
    const p = parse(withDefault('skconnections = enforce\nconnect_allow = 10.0.0.0/8, ::1\nconnect_deny = 10.0.0.1')).profiles.get('default');
    expect(p?.connectAllow?.map((c) => c.text)).to.deep.equal(['10.0.0.0/8', '::1/128']);
    expect(p?.connectDeny.map((c) => c.text)).to.deep.equal(['10.0.0.1/32']);
  });

  it('profile names may contain dots, dashes and underscores (no ini nesting)', () => {
    const config = parse(`${withDefault('')}[profile a.b]\nkilltasks = enforce\n[profile a]\nsuidexec = audit\n[profile gpu_v-2]\n`);
    expect(profileNames(config)).to.deep.equal(['a', 'a.b', 'default', 'gpu_v-2']);
    expect(config.profiles.get('a.b')?.modes.killtasks).to.equal('enforce');
    expect(config.profiles.get('a')?.modes).to.deep.include({ suidexec: 'audit', killtasks: 'off' });
  });

  it('accepts CRLF line endings, a BOM, indentation, comments after headers and # comments', () => {
    const config = parse('\uFEFF# site config\r\n  [agent]   ; the agent\r\n\ton_error = allow # inline\r\n[profile  default]\r\n  fileperms=enforce\r\n');
    expect(config.agent.onError).to.equal('allow');
    expect(config.profiles.get('default')?.modes.fileperms).to.equal('enforce');
  });
});

describe('config: inline comments', () => {
  it('an unquoted ; or # starts a comment: `enforce; rm -rf /` is enforce', () => {
    const config = parse(withDefault('suidexec = enforce; rm -rf / && echo $(id) `reboot` | tee >/dev/null\nkilltasks = audit#!/bin/sh -c "x"'));
    expect(config.profiles.get('default')?.modes).to.deep.include({ suidexec: 'enforce', killtasks: 'audit' });
  });

  it('DESIGN.md sample: inline comments after values, including an empty value', () => {
    const config = parse(`[agent]
socket = /run/slurm-krsi/agent.sock
metrics_listen = 127.0.0.1:9817
admin_group =                 ; members may read status/jobs/events over the socket
default_profile = default     ; the floor: always applied to every job
on_error = fail               ; prolog exit status when the policy cannot be applied: fail | allow

[profile default]
fileperms = audit             ; each policy: off | audit | enforce
`);
    expect(config.agent).to.deep.include({ adminGroup: null, defaultProfile: 'default', onError: 'fail' });
    expect(config.profiles.get('default')?.modes.fileperms).to.equal('audit');
  });

  it('a quoted value keeps ; and may be followed by a comment; the quoted junk is then a clear error', () => {
    const err = configError(withDefault('suidexec = "enforce; rm -rf /"   ; comment'));
    expect(err.problems).to.deep.equal([
      `${FILE}:3: [profile default] suidexec: "enforce; rm -rf /" is not one of off | audit | enforce`,
    ]);
    const config = parse(withDefault('suidexec_allow = "/opt/we;ird/bin" ; c\nssh_clients = /opt/a\\;b'));
    expect(config.profiles.get('default')?.suidexecAllow).to.deep.equal(['/opt/we;ird/bin']);
    expect(config.profiles.get('default')?.sshClients).to.deep.equal(['/opt/a;b']);
  });
});

describe('config: errors name the file, the section and the key', () => {
  const cases: [string, string, string | null, string | null, RegExp, number | null][] = [
    ['unknown key', withDefault('filepemrs = audit'), 'profile default', 'filepemrs', /unknown key; known keys: fileperms, suidexec/, 3],
    ['unknown agent key', '[agent]\nsocket_path = /x\n[profile default]', 'agent', 'socket_path', /unknown key/, 2],
    ['unknown section', withDefault('[agnet]\nsocket = /x'), 'agnet', null, /unknown section; expected \[agent\] or \[profile NAME\]/, 3],
    ['bad profile name', withDefault('[profile bad/name]'), 'profile bad/name', null, /invalid profile name "bad\/name"/, 3],
    ['profile without name', withDefault('[profile]'), 'profile', null, /needs a name/, 3],
    ['bad mode', withDefault('killtasks = deny'), 'profile default', 'killtasks', /"deny" is not one of off \| audit \| enforce$/, 3],
    ['upper-case mode', withDefault('killtasks = Enforce'), 'profile default', 'killtasks', /lower case: "enforce"/, 3],
    ['bad CIDR', withDefault('connect_deny = 192.0.2.0/24, 10.0.0.0/33'), 'profile default', 'connect_deny', /invalid CIDR "10\.0\.0\.0\/33"/, 3],
    ['bad allow CIDR', withDefault('connect_allow = example.org'), 'profile default', 'connect_allow', /invalid CIDR "example\.org"/, 3],
    ['NAT64 prefix not /96', withDefault('connect_nat64 = 64:ff9b::/64'), 'profile default', 'connect_nat64', /"64:ff9b::\/64" is not an IPv6 \/96 prefix/, 3],
    ['NAT64 prefix IPv4', withDefault('connect_nat64 = 192.0.2.0/24'), 'profile default', 'connect_nat64', /"192\.0\.2\.0\/24" is not an IPv6 \/96 prefix/, 3],
    ['NAT64 prefix garbage', withDefault('connect_nat64 = well-known'), 'profile default', 'connect_nat64', /invalid CIDR "well-known"/, 3],
    ['bad metrics_listen', '[agent]\nmetrics_listen = 127.0.0.1:70000\n[profile default]', 'agent', 'metrics_listen', /port "70000" is not in 1\.\.65535/, 2],
    ['metrics_listen without port', '[agent]\nmetrics_listen = 127.0.0.1\n[profile default]', 'agent', 'metrics_listen', /has no port/, 2],
    ['unbracketed IPv6', '[agent]\nmetrics_listen = ::1:9817\n[profile default]', 'agent', 'metrics_listen', /needs brackets/, 2],
    ['bad bracketed host', '[agent]\nmetrics_listen = [10.0.0.1]:9817\n[profile default]', 'agent', 'metrics_listen', /not an IPv6 address/, 2],
    ['bad IPv4 host', '[agent]\nmetrics_listen = 300.1.1.1:9817\n[profile default]', 'agent', 'metrics_listen', /not an IPv4 address or host name/, 2],
    ['ring size not a power of two', '[agent]\nring_buffer_size = 12M\n[profile default]', 'agent', 'ring_buffer_size', /power of two from 4K to 1G/, 2],
    ['ring size too small', '[agent]\nring_buffer_size = 2048\n[profile default]', 'agent', 'ring_buffer_size', /power of two/, 2],
    ['ring size too big', '[agent]\nring_buffer_size = 2G\n[profile default]', 'agent', 'ring_buffer_size', /power of two/, 2],
    ['ring size garbage', '[agent]\nring_buffer_size = 8 megs\n[profile default]', 'agent', 'ring_buffer_size', /not a size/, 2],
    ['events_window range', '[agent]\nevents_window = 0\n[profile default]', 'agent', 'events_window', /not an integer in 1\.\.1000000/, 2],
    ['events_window too big', '[agent]\nevents_window = 1000001\n[profile default]', 'agent', 'events_window', /1\.\.1000000/, 2],
    ['bad on_error', '[agent]\non_error = deny\n[profile default]', 'agent', 'on_error', /not one of fail \| allow/, 2],
    ['relative allowlist path', withDefault('suidexec_allow = usr/bin/passwd'), 'profile default', 'suidexec_allow', /"usr\/bin\/passwd" is not an absolute path/, 3],
    ['relative ssh client', withDefault('ssh_clients = ssh'), 'profile default', 'ssh_clients', /not an absolute path/, 3],
    ['relative daemon', '[agent]\nprotect_daemons = slurmd\n[profile default]', 'agent', 'protect_daemons', /not an absolute path/, 2],
    ['relative socket', '[agent]\nsocket = agent.sock\n[profile default]', 'agent', 'socket', /not an absolute path/, 2],
    ['relative event log', '[agent]\nevent_log = events.log\n[profile default]', 'agent', 'event_log', /not an absolute path/, 2],
    ['empty state_dir', '[agent]\nstate_dir =\n[profile default]', 'agent', 'state_dir', /expected an absolute path/, 2],
    ['missing default profile', '[agent]\ndefault_profile = floor\n[profile strict]', 'agent', 'default_profile', /profile "floor" is not defined \(defined: strict\)/, 2],
    ['empty file', '', 'agent', 'default_profile', /no \[profile \.\.\.\] sections: the default profile "default" must exist/, null],
    ['bad default_profile name', '[agent]\ndefault_profile = a b\n[profile default]', 'agent', 'default_profile', /invalid profile name "a b"/, 2],
    ['empty slurmd_user', '[agent]\nslurmd_user =\n[profile default]', 'agent', 'slurmd_user', /expected a user name/, 2],
    ['duplicate key', withDefault('fileperms = enforce'), 'profile default', 'fileperms', /set twice \(lines 2 and 3\)/, 3],
    ['duplicate section', withDefault('[profile default]\nkilltasks = enforce'), 'profile default', null, /section appears twice \(lines 1 and 3\)/, 3],
    ['key before any section', 'fileperms = audit\n[profile default]', null, 'fileperms', /set before any \[section\]/, 1],
    ['line without =', withDefault('fileperms enforce'), 'profile default', null, /expected "key = value", got "fileperms enforce"/, 3],
    ['malformed header', withDefault('[profile strict\nkilltasks = enforce'), null, null, /malformed section header "\[profile strict"/, 3],
    ['upper-case section', withDefault('[Profile strict]'), 'Profile strict', null, /section names are lower case/, 3],
  ];

  for (const [what, text, section, key, pattern, line] of cases) {
    it(what, () => {
      const err = configError(text);
      expect(err.problems, err.message).to.have.length(1);
      expect(err.path).to.equal(FILE);
      expect(err.section).to.equal(section);
      expect(err.key).to.equal(key);
      expect(err.line).to.equal(line);
      const place = line === null ? FILE : `${FILE}:${line}`;
      const where = [section === null ? null : `[${section}]`, key].filter((p) => p !== null).join(' ');
      expect(err.message.startsWith(where === '' ? `${place}: ` : `${place}: ${where}: `), err.message).to.equal(true);
      expect(err.message).to.match(pattern);
      expect(err.code).to.equal('KRSI_ERR_CONFIG');
    });
  }

  it('reports every problem at once, one line each', () => {
    const err = configError(`[agent]
metrics_listen = nowhere
ring_buffer_size = 3M
colour = blue
[profile default]
fileperms = audit
suidexec = always
connect_deny = 10.0.0.0/8, 10.1.2.3/40, fe80::/200
[cluster]
x = 1
`);
    expect(err.problems).to.have.length(7);
    expect(err.message.split('\n')).to.deep.equal(err.problems);
    expect(err.problems.map((p) => p.split(': ')[0]?.replace(FILE, ''))).to.deep.equal([':2', ':3', ':4', ':7', ':8', ':8', ':9']);
    expect(err.problems.map((p) => p.split(': ')[1]?.trim())).to.deep.equal([
      '[agent] metrics_listen',
      '[agent] ring_buffer_size',
      '[agent] colour',
      '[profile default] suidexec',
      '[profile default] connect_deny',
      '[profile default] connect_deny',
      '[cluster]',
    ]);
    expect(err.message).to.include('"10.1.2.3/40"').and.include('"fe80::/200"').and.include('[cluster]: unknown section');
    expect(err.section).to.equal('agent');
    expect(err.key).to.equal('metrics_listen');
  });
});

describe('config: missing allowlisted files are warnings', () => {
  it('suidexec_allow, ssh_clients (also the default) and protect_daemons', () => {
    const missing = new Set(['/usr/bin/passwd', '/usr/bin/ssh', '/usr/sbin/munged']);
    const config = parse(
      `[agent]\nprotect_daemons = /usr/sbin/slurmd, /usr/sbin/munged\n${withDefault('suidexec = enforce\nsuidexec_allow = /usr/bin/passwd, /usr/bin/su\nsshlisteners = audit')}`,
      (p) => !missing.has(p),
    );
    expect(config.profiles.get('default')?.suidexecAllow).to.deep.equal(['/usr/bin/passwd', '/usr/bin/su']);
    expect(config.warnings).to.have.length(3);
    expect(config.warnings[0]).to.match(/^\/etc\/slurm-krsi\/krsi\.ini:6: \[profile default\] suidexec_allow: "\/usr\/bin\/passwd" does not exist/);
    // the default ssh client is not on any line: the warning names the file and the key only
    expect(config.warnings[1]).to.match(/krsi\.ini: \[profile default\] ssh_clients: "\/usr\/bin\/ssh" does not exist/);
    expect(config.warnings[2]).to.match(/krsi\.ini:2: \[agent\] protect_daemons: "\/usr\/sbin\/munged" does not exist/);
  });

  it('uses the real file system by default', () => {
    const config = parseConfig(withDefault('suidexec_allow = /nonexistent/krsi-test/bin, /'), FILE);
    expect(config.warnings).to.have.length(1);
    expect(config.warnings[0]).to.include('/nonexistent/krsi-test/bin');
  });

  it('warns about an empty ssh_clients with sshlisteners on and an empty allow-list', () => {
    const config = parse(withDefault('sshlisteners = enforce\nssh_clients =\nskconnections = enforce\nconnect_allow ='));
    expect(config.profiles.get('default')?.connectAllow).to.deep.equal([]);
    expect(config.warnings.map((w) => w.split(': ')[1])).to.deep.equal(['[profile default] ssh_clients', '[profile default] connect_allow']);
  });
});

describe('config: strictestProfile', () => {
  it('most enforce, then most audit, then first by name', () => {
    const config = parse(`[profile default]
fileperms = audit
[profile b]
fileperms = enforce
suidexec = audit
[profile a]
killtasks = enforce
sshlisteners = audit
[profile c]
killtasks = enforce
sshlisteners = audit
suidexec = audit
`);
    expect(strictestProfile(config).name).to.equal('c');
    config.profiles.delete('c');
    expect(strictestProfile(config).name).to.equal('a');
    config.profiles.delete('a');
    expect(strictestProfile(config).name).to.equal('b');
    config.profiles.delete('b');
    expect(strictestProfile(config).name).to.equal('default');
  });

  it('more enforce beats any amount of audit', () => {
    const config = parse(`[profile default]
fileperms = audit
suidexec = audit
sshlisteners = audit
skconnections = audit
[profile z]
killtasks = enforce
`);
    expect(strictestProfile(config).name).to.equal('z');
  });
});

describe('config: loadConfig', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'krsi-config-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads and parses the file', () => {
    const file = join(dir, 'krsi.ini');
    writeFileSync(file, '[profile default]\nfileperms = enforce\n', { mode: 0o644 });
    chmodSync(file, 0o644);
    const config = loadConfig(file);
    expect(config.path).to.equal(file);
    expect(config.profiles.get('default')?.modes.fileperms).to.equal('enforce');
    expect(config.warnings).to.deep.equal([]);
  });

  it('a missing file is a ConfigError naming the path and the OS reason', () => {
    const file = join(dir, 'absent.ini');
    expect(() => loadConfig(file))
      .to.throw(ConfigError)
      .with.property('message', `${file}: cannot read the config file: no such file or directory (ENOENT)`);
  });

  it('a directory is a ConfigError too', () => {
    expect(() => loadConfig(dir)).to.throw(ConfigError, /^.*: cannot read the config file: .*EISDIR/);
  });

  it('parse errors carry the real path', () => {
    const file = join(dir, 'bad.ini');
    writeFileSync(file, '[profile default]\nfileperms = maybe\n');
    expect(() => loadConfig(file)).to.throw(ConfigError, `${file}:2: [profile default] fileperms: "maybe" is not one of`);
  });

  it('warns when group or others may write the file', () => {
    const file = join(dir, 'open.ini');
    writeFileSync(file, '[profile default]\n');
    chmodSync(file, 0o666);
    expect(loadConfig(file).warnings).to.deep.equal([`${file}: writable by group or others (mode 666)`]);
  });
});
