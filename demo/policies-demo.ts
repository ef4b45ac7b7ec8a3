/**
 * The policies at work (runs as root inside the demo VM, see run-demo.ts): the seed paper's figures
 * 8-12 replayed live. User "billy" (uid 1000) gets the strict policy, user "alice" (uid 1002) none;
 * both try the paper's actions with ordinary tools; the table shows what the kernel allowed, and the
 * event lines are what the agent logs.
 */
import { execa } from 'execa';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { parseCidr } from '../agent/enforcement/cidr.js';
import { Enforcer } from '../agent/enforcement/enforcer.js';
import { resolveFileIdentities } from '../agent/enforcement/identity.js';
import type { KrsiEvent } from '../agent/enforcement/layout.js';
import { BootClock } from '../agent/events/clock.js';
import { formatEvent } from '../agent/events/format.js';
import { OBJECTS } from '../agent/paths.js';

const BILLY = 1000;
const ALICE = 1002;
const SSH_PORT = 2222;

interface Attempt {
  figure: string;
  action: string;
  command: string;
}

/** the paper's actions, as shell commands run by the user */
const ATTEMPTS: Attempt[] = [
  { figure: '8', action: 'chmod u+s on an own file', command: 'touch /tmp/$USER-suidfile && chmod u+s /tmp/$USER-suidfile' },
  { figure: '8', action: 'create a world-writable file (umask 0000)', command: 'umask 0000 && touch /tmp/$USER-writable-by-others' },
  { figure: '9', action: 'run the allowlisted SUID passwd', command: '/usr/bin/passwd --help >/dev/null' },
  { figure: '9', action: 'run the SUID newgrp', command: '/usr/bin/newgrp - </dev/null' },
  { figure: '10', action: 'ssh -D 9999 (dynamic port forward)', command: `ssh -p ${SSH_PORT} -o BatchMode=yes -o StrictHostKeyChecking=no -o ExitOnForwardFailure=yes -D 127.0.0.1:9999 -N -f 127.0.0.1 && sleep 0.5 && pkill -u $USER -x ssh` },
  { figure: '11', action: 'TCP connect to 192.0.2.10:22 (denied network)', command: "timeout 5 bash -c 'echo > /dev/tcp/192.0.2.10/22'" },
  { figure: '11', action: 'UDP connect to 192.0.2.53:53 (denied network)', command: "timeout 5 bash -c 'echo > /dev/udp/192.0.2.53/53'" },
  { figure: '12', action: 'kill -9 the security agent', command: 'kill -9 $AGENT_PID' },
];

function sh(uid: number, user: string, command: string) {
  return execa('/bin/bash', ['-c', command], {
    uid,
    gid: uid,
    reject: false,
    cwd: '/tmp',
    extendEnv: false,
    env: { PATH: '/usr/bin:/bin:/usr/sbin:/sbin', USER: user, HOME: `/home/${user}`, AGENT_PID: String(process.pid) },
    timeout: 20000,
  });
}

/** make `name` the user with `uid` inside the VM (its /etc is a throwaway overlay) */
async function ensureUser(name: string, uid: number): Promise<void> {
  const existing = await execa('getent', ['passwd', String(uid)], { reject: false });
  const current = String(existing.stdout).split(':')[0];
  if (current === name) return;
  if (current) await execa('userdel', ['-f', current], { reject: false });
  const group = await execa('getent', ['group', String(uid)], { reject: false });
  const groupName = String(group.stdout).split(':')[0];
  if (groupName) await execa('groupdel', [groupName], { reject: false });
  // password '*': no password login, but not a locked account (sshd refuses key logins to locked ones)
  await execa('useradd', ['-m', '-u', String(uid), '-U', '-s', '/bin/bash', '-p', '*', name]);
}

