#!/bin/bash
# bringup.sh - a throwaway Slurm 22.05 cluster inside the test VM (see test/slurm/cluster.ts): one node,
# or several nodes that are each a slurmd of this host (`slurmd -N NAME`, each on its own port).
#
# Environment (all set by cluster.ts):
#   KRSI_SLURM_CONF       the slurm.conf text to install
#   KRSI_SLURM_NODES      its node names, this host's first (default: this host's name)
#   KRSI_SLURM_LUA        path of a job_submit.lua to install (with the Lua modules beside it), or empty
#   KRSI_SLURM_USERS      "UID:NAME UID:NAME ...": users that must exist (created when missing)
#   KRSI_SLURM_ADDR       the address of the dummy interface (CIDR)
#   KRSI_SLURM_WORK       a scratch directory for jobs (made world-writable, sticky)
#   KRSI_SLURM_KEEP_WORK  1: keep what is in it (job ids start above an earlier cluster's); else emptied
#   KRSI_SLURM_SYSTEMD    1: systemd starts the daemons (their Debian units) once this returns, and the
#                         state directories persist across boots (they are kept, not emptied); the cgroup
#                         tree is systemd's
#   KRSI_SLURM_MUNGE_KEY  with KRSI_SLURM_SYSTEMD: the munge key to install, kept there across boots
#                         (created on the first)
#
# Every step says what it does; on a failure the daemons' logs are printed.
set -euo pipefail

[ "${KRSI_VM:-}" = 1 ] || { echo "bringup.sh: refusing to run outside the test VM (KRSI_VM=1 not set): it rewrites /etc" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "bringup.sh: must run as root" >&2; exit 1; }

step() { echo "slurm-bringup: $*"; }
logs() {
  for f in /var/log/munge/munged.log /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log; do
    [ -f "$f" ] || continue
    echo "----- tail of $f -----"
    tail -n 40 "$f"
  done
}
fail() {
  echo "slurm-bringup: FAILED: $*" >&2
  logs >&2
  exit 1
}
trap 'fail "command failed at line $LINENO: $BASH_COMMAND"' ERR

host=$(hostname)
read -r -a nodes <<<"${KRSI_SLURM_NODES:-$host}"

step "network: dummy interface krsi-dummy0 with $KRSI_SLURM_ADDR (Slurm resolves with AI_ADDRCONFIG)"
modprobe dummy
ip link show krsi-dummy0 >/dev/null 2>&1 || ip link add krsi-dummy0 type dummy
ip addr replace "$KRSI_SLURM_ADDR" dev krsi-dummy0
ip link set krsi-dummy0 up
# every node name is this host (NodeHostname= of each node); the host's own first
names=$(printf '%s\n' "$host" "${nodes[@]}" | awk '!seen[$0]++' | paste -sd' ')
printf '127.0.0.1\tlocalhost %s\n::1\tlocalhost ip6-localhost ip6-loopback\n' "$names" >/etc/hosts

systemd=${KRSI_SLURM_SYSTEMD:-0}
if [ "$systemd" != 1 ]; then
  step "cgroup v2: system.slice, controllers cpuset cpu memory pids (slurmd dies without cgroup/v2 set up)"
  [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ] || fail "/sys/fs/cgroup is not cgroup2"
  mkdir -p /sys/fs/cgroup/system.slice
  echo "+cpuset +cpu +memory +pids" >/sys/fs/cgroup/cgroup.subtree_control
  echo "+cpuset +cpu +memory +pids" >/sys/fs/cgroup/system.slice/cgroup.subtree_control
fi

