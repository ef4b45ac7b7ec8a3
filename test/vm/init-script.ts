// The /init of the test VM's initramfs (busybox ash, PID 1).
//
// It loads the modules listed in /modules.order, mounts the host's root read-only over 9p with a tmpfs
// overlay on top, mounts the writable results share and any extra shares named on the kernel command line,
// the usual pseudo filesystems inside the new root, then switch_roots into it (not chroot: a chrooted
// process may not create a user namespace, and the tests need unshare -U, newuidmap and overlay mounts
// in user namespaces) and execs PID1_SCRIPT there as PID 1. That runs /krsi-results/run.sh, writes its
// exit status to /krsi-results/exit-status and powers the VM off. Any failure before the script runs
// prints "krsi-init: FATAL" and powers off without an exit-status file, which the host reports as an error.
//
// With krsi.init=systemd it hands over to the host's systemd instead (/lib/systemd/systemd as PID 1): the
// host wrote the units of the run into /krsi-results/systemd/units (copied to /run/systemd/system, where
// runtime units live) and the names of the units to mask into /krsi-results/systemd/masked; the kernel
// command line names the default target (systemd.unit=). One of those units runs RUN_UNIT_SCRIPT, which
// does what PID1_SCRIPT does: run.sh, its exit status, power off.
//
// Kernel command line parameters it reads:
//   krsi.hostname=NAME          hostname inside the VM (default krsi-vm)
//   krsi.share=TAG:PATH:ro|rw   extra 9p share mounted at PATH inside the new root (repeatable)
//   krsi.rootcache=MODE         9p cache mode of the host root (default loose)
//   krsi.init=script|systemd    PID 1 after switch_root (default script: PID1_SCRIPT)

/** Markers the host watches for on the console. */
export const MARK_READY = 'krsi-init: starting run.sh';
export const MARK_STATUS = 'krsi-init: run.sh exited with status';
export const MARK_FATAL = 'krsi-init: FATAL';

/** where PID 1 takes requests from tests (init-control.ts), inside the VM */
export const INIT_CONTROL_DIR = '/run/krsi-init';

/** in systemd mode: the folder of the results share the host fills with units (units/) and masks (masked) */
export const SYSTEMD_RUN_DIR = 'systemd';
/** in systemd mode: where the unit that runs run.sh finds RUN_UNIT_SCRIPT */
export const RUN_UNIT_SCRIPT_PATH = `${INIT_CONTROL_DIR}/run-unit.sh`;

export const INIT_SCRIPT = `#!/bin/busybox sh
/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec 0</dev/console 1>/dev/console 2>&1

say() { echo "krsi-init: $*"; }
halt_now() {
  sync
  poweroff -f
  echo o > /proc/sysrq-trigger
  sleep 30
}
fatal() {
  echo "${MARK_FATAL}: $*"
  halt_now
}

vm_hostname=krsi-vm
shares=
rootcache=loose
init_mode=script
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    krsi.hostname=*) vm_hostname="\${arg#*=}" ;;
    krsi.share=*) shares="$shares \${arg#*=}" ;;
    krsi.rootcache=*) rootcache="\${arg#*=}" ;;
    krsi.init=*) init_mode="\${arg#*=}" ;;
  esac
done

while read -r mod; do
  [ -n "$mod" ] || continue
  insmod "/lib/modules/$mod" || fatal "insmod $mod failed"
done </modules.order

p9opts="trans=virtio,version=9p2000.L,msize=262144"
mkdir -p /mnt/host /mnt/rw /newroot
mount -t 9p -o "ro,$p9opts,cache=$rootcache" hostroot /mnt/host || fatal "cannot mount the host root (9p tag hostroot)"
mount -t tmpfs -o mode=0755 tmpfs /mnt/rw || fatal "cannot mount the overlay tmpfs"
mkdir -p /mnt/rw/upper /mnt/rw/work
mount -t overlay -o lowerdir=/mnt/host,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work overlay /newroot \\
  || fatal "cannot mount the overlay root"
R=/newroot

mkdir -p "$R/krsi-results"
# the results share must reach the host as soon as the VM stops: no page cache for writes
mount -t 9p -o "$p9opts,cache=mmap" results "$R/krsi-results" || fatal "cannot mount the results share"
mount -t proc proc "$R/proc" || fatal "cannot mount proc"
mount -t sysfs sysfs "$R/sys" || fatal "cannot mount sysfs"
mount -t securityfs securityfs "$R/sys/kernel/security" || fatal "cannot mount securityfs"
mount -t bpf -o mode=0700 bpf "$R/sys/fs/bpf" || fatal "cannot mount bpffs"
mount -t cgroup2 -o nsdelegate cgroup2 "$R/sys/fs/cgroup" || fatal "cannot mount cgroup2"
mount -t tracefs tracefs "$R/sys/kernel/tracing" 2>/dev/null || say "tracefs not mounted"
mount -t debugfs debugfs "$R/sys/kernel/debug" 2>/dev/null || say "debugfs not mounted"
mount -t devtmpfs devtmpfs "$R/dev" || fatal "cannot mount devtmpfs"
mkdir -p "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$R/dev/pts" || fatal "cannot mount devpts"
mount -t tmpfs -o mode=1777 tmpfs "$R/dev/shm" || fatal "cannot mount /dev/shm"
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp" || fatal "cannot mount /tmp"
mount -t tmpfs -o mode=0755 tmpfs "$R/run" || fatal "cannot mount /run"
mkdir -p "$R/run/lock"

# extra shares last, so that one under /tmp or /run is not hidden by the tmpfs mounted there
for share in $shares; do
  tag="\${share%%:*}"; rest="\${share#*:}"; at="\${rest%%:*}"; mode="\${rest##*:}"
  mkdir -p "$R$at"
  # read-only shares are not expected to change during a run: cache them like the root
  cache=mmap; [ "$mode" = ro ] && cache="$rootcache"
  mount -t 9p -o "$mode,$p9opts,cache=$cache" "$tag" "$R$at" || fatal "cannot mount share $tag at $at"
done

ip link set lo up || fatal "cannot bring lo up"
hostname "$vm_hostname"

mkdir -p "$R${INIT_CONTROL_DIR}" || fatal "cannot create ${INIT_CONTROL_DIR}"
if [ "$init_mode" = systemd ]; then
  from="$R/krsi-results/${SYSTEMD_RUN_DIR}"
  [ -d "$from/units" ] || fatal "krsi.init=systemd, but the host wrote no units into /krsi-results/${SYSTEMD_RUN_DIR}/units"
  mkdir -p "$R/run/systemd/system"
  cp -R "$from/units/." "$R/run/systemd/system/" || fatal "cannot copy the units"
  while read -r unit; do
    [ -n "$unit" ] && ln -sf /dev/null "$R/run/systemd/system/$unit"
  done <"$from/masked"
  cp /run-unit.sh "$R${RUN_UNIT_SCRIPT_PATH}" || fatal "cannot copy the run unit's script"
  # a host that is itself a container leaves its marker in the shared root; systemd would then take the VM
  # for a container and ignore the kernel command line (systemd.unit=...)
  rm -f "$R/.dockerenv" "$R/run/.containerenv"
  say "handing over to systemd"
  exec switch_root "$R" /lib/systemd/systemd
  fatal "switch_root to systemd failed"
fi
[ "$init_mode" = script ] || fatal "unknown krsi.init=$init_mode (script or systemd)"
cp /pid1.sh "$R${INIT_CONTROL_DIR}/pid1.sh" || fatal "cannot copy the PID 1 script"
exec switch_root "$R" /usr/bin/env -i \\
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
  HOME=/root LANG=C.UTF-8 TERM=dumb KRSI_VM=1 KRSI_RESULTS_DIR=/krsi-results \\
  /bin/bash "${INIT_CONTROL_DIR}/pid1.sh"
fatal "switch_root failed"
`;

