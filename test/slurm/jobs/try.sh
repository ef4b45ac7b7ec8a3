# shellcheck shell=bash
# Sourced by the test jobs: try NAME COMMAND ARGS... runs the command once and prints one line
#   ATTEMPT <name> rc=<exit status> <what the command printed, on one line>
try() {
  local name=$1 out rc
  shift
  out=$("$@" 2>&1 </dev/null)
  rc=$?
  printf 'ATTEMPT %s rc=%d %s\n' "$name" "$rc" "$(printf '%s' "$out" | tr '\n' ' ' | cut -c1-160)"
}

# enter_job_dir: make and enter this job's scratch directory /tmp/krsi-slurm/job-<jobid>
enter_job_dir() {
  umask 022
  mkdir -p "/tmp/krsi-slurm/job-$SLURM_JOB_ID" && cd "/tmp/krsi-slurm/job-$SLURM_JOB_ID" || exit 1
}

# wait_for_go: wait until the test has seen this job bound to its cgroup (it creates go-<jobid>); an
# attempt made before the binding would be judged by the uid's union instead
wait_for_go() {
  while [ ! -e "/tmp/krsi-slurm/go-$SLURM_JOB_ID" ]; do sleep 0.2; done
}

# chmod_in_cgroup FILE: a command line for `try` that prints its own cgroup v2 path (the kernel's view,
# /proc/self/cgroup) and then tries a set-uid chmod of FILE from that cgroup
chmod_in_cgroup() {
  printf 'sed -n "s/^0:://p" /proc/self/cgroup && chmod u+s %q' "$1"
}
