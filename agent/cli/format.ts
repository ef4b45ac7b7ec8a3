/**
 * krsictl's readable output: tables and key: value lines. Every string that came from a job or an event
 * (user names, comms, log lines) is made terminal-safe: control characters are shown escaped, never sent.
 */
import type { AgentStatus, JobBinding, JobView, ProfileView, ReconcileStatus, ReloadResult } from '../service/types.js';
import { POLICIES } from '../enforcement/layout.js';

/** replace C0/C1 control characters (and DEL) with \xNN so nothing reaches the terminal raw */
export function safe(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

/** left-aligned columns separated by two spaces; the last column is not padded */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function keyValues(pairs: [string, string][]): string {
  const width = Math.max(...pairs.map(([k]) => k.length)) + 1;
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width)} ${v}`).join('\n');
}

export function duration(seconds: number): string {
  let s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const parts: string[] = [];
  if (d > 0) parts.push(`${d}d`);
  if (d > 0 || h > 0) parts.push(`${h}h`);
  if (d > 0 || h > 0 || m > 0) parts.push(`${m}m`);
  parts.push(`${s}s`);
  return parts.join(' ');
}

/** the reconciliation's last reading of Slurm's view, on one line */
function slurmView(r: ReconcileStatus): string {
  if (r.slurmView === 'not read yet') return 'not read yet';
  const read = `${r.slurmView} at ${safe(r.lastAt ?? '?')}`;
  if (r.slurmView === 'unreadable') return `${read}: ${safe(r.problem ?? '')}`;
  const asked = r.controllerProblem === null ? '' : `; slurmctld cannot be asked about the jobs of an earlier boot: ${safe(r.controllerProblem)}`;
  return `${read} (PrologFlags=Contain: ${r.allocationsVisible ? 'yes' : 'no'}; a reboot ends jobs: ${r.rebootEndsJobs ? 'yes' : 'no, ReturnToService=2'}${asked})`;
}

export function formatStatus(st: AgentStatus): string {
  const list = (xs: readonly (string | number)[]): string => (xs.length === 0 ? '-' : xs.map((x) => safe(String(x))).join(', '));
  const head = keyValues([
    ['version', safe(st.version)],
    ['build', safe(st.buildId)],
    ['kernel', safe(st.kernel)],
    ['lsm', safe(st.lsm.join(',')) || '-'],
    ['config', safe(st.configPath)],
    ['pin dir', safe(st.pinDir)],
    ['programs', `${st.programs.length} (${list(st.programs)})`],
    ['pinned', String(st.pinned.length)],
    ['adopted', st.adopted ? 'yes (programs left pinned by a previous agent of this build)' : 'no'],
    ['jobs', String(st.jobs)],
    ['job cgroups', st.jobCgroups.usable ? `${st.jobCgroups.bound} job(s) bound (level ${st.jobCgroups.level})` : `unavailable: ${safe(st.jobCgroups.problem ?? '')}`],
    ['uids under policy', list(st.uidsUnderPolicy)],
    ['events', `${st.events.logged} logged, ${st.events.folded} folded (${st.events.repeatsLogged} of them reported as repeats=), ${st.events.dropped} dropped`],
    ['slurm view', slurmView(st.reconcile)],
    ['unverified jobs', list(st.reconcile.unverified)],
    ['uptime', `${duration(st.uptimeSeconds)} (since ${safe(st.startedAt)})`],
    ['warnings', st.warnings.length === 0 ? 'none' : String(st.warnings.length)],
  ]);
  const counters = table(
    ['POLICY', 'DENY', 'AUDIT', 'FOLDED', 'DROPPED'],
    POLICIES.map((p) => {
      const c = st.counters[p] ?? { deny: 0, audit: 0, dropped: 0, folded: 0 };
      return [p, String(c.deny), String(c.audit), String(c.folded), String(c.dropped)];
    }),
  );
  const warnings = st.warnings.map((w) => `warning: ${safe(w)}`);
  return [head, '', counters, ...(warnings.length > 0 ? ['', ...warnings] : [])].join('\n');
}

/** a job's cgroup binding in one cell */
function binding(b: JobBinding): string {
  return b.state === 'bound' ? `bound (cgroup ${safe(b.cgroupId ?? '?')})` : b.state;
}

export function formatJobs(jobs: readonly JobView[]): string {
  if (jobs.length === 0) return 'no jobs on this node';
  const rows = jobs.map((j) => [
    safe(j.jobId),
    String(j.uid),
    j.user === null ? '-' : safe(j.user),
    safe(j.profiles.join(',')) || '-',
    j.requested === null ? '-' : safe(j.requested) + (j.unknownProfile !== null ? ' (unknown: strictest applied)' : ''),
    binding(j.binding),
  ]);
  return table(['JOBID', 'UID', 'USER', 'PROFILES', 'REQUESTED', 'CGROUP'], rows);
}

export function formatProfiles(profiles: readonly ProfileView[]): string {
  if (profiles.length === 0) return 'no profiles';
  const rows = profiles.map((p) => [
    safe(p.name) + (p.isDefault ? ' *' : ''),
    ...POLICIES.map((pol) => p.policy.modes[pol] ?? '-'),
  ]);
  return `${table(['PROFILE', ...POLICIES.map((p) => p.toUpperCase())], rows)}\n(* the default profile: the floor applied to every job)`;
}

export function formatReload(r: ReloadResult): string {
  const lines = [`reloaded ${safe(r.configPath)}: ${r.uidsUpdated} uid(s) updated`];
  for (const w of r.warnings) lines.push(`warning: ${safe(w)}`);
  return lines.join('\n');
}

/** a Lua string literal (double quoted, with escapes) */
export function luaString(s: string): string {
  let out = '"';
  for (const ch of Buffer.from(s, 'utf8')) {
    if (ch === 0x22) out += '\\"';
    else if (ch === 0x5c) out += '\\\\';
    else if (ch >= 0x20 && ch < 0x7f) out += String.fromCharCode(ch);
    else out += `\\${ch.toString().padStart(3, '0')}`;
  }
  return `${out}"`;
}

/** `return { "default", "strict" }`: the profile names as a Lua table literal, for slurm/job_submit.lua */
export function luaProfileTable(names: readonly string[]): string {
  return `return { ${names.map(luaString).join(', ')} }`;
}
