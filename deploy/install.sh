#!/usr/bin/env bash
# install.sh - install slurm-krsi on this compute node from a built checkout
#
# SYNOPSIS
#     deploy/install.sh [--force] [--no-enable]
#
# DESCRIPTION
#     Packages are the way to install on many nodes (npm run package: a .deb and an .rpm with their own
#     Node.js); this script installs from a checkout. Run it as root in a checkout where
#     `npm ci && npm run build` has run. Installs the built agent with its production dependencies into
#     /usr/lib/slurm-krsi, and:
#       /usr/sbin/krsi-agent, /usr/sbin/krsictl          (on root's PATH)
#       /usr/libexec/slurm-krsi/prolog, .../epilog      (slurm.conf Prolog= / Epilog=)
#       /usr/libexec/slurm-krsi/task-prolog             (slurm.conf TaskProlog=: the job's profile in its output)
#       /usr/share/man/man{5,7,8}/                      (krsi-agent(8), krsictl(8), krsi.ini(5), slurm-krsi(7))
#       /etc/slurm-krsi/krsi.ini                        (the sample, only if none exists)
#       /etc/slurm-krsi/profiles.lua                    (profile names for slurm/job_submit.lua)
#       /etc/logrotate.d/slurm-krsi                     (when logrotate is present: the event log file)
#       /etc/systemd/system/krsi-agent.service          (when systemd is present; enabled unless --no-enable)
#       /etc/systemd/system/slurmd.service.d/slurm-krsi.conf  (slurmd starts after the agent is ready)
#       /etc/systemd/system/sys-fs-bpf-slurm\x2dkrsi.mount (the pins' own file system, required by the agent)
#     Idempotent: running it again upgrades the files and keeps the config. The agent keeps enforcing
#     during an upgrade: its programs stay pinned while it restarts, and an agent of a new BPF build
#     attaches its own programs and moves every job over before it removes the old ones.
#     Refuses, with the reason and the fix, on a node where BPF LSM cannot be used (--force installs anyway).
#
# EXIT STATUS
#     0 installed; 1 refused or failed.
set -euo pipefail

force=no
enable=yes
for arg in "$@"; do
  case "$arg" in
    --force) force=yes ;;
    --no-enable) enable=no ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument $arg (see --help)" >&2; exit 1 ;;
  esac
done

die() { echo "slurm-krsi install: $*" >&2; exit 1; }
say() { echo "slurm-krsi install: $*"; }

src=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=deploy/lib.sh
. "$src/deploy/lib.sh"
prefix=/usr/lib/slurm-krsi
[ "$(id -u)" -eq 0 ] || die "must run as root"
[ -f "$src/build/bpf/krsi.bpf.o" ] && [ -f "$src/dist/agent/main.js" ] && [ -f "$src/build/man/krsictl.8" ] && [ -d "$src/node_modules" ] ||
  die "$src is not built: run npm ci && npm run build there first"
node=$(command -v node) || die "node not found on PATH (Node.js >= 20.19 is needed)"
"$node" -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' ||
  die "Node.js $("$node" --version) is too old: 20.19 or newer is needed (22 or 24 LTS recommended)"

# can this node enforce at all? (the config is checked by the agent at start)
if ! check=$("$node" "$src/dist/agent/cli/krsictl.js" check --config "$src/deploy/krsi.ini" 2>&1); then
  if [ "$force" = yes ]; then
    say "WARNING: installing anyway (--force):"; echo "$check" >&2
  else
    echo "$check" >&2
    die "refusing to install: this node cannot enforce policies (see above; --force to install anyway)"
  fi
fi

# the new tree next to the old one, then swapped in
stage="$prefix.new"
rm -rf "$stage"
krsi_stage_tree "$src" "$stage" || die "cannot copy the runtime tree into $stage"
rm -rf "$prefix.old"
[ -d "$prefix" ] && mv "$prefix" "$prefix.old"
mv "$stage" "$prefix"
rm -rf "$prefix.old"

krsi_wrappers "" "$node" "$prefix" "$src"
krsi_man_pages "" "$src"

install -d -m 0755 /etc/slurm-krsi
if [ -f /etc/slurm-krsi/krsi.ini ]; then
  say "keeping the existing /etc/slurm-krsi/krsi.ini"
else
  install -m 0644 "$src/deploy/krsi.ini" /etc/slurm-krsi/krsi.ini
  say "installed the sample config /etc/slurm-krsi/krsi.ini"
fi
if [ -d /etc/logrotate.d ]; then
  install -m 0644 "$src/deploy/logrotate" /etc/logrotate.d/slurm-krsi
fi
/usr/sbin/krsictl profiles --lua --config /etc/slurm-krsi/krsi.ini >/etc/slurm-krsi/profiles.lua.tmp &&
  mv /etc/slurm-krsi/profiles.lua.tmp /etc/slurm-krsi/profiles.lua
install -d -m 0700 /var/lib/slurm-krsi
install -d -m 0750 /var/log/slurm-krsi

if [ -d /etc/systemd/system ]; then
  install -m 0644 "$src/deploy/krsi-agent.service" /etc/systemd/system/krsi-agent.service
  install -d -m 0755 /etc/systemd/system/slurmd.service.d
  install -m 0644 "$src/deploy/slurmd-krsi-agent.conf" /etc/systemd/system/slurmd.service.d/slurm-krsi.conf
  install -m 0644 "$src/deploy/sys-fs-bpf-slurm\x2dkrsi.mount" '/etc/systemd/system/sys-fs-bpf-slurm\x2dkrsi.mount'
  if [ -d /run/systemd/system ]; then
    # the pins of a version from before the pins' own file system, moved aside before systemd mounts it
    "$src/deploy/move-earlier-pins.sh" /sys/fs/bpf/slurm-krsi
    systemctl daemon-reload
    if [ "$enable" = yes ]; then
      systemctl enable krsi-agent.service >/dev/null
      systemctl restart krsi-agent.service
      say "krsi-agent.service enabled and (re)started"
    fi
  fi
fi
say "installed into $prefix ($(cd "$src" && git describe --always --dirty 2>/dev/null || echo unknown))"
