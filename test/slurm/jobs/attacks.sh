#!/bin/bash
# The seed paper's attacks (figures 8-12), each tried once from inside a Slurm job. One line per attempt:
#   ATTEMPT <name> rc=<exit status> <what the tool printed, on one line>
# Environment (sbatch --export): KRSI_PROBE (build/probe/krsi-probe), KRSI_AGENT_PID.
umask 022
W=/tmp/krsi-slurm/job-$SLURM_JOB_ID
mkdir -p "$W" && cd "$W" || exit 1
echo "JOB $SLURM_JOB_ID uid=$(id -u) comment=${SLURM_JOB_COMMENT:-}"
try() {
  local name=$1 out rc
  shift
  out=$("$@" 2>&1 </dev/null)
  rc=$?
  printf 'ATTEMPT %s rc=%d %s\n' "$name" "$rc" "$(printf '%s' "$out" | tr '\n' ' ' | cut -c1-160)"
}
touch own
# figure 8 (fileperms): set-uid on one's own file; a world-writable file through umask 0000
try chmod_suid chmod u+s own
try umask_touch bash -c 'umask 0000 && touch open'
# figure 9 (suidexec): a set-uid program that is not allowlisted, and one that is
try suid_exec /usr/bin/chfn --help
try suid_allowlisted /usr/bin/passwd --help
# figure 10 (sshlisteners): an ssh client opening a listener (ssh -D), as the paper detects it (comm ssh)
try ssh_listen "$KRSI_PROBE" --comm ssh listen4 127.0.0.1 10801
# figure 11 (skconnections): TCP and UDP to a denied network, IPv4 and IPv6
try tcp_connect bash -c 'exec 3<>/dev/tcp/192.0.2.10/22'
try udp_connect bash -c 'exec 3<>/dev/udp/192.0.2.10/53'
try tcp6_connect "$KRSI_PROBE" connect6 2001:db8::10 443 tcp
# allowed destination (loopback, nothing listening): refused by the peer, not by the policy
try loopback_connect "$KRSI_PROBE" connect4 127.0.0.1 9 tcp
# figure 12 (killtasks): kill -9 the agent
try kill_agent kill -9 "$KRSI_AGENT_PID"
echo DONE