async function setupUsers(): Promise<void> {
  for (const [name, uid] of [['billy', BILLY], ['alice', ALICE]] as const) {
    await ensureUser(name, uid);
    const ssh = `/home/${name}/.ssh`;
    mkdirSync(ssh, { recursive: true, mode: 0o700 });
    if (!existsSync(`${ssh}/id_ed25519`)) await execa('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', `${ssh}/id_ed25519`]);
    await execa('cp', [`${ssh}/id_ed25519.pub`, `${ssh}/authorized_keys`]);
    await execa('chown', ['-R', `${name}:${name}`, ssh]);
  }
}

async function startSshd(): Promise<void> {
  await execa('ssh-keygen', ['-A']);
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const config = '/tmp/krsi-demo-sshd_config';
  writeFileSync(config, [
    `Port ${SSH_PORT}`, 'ListenAddress 127.0.0.1', 'PasswordAuthentication no', 'UsePAM no',
    'HostKey /etc/ssh/ssh_host_ed25519_key', 'PidFile /run/sshd-demo.pid', '',
  ].join('\n'));
  await execa('/usr/sbin/sshd', ['-f', config]);
}

async function main(): Promise<void> {
  const clock = new BootClock();
  await setupUsers();
  await startSshd();

  const enforcer = Enforcer.open({ objectPath: OBJECTS.enforcement });
  const events: KrsiEvent[] = [];
  enforcer.subscribe((e) => events.push(e));
  enforcer.protect(process.pid, 'all', 'enforce');
  const { files: suidAllow } = resolveFileIdentities(OBJECTS.identity, ['/usr/bin/passwd']);
  const { files: sshClients } = resolveFileIdentities(OBJECTS.identity, ['/usr/bin/ssh']);
  enforcer.setUidPolicy(BILLY, {
    modes: { fileperms: 'enforce', suidexec: 'enforce', sshlisteners: 'enforce', skconnections: 'enforce', killtasks: 'enforce' },
    connectDefault: 'allow',
    connectRules: ['192.0.2.0/24', '2001:db8::/32'].map((c) => ({ cidr: parseCidr(c), verdict: 'deny' as const })),
    suidAllow,
    sshClients,
  });
  console.log(`krsi-demo: the agent (pid ${process.pid}) protects itself; billy (uid ${BILLY}) runs under policy:strict, alice (uid ${ALICE}) under none\n`);

  const rows: string[][] = [];
  for (const attempt of ATTEMPTS) {
    for (const [user, uid] of [['billy', BILLY], ['alice', ALICE]] as const) {
      if (attempt.figure === '12') continue; // users may not signal root's agent anyway: root tries below
      const r = await sh(uid, user, attempt.command);
      const output = `${r.stdout}\n${r.stderr}`;
      const denied = /Operation not permitted|cannot listen|Could not request/i.test(output);
      const why = r.stderr.split('\n').filter((l) => !l.startsWith('Warning:')).pop()?.slice(0, 48) ?? '';
      const verdict = denied ? 'DENIED' : r.exitCode === 0 ? 'allowed' : `allowed (then: ${why})`;
      rows.push([attempt.figure, user, attempt.action, verdict]);
    }
  }
  const rootKill = await execa('/bin/bash', ['-c', `kill -9 ${process.pid}`], { reject: false });
  rows.push(['12', 'root', 'kill -9 the security agent', /not permitted/.test(rootKill.stderr) ? 'DENIED' : 'allowed']);

  await new Promise((r) => setTimeout(r, 500));
  const widths = [3, 6, 48];
  console.log(['fig', 'user', 'action', 'result'].map((h, i) => h.padEnd(widths[i] ?? 0)).join(' '));
  for (const row of rows) console.log(row.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' '));

  console.log(`\nagent event log (${events.length} events):`);
  for (const e of events) console.log(formatEvent(e, { time: clock.toDate(e.bootNs) }));
  const counters = enforcer.counters();
  console.log('\nkernel decision counters:');
  for (const [policy, c] of Object.entries(counters)) console.log(`  ${policy.padEnd(14)} deny=${c.deny} audit=${c.audit} dropped=${c.dropped}`);

  enforcer.clearUidPolicy(BILLY);
  enforcer.unprotect(process.pid);
  await enforcer.close();
  Enforcer.removePinned();
}

main().catch((err) => {
  console.error(`krsi-demo: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
