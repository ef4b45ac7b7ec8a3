#!/bin/bash
# The seed paper's attacks (figures 8-12) and their attacker variants, each tried once from inside a Slurm
# job the way a user would, with ordinary tools (krsi-probe only where bash cannot make the call: IPv6,
# IPv4-mapped, unconnected sendto, a process named ssh). Used by the Slurm spec and by the demo.
# One line per attempt:  ATTEMPT <name> rc=<exit status> <what the tool printed, on one line>
# Environment (sbatch --export): KRSI_JOBS (this folder: sbatch runs a copy of the script), KRSI_PROBE (build/probe/krsi-probe), KRSI_AGENT_PID, KRSI_SSH_PORT (an
# sshd on 127.0.0.1 that accepts the user's own key: test/slurm/node.ts startSshd).
umask 022
W=/tmp/krsi-slurm/job-$SLURM_JOB_ID
mkdir -p "$W" && cd "$W" || exit 1
echo "JOB $SLURM_JOB_ID user=$(id -un) uid=$(id -u) comment=${SLURM_JOB_COMMENT:-}"
# shellcheck source=try.sh
source "$KRSI_JOBS/try.sh"
me=$(id -u)
touch mine shared

# figure 8 (fileperms): set-uid / set-gid bits, world-writable files, directories and ACLs
try chmod_suid chmod u+s mine
try chmod_sgid chmod g+s mine
try chmod_o+w chmod o+w shared
try umask_touch bash -c 'umask 0000 && touch open-to-all'
try umask_mkdir bash -c 'umask 0000 && mkdir open-dir'
try acl_other_write setfacl -m o::rw shared

# figure 9 (suidexec): a set-uid program that is not allowlisted, and one that is
try suid_exec /usr/bin/chfn --help
try suid_allowlisted /usr/bin/passwd --help

# figure 10 (sshlisteners): ssh -D (a SOCKS proxy listening on the node), also through a symlink named
# vim; and any program that calls itself ssh (the paper's comm check)
ssh_opts=(-p "$KRSI_SSH_PORT" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
  -o LogLevel=ERROR -o ExitOnForwardFailure=yes -N -f)
port=$((20000 + me % 1000 * 4))
try ssh_dynamic_forward bash -c "ssh ${ssh_opts[*]} -D 127.0.0.1:$port 127.0.0.1 && pkill -u $me -x ssh && echo proxy was up"
ln -sf /usr/bin/ssh vim
try ssh_renamed_symlink bash -c "./vim ${ssh_opts[*]} -D 127.0.0.1:$((port + 1)) 127.0.0.1 && pkill -u $me -x vim && echo proxy was up"
try ssh_comm_listen "$KRSI_PROBE" --comm ssh listen4 127.0.0.1 $((port + 2))

# figure 11 (skconnections): TCP and UDP to a denied network; IPv6, IPv4-mapped IPv6, unconnected sendto
try tcp_connect bash -c 'exec 3<>/dev/tcp/192.0.2.10/22'
try udp_connect bash -c 'exec 3<>/dev/udp/192.0.2.53/53'
try tcp6_connect "$KRSI_PROBE" connect6 2001:db8::10 443 tcp
try v4mapped_connect "$KRSI_PROBE" connect6 ::ffff:192.0.2.10 22 tcp
try udp_sendto "$KRSI_PROBE" sendto4 192.0.2.53 53
# attacker variants: a destination whose family field is AF_UNSPEC (UDP sends it as IPv4), the NAT64 form
# of a denied IPv4 address, an IPv6 routing header that sends a loopback connect toward the denied network
try udp_sendto_unspec "$KRSI_PROBE" sendto4-unspec 192.0.2.53 53
try nat64_connect "$KRSI_PROBE" connect6 64:ff9b::192.0.2.10 22 tcp
try routing_header "$KRSI_PROBE" srh-connect 2001:db8::1 ::1 "$KRSI_SSH_PORT"
# an allowed destination: the node's own sshd
try loopback_connect bash -c "exec 3<>/dev/tcp/127.0.0.1/$KRSI_SSH_PORT && echo connected"

# figure 12 (killtasks): kill -9 the agent (root's process: the kernel's ordinary check refuses a user first)
try kill_agent kill -9 "$KRSI_AGENT_PID"
echo DONE
