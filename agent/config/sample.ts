/**
 * The text of the sample config deploy/krsi.ini, generated from the key tables (keys.ts): every key,
 * commented out with its default and its documentation. `npm run gen:ini` writes it; a unit test fails
 * when the committed file differs from what this returns.
 */
import { POLICIES } from '../enforcement/layout.js';
import { AGENT_FIELDS, AGENT_KEYS, agentKeyDoc, PROFILE_KEYS } from './keys.js';
import { wrapWords } from '../manual/manual.js';

const WIDTH = 104;

/** `text` as `; ` comment lines of at most WIDTH characters (`indent` after the `;` of every line) */
function comment(text: string, indent = ' '): string[] {
  return wrapWords(text, WIDTH - 1 - indent.length).map((l) => `;${indent}${l}`);
}

/** how the file is read and checked: the sample's header and krsi.ini(5)'s DESCRIPTION */
export const CONFIG_RULES =
  'Read by krsi-agent at start and on `krsictl reload`, and checked by `krsictl check`; before pushing it to the nodes, check it on any machine with `krsictl check --config-only --config FILE`. Every key is checked: an unknown key, a bad value or a missing default profile stops the agent, or is rejected by a reload (the running configuration then stays in force), with a message naming the file, the line, the section and the key. The prolog and epilog read only socket, on_error, agent_wait and state_dir. Lines starting with ; or # are comments, and ; or # after a value starts a comment too. Section names, key names and the words off/audit/enforce/fail/allow are lower case. A reload applies every change at once, except where a key says it waits for a restart.';

/** what the [profile NAME] sections are: the sample's and krsi.ini(5)'s introduction to the profile keys */
export const PROFILES_RULES = `A job's policy is the default profile plus the one its comment names (sbatch --comment=policy:strict); a job naming an unknown profile gets the strictest one. Policies: ${POLICIES.join(', ')}.`;

const HEADER = [
  '; /etc/slurm-krsi/krsi.ini -- slurm-krsi: per-job mandatory access control (KRSI / BPF LSM)',
  ';',
  ...comment(CONFIG_RULES),
  ';',
  '; This file is generated from agent/config/keys.ts (npm run gen:ini).',
].join('\n');

export const EXAMPLES = `[profile default]
fileperms = audit

[profile strict]
fileperms = enforce
suidexec = enforce
suidexec_allow = /usr/bin/passwd
sshlisteners = enforce
ssh_clients = /usr/bin/ssh
skconnections = enforce
connect_deny = 192.0.2.0/24, 2001:db8::/32
killtasks = enforce

; An allow-list profile: jobs may reach only loopback and the cluster network, not its gateway 10.0.0.1.
;[profile isolated]
;fileperms = enforce
;suidexec = enforce
;sshlisteners = enforce
;skconnections = enforce
;connect_allow = 127.0.0.0/8, ::1, 10.0.0.0/8, fd00::/8
;connect_deny = 10.0.0.1
;killtasks = enforce`;

export function renderSampleIni(): string {
  const out: string[] = [HEADER, '', '[agent]'];
  for (const field of AGENT_FIELDS) {
    const key = AGENT_KEYS[field];
    out.push(...comment(agentKeyDoc(key)), `;${key.name} =${key.default === '' ? '' : ` ${key.default}`}`, '');
  }
  out.push(
    ...comment(
      `Profiles. ${PROFILES_RULES} Profile keys, all applied on reload:`,
    ),
  );
  for (const key of PROFILE_KEYS) out.push(...comment(`${key.name} (absent: ${key.absent}): ${key.doc}`, '   '));
  out.push('', EXAMPLES, '');
  return out.join('\n');
}
