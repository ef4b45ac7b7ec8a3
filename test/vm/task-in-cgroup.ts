/**
 * A command started the way slurmstepd starts a job's task: placed into a cgroup first (by root: only root
 * may move a process between cgroups, and only into a leaf), then switched to the task's uid and group,
 * without supplementary groups, by setpriv, so that the command itself runs as that uid in that cgroup.
 * For the kernel specs and the benchmarks, inside the VM.
 */
export function asTaskIn(cgroup: string | null, uid: number, file: string, args: string[]): [string, string[]] {
  // cgroup null: left in the caller's cgroup (outside every job)
  const place = cgroup === null ? '' : 'echo $$ > "$0/cgroup.procs" && ';
  return ['/bin/sh', ['-c', `${place}u=$1 && shift && exec setpriv --reuid="$u" --regid="$u" --clear-groups -- "$@"`, cgroup ?? '-', String(uid), file, ...args]];
}