/**
 * PID 1 of the VM once the overlay root is in place (bash). Runs run.sh as its child and waits for it.
 *
 * It also stands in for what a real init does on an admin's behalf: the agent protects itself from every
 * sender but PID 1 (that is how `systemctl stop` reaches it), so a test that must stop it asks PID 1 to
 * send the signal. A request is a file ${INIT_CONTROL_DIR}/req-NAME holding "SIGNAL PID"; the test then
 * sends SIGUSR1 to PID 1, whose trap sends the signal itself and answers in done-NAME ("ok", or "failed:
 * <kill's message>"). Only signals are served.
 */
export const PID1_SCRIPT = `#!/bin/bash
exec 0</dev/console 1>/dev/console 2>&1
say() { echo "krsi-init: $*"; }
ctl=${INIT_CONTROL_DIR}

serving=
serve_requests() {
  # tests send SIGUSR1 again while they wait: never serve re-entrantly, and claim each request by
  # renaming it, so that a request is carried out exactly once
  [ -z "$serving" ] || return 0
  serving=1
  local req name sig pid answer
  for req in "$ctl"/req-*; do
    [ -f "$req" ] || continue
    name=\${req#"$ctl"/req-}
    mv "$req" "$ctl/taken-$name" || continue
    read -r sig pid <"$ctl/taken-$name" || true
    if [[ "$sig" =~ ^[A-Z0-9]+$ && "$pid" =~ ^[0-9]+$ ]]; then
      # the builtin, in this very process: a subshell ($(...)) would send it from another pid
      if kill "-$sig" "$pid" 2>"$ctl/taken-$name"; then answer=ok; else answer="failed: $(cat "$ctl/taken-$name")"; fi
    else
      answer="failed: bad request $(head -c 80 "$ctl/taken-$name")"
    fi
    echo "$answer" >"$ctl/answer-$name"
    mv "$ctl/answer-$name" "$ctl/done-$name"
    rm -f "$ctl/taken-$name"
  done
  serving=
}
trap serve_requests USR1

say "starting run.sh (uptime $(cut -d' ' -f1 /proc/uptime)s)"
/bin/bash /krsi-results/run.sh </dev/null &
child=$!
# wait returns early (status > 128) whenever the trap ran; the child is done once it is gone
while :; do
  wait "$child"
  kill -0 "$child" 2>/dev/null || break
done
wait "$child"
status=$?
echo "$status" >/krsi-results/exit-status
sync
echo "${MARK_STATUS} $status (uptime $(cut -d' ' -f1 /proc/uptime)s)"
/bin/busybox poweroff -f
echo o >/proc/sysrq-trigger
sleep 30
`;

/**
 * In systemd mode, the script of the unit that runs run.sh (see systemdRunUnits() in qemu.ts): what
 * PID1_SCRIPT does, as a service. It powers off at once when run.sh is done (systemctl poweroff -ff: no
 * unit is stopped), which for the services running is a power loss.
 */
export const RUN_UNIT_SCRIPT = `#!/bin/bash
exec 0</dev/null 1>/dev/console 2>&1
say() { echo "krsi-init: $*"; }
say "starting run.sh under systemd (uptime $(cut -d' ' -f1 /proc/uptime)s)"
/bin/bash /krsi-results/run.sh
status=$?
echo "$status" >/krsi-results/exit-status
sync
echo "${MARK_STATUS} $status (uptime $(cut -d' ' -f1 /proc/uptime)s)"
systemctl poweroff --force --force
echo o >/proc/sysrq-trigger
sleep 30
`;