step "users: $KRSI_SLURM_USERS"
for spec in $KRSI_SLURM_USERS; do
  uid=${spec%%:*} name=${spec#*:}
  if ! getent passwd "$uid" >/dev/null; then
    getent group "$uid" >/dev/null || groupadd -g "$uid" "$name"
    useradd -u "$uid" -g "$uid" -M -d "/home/$name" -s /bin/bash "$name"
  fi
  home=$(getent passwd "$uid" | cut -d: -f6)
  mkdir -p "$home"
  chown "$uid:$uid" "$home"
done

step "work directory $KRSI_SLURM_WORK"
mkdir -p "$KRSI_SLURM_WORK"
chmod 1777 "$KRSI_SLURM_WORK"

step "munge"
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ "$systemd" = 1 ] && [ -s "${KRSI_SLURM_MUNGE_KEY:?}" ]; then
  install -m 0400 "$KRSI_SLURM_MUNGE_KEY" /etc/munge/munge.key
fi
if [ ! -s /etc/munge/munge.key ]; then
  mungekey --create --keyfile=/etc/munge/munge.key
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
if [ "$systemd" = 1 ]; then
  [ -s "$KRSI_SLURM_MUNGE_KEY" ] || install -m 0400 /etc/munge/munge.key "$KRSI_SLURM_MUNGE_KEY"
else
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 100); do [ -S /run/munge/munge.socket.2 ] && break; sleep 0.1; done
  munge -n | unmunge >/dev/null || fail "munge does not round-trip a credential"
fi

step "slurm.conf, cgroup.conf${KRSI_SLURM_LUA:+, job_submit.lua}"
mkdir -p /etc/slurm
printf '%s\n' "$KRSI_SLURM_CONF" >/etc/slurm/slurm.conf
printf 'CgroupPlugin=cgroup/v2\nIgnoreSystemd=yes\n' >/etc/slurm/cgroup.conf
rm -f /etc/slurm/*.lua
if [ -n "$KRSI_SLURM_LUA" ]; then
  # the modules it requires (slurm/slurm_krsi.lua) go beside it, where its package.path looks
  for module in "$(dirname "$KRSI_SLURM_LUA")"/*.lua; do install -m 0644 "$module" /etc/slurm/; done
  install -m 0644 "$KRSI_SLURM_LUA" /etc/slurm/job_submit.lua
fi

if [ "$systemd" = 1 ]; then
  step "state directories (kept across boots)"
  install -d -o slurm -g slurm -m 0755 /var/spool/slurmctld /var/log/slurm /run/slurm
  install -d -m 0755 /var/spool/slurmd
  step "systemd starts munge, slurmctld and slurmd"
  exit 0
fi

step "state directories (empty)"
rm -rf /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm
# job ids start from 1 again: an earlier cluster's job files there may be another user's (out-2.txt of
# uid 1000 cannot be opened by uid 1001's job 2 in a sticky directory). A cluster whose ids start above
# the earlier one's (FirstJobId) keeps them, and whatever else lives there (the agent's log).
[ "${KRSI_SLURM_KEEP_WORK:-0}" = 1 ] || find "$KRSI_SLURM_WORK" -mindepth 1 -delete
install -d -o slurm -g slurm -m 0755 /var/spool/slurmctld /var/log/slurm /run/slurm
install -d -m 0755 /var/spool/slurmd

step "slurmctld (as slurm)"
runuser -u slurm -- /usr/sbin/slurmctld
up=no
for _ in $(seq 150); do
  if scontrol ping 2>/dev/null | grep -q 'is UP'; then up=yes; break; fi
  sleep 0.2
done
[ "$up" = yes ] || fail "slurmctld does not answer scontrol ping"

if [ "${#nodes[@]}" -eq 1 ]; then
  step "slurmd (as root)"
  /usr/sbin/slurmd
else
  for node in "${nodes[@]}"; do
    step "slurmd -N $node (as root)"
    /usr/sbin/slurmd -N "$node"
  done
fi
states=
for _ in $(seq 300); do
  states=$(sinfo -h -N -o %T 2>/dev/null | sort | uniq -c | xargs || true)
  [ "$states" = "${#nodes[@]} idle" ] && break
  sleep 0.2
done
[ "$states" = "${#nodes[@]} idle" ] || fail "nodes ${nodes[*]} did not all become idle (states: ${states:-none})"
step "nodes ${nodes[*]} idle"
