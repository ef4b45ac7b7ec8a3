/**
 * The compute node of the systemd specs: a VM booted into real systemd (test/vm/qemu.ts, SystemdBoot) where
 * the Debian units of munge, slurmctld and slurmd and slurm-krsi's own krsi-agent.service (with slurmd's
 * drop-in, as deploy/install.sh installs them) start at boot, in systemd's order.
 *
 * The VM's root is a throwaway overlay, so a unit of the harness sets the node up at every boot before any
 * of those start (SETUP_UNIT running node-setup.ts): users, Slurm's configuration, slurm-krsi's files. What
 * a real node keeps across a reboot is kept in one writable host folder shared into every boot of the
 * group (PERSIST) and bind-mounted where the daemons keep their state (PERSISTENT_DIRS): the agent's job
 * table, slurmctld's state, the munge key, the logs.
 *
 * slurm-krsi is installed as install.sh lays it out (/usr/sbin/krsi-agent, the prolog and epilog in
 * /usr/libexec/slurm-krsi, /etc/slurm-krsi/krsi.ini), except that the wrappers run a build where it lies
 * (this checkout's, or an older one the upgrade specs switch to) instead of a copy under /usr/lib: copying
 * the dependencies under emulation takes install.sh about 100 s. The wrappers reach the build through
 * CHECKOUT, where the node setup bind-mounts this checkout: the agent's unit has PrivateTmp=yes, which
 * hides a checkout under /tmp (as a CI clone may be) from the agent.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { execa } from 'execa';
import { hookDeadlineSeconds } from '../../agent/config/keys.js';
import { REPO, type ClusterOptions } from '../slurm/cluster.js';
import { AGENT, CONFIG, EPILOG, KRSICTL, PROLOG } from '../slurm/node.js';

// the paths install.sh installs to
export { AGENT, CONFIG, EPILOG, EVENT_LOG, KRSICTL, PIN_DIR, PROLOG, SOCKET } from '../slurm/node.js';

/** the writable host folder every boot of the group mounts (9p) */
export const PERSIST = '/krsi-persist';
export const PERSIST_TAG = 'krsipersist';
/** state a reboot keeps: bind-mounted from PERSIST before any daemon starts */
// Not /var/spool/slurmd: slurmstepd makes its unix sockets there, and a 9p share refuses them (ENXIO:
// every batch step died "Could not create domain socket" and its job was requeued). What slurmd keeps
// there is its own, not what this test is about.
export const PERSISTENT_DIRS = ['/var/lib/slurm-krsi', '/var/spool/slurmctld', '/var/log/slurm', '/var/log/slurm-krsi'] as const;
export const MUNGE_KEY = join(PERSIST, 'munge.key');

export const SETUP_UNIT = 'krsi-node-setup.service';
export const AGENT_UNIT = 'krsi-agent.service';
/** the units the boot starts (besides the harness's own) */
export const NODE_UNITS = ['munge.service', 'slurmctld.service', 'slurmd.service', AGENT_UNIT] as const;

export const UNIT_FILE = `/etc/systemd/system/${AGENT_UNIT}`;
/** the pins' own file system (deploy/), which the agent's unit requires: `systemd-escape --path --suffix=mount` of PIN_DIR */
export const PIN_MOUNT_UNIT = 'sys-fs-bpf-slurm\\x2dkrsi.mount';

/**
 * How long the prolog and epilog wait for an agent that is starting or restarting (agent_wait). Under
 * emulation everything runs about 50 times slower than on a node (`node -e 0`: 1.8 s against 35 ms): a
 * quiet VM's agent restarts in 15 s (16 s of CPU) where a node's takes well under one, and ten prologs
 * starting meanwhile (each a Node.js start, 2 to 4 s of CPU here) share the VM's two CPUs with it. The
 * default of 10 s is for a node; this is the same margin at the VM's speed on a busy machine.
 */
export const VM_AGENT_WAIT = 120;

/** the job's users: 1000 runs strict jobs, 1001 and 1002 the other cases */
export const USERS = { 1000: 'krsiuser', 1001: 'krsiother', 1002: 'krsithird' } as const;

export const CLUSTER: ClusterOptions = {
  prolog: PROLOG,
  epilog: EPILOG,
  users: USERS,
  // ten jobs at once and then some (1 CPU each)
  cpus: 16,
  // a node that reboots comes back DOWN and slurmctld ends or requeues its jobs (0, Slurm's default, does
  // the same): the agent then drops the jobs of the earlier boot at once (the reboot specs)
  returnToService: 1,
  // above the hooks' deadline at VM_AGENT_WAIT, with room for the prolog's own start
  prologEpilogTimeout: hookDeadlineSeconds(VM_AGENT_WAIT) + 60,
};

/** where the agent's unit sees this checkout (and the older builds under it): bind-mounted by mountCheckout() */
export const CHECKOUT = '/opt/slurm-krsi-checkout';

/** bind-mount this checkout at CHECKOUT, where the unit's private /tmp does not hide it (node setup, every boot) */
export async function mountCheckout(): Promise<void> {
  mkdirSync(CHECKOUT, { recursive: true });
  await execa('mount', ['--bind', REPO, CHECKOUT]);
}

/** a path of this checkout as the agent's unit sees it, through CHECKOUT */
function throughCheckout(path: string): string {
  const rel = relative(REPO, path);
  return rel === '' || !rel.startsWith('..') ? join(CHECKOUT, rel) : path;
}

