#!/usr/bin/env bash
# setup.sh: everything a fresh Debian 12 machine needs to build slurm-krsi and run its tests and demo:
# Debian packages (compiler, libbpf, the VM: qemu + Debian's kernel + busybox, Slurm for the cluster
# tests), the npm dependencies from the lockfile, and the build. Idempotent; run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  clang llvm libbpf-dev libbpf1 bpftool gcc libc6-dev make     # build: BPF objects, test probe
  qemu-system-x86 linux-image-amd64 busybox-static cpio kmod   # the VM that runs the kernel tests
  iproute2 acl e2fsprogs util-linux procps                     # used inside the VM by the tests
  libcap2-bin systemd                                          # setcap (suidexec); the VM's init in the systemd tests
  openssh-client openssh-server                                # the ssh port-forward attack
  slurmctld slurmd slurm-client munge                          # the single-node cluster
  prometheus                                                   # promtool: checks and tests the alert rules
  rpm rpmlint openssl                                          # npm run package: the RPM beside the .deb
  man-db groff-base lua5.1                                     # unit tests: man pages, slurm_krsi.lua
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "slurm-krsi setup: missing Debian packages (${missing[*]}); run this as root" >&2
    exit 1
  fi
  echo "slurm-krsi setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# the Slurm, munge and Prometheus packages start their daemons on install; the tests start their own
# inside the VM, and only promtool is used from prometheus
for unit in slurmctld slurmd munge ssh prometheus; do
  systemctl disable --now "$unit" >/dev/null 2>&1 || true
done

npm ci --no-audit --no-fund
npm run build