/** the wrapper install.sh writes for one of slurm-krsi's commands, running `script` of a build */
function wrapper(script: string, nodeOptions = ''): string {
  return `#!/bin/sh\n# installed by slurm-krsi's systemd specs (as deploy/install.sh installs it)\nexec ${process.execPath} ${nodeOptions ? `${nodeOptions} ` : ''}${throughCheckout(script)} "$@"\n`;
}

/** written beside and renamed into place, as install.sh does: a command is never seen half-written */
function writeExecutable(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, text, { mode: 0o755 });
  renameSync(`${path}.tmp`, path);
}

/**
 * The commands of the build at `buildRoot` (a folder with dist/, build/bpf/, deploy/ and node_modules, as
 * install.sh's /usr/lib/slurm-krsi) in place: the agent (with the build's own V8 options), krsictl, the
 * prolog and the epilog. What install.sh replaces when it upgrades a node, before it restarts the unit.
 */
export function installBuild(buildRoot: string): void {
  const nodeOptions = readFileSync(join(buildRoot, 'deploy/agent-node-options'), 'utf8').split(/\s+/).filter(Boolean).join(' ');
  writeExecutable(AGENT, wrapper(join(buildRoot, 'dist/agent/main.js'), nodeOptions));
  writeExecutable(KRSICTL, wrapper(join(buildRoot, 'dist/agent/cli/krsictl.js')));
  writeExecutable(PROLOG, wrapper(join(buildRoot, 'dist/prolog/prolog.js')));
  writeExecutable(EPILOG, wrapper(join(buildRoot, 'dist/epilog/epilog.js')));
}

/**
 * /etc/slurm-krsi/krsi.ini: the sample config of the build at `root`, as install.sh installs it on a fresh
 * node, with agent_wait set when given (a build from before agent_wait refuses the key).
 */
export function installConfig(root: string, agentWait?: number): void {
  const sample = readFileSync(join(root, 'deploy/krsi.ini'), 'utf8');
  mkdirSync(dirname(CONFIG), { recursive: true });
  writeFileSync(CONFIG, agentWait === undefined ? sample : sample.replace(/^\[agent\]$/m, `[agent]\nagent_wait = ${agentWait}`));
}

/**
 * What install.sh installs on a fresh node, this checkout's: the commands, the config, the state and log
 * folders (the unit files come with the boot: nodeBootUnits).
 */
export function installSlurmKrsi(repo: string): void {
  installBuild(repo);
  installConfig(repo, VM_AGENT_WAIT);
  mkdirSync('/var/lib/slurm-krsi', { recursive: true, mode: 0o700 });
  mkdirSync('/var/log/slurm-krsi', { recursive: true, mode: 0o750 });
}

/**
 * slurm-krsi's programs the kernel has loaded (`bpftool prog show`), of every type: the LSM programs, the
 * tp_btf one on sched_process_exit, 0.1.0's fentry; each with its build id (null: none in its metadata).
 * A running agent may hide its own from everyone else: ask with the agent stopped.
 */
export async function krsiPrograms(): Promise<{ name: string; type: string; buildId: string | null }[]> {
  const progs = JSON.parse((await execa('bpftool', ['-j', 'prog', 'show'])).stdout) as { name?: string; type?: string; metadata?: { build_id?: string } }[];
  return progs.filter((p) => p.name?.startsWith('krsi_'))
    .map((p) => ({ name: p.name!, type: p.type ?? '?', buildId: p.metadata?.build_id ?? null }));
}

/** bind-mount each of PERSISTENT_DIRS from its folder under PERSIST */
export async function mountPersistentDirs(): Promise<void> {
  for (const dir of PERSISTENT_DIRS) {
    const from = join(PERSIST, dir.slice(1).replace(/\//g, '-'));
    mkdirSync(from, { recursive: true });
    mkdirSync(dir, { recursive: true });
    await execa('mount', ['--bind', from, dir]);
  }
}

/**
 * The units a systemd boot of the group adds to the harness's (runInVm's SystemdBoot.units): the node
 * setup, the agent's unit and slurmd's drop-in exactly as deploy/ ships them, and the script's unit
 * ordered after the setup (so that the run's pace is not measured while the setup runs).
 */
export function nodeBootUnits(repo: string): Record<string, string> {
  return {
    [SETUP_UNIT]: [
      '[Unit]',
      'Description=slurm-krsi systemd specs: the node\'s users, Slurm configuration and slurm-krsi; state from the last boot',
      `Before=${NODE_UNITS.join(' ')}`,
      '',
      '[Service]',
      'Type=oneshot',
      'RemainAfterExit=yes',
      `ExecStart=${process.execPath} ${join(repo, 'dist/test/systemd/node-setup.js')}`,
      'Environment=KRSI_VM=1 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      'StandardOutput=journal+console',
      'StandardError=journal+console',
      '',
    ].join('\n'),
    [AGENT_UNIT]: readFileSync(join(repo, 'deploy/krsi-agent.service'), 'utf8'),
    [PIN_MOUNT_UNIT]: readFileSync(join(repo, 'deploy', PIN_MOUNT_UNIT), 'utf8'),
    'slurmd.service.d/slurm-krsi.conf': readFileSync(join(repo, 'deploy/slurmd-krsi-agent.conf'), 'utf8'),
    'krsi-vm-run.service.d/after-node-setup.conf': `[Unit]\nAfter=${SETUP_UNIT}\n`,
  };
}
