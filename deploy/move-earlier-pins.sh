#!/bin/bash
# move-earlier-pins.sh [PIN_DIR]: before an upgrade from a version whose pins sit straight on the bpffs of
# /sys/fs/bpf (0.1.0 and the versions before the pins' own file system), move those pins aside to
# PIN_DIR-previous, a rename on their file system that keeps every program attached and enforcing. systemd
# then mounts the pins' own file system on PIN_DIR (sys-fs-bpf-slurm\x2dkrsi.mount), which would hide them,
# and the new agent finds them in PIN_DIR-previous and retires them once its own programs enforce every job.
# Does nothing when PIN_DIR is already a mount point, empty or absent. Run by deploy/install.sh before it
# restarts the agent (and by packages' maintainer scripts).
#
# EXIT STATUS: 0 moved or nothing to move; 1 PIN_DIR-previous exists already (an unfinished upgrade: start
# krsi-agent once, which finishes it, then run this again).
set -euo pipefail
pins=${1:-/sys/fs/bpf/slurm-krsi}
aside="$pins-previous"
if [ ! -d "$pins" ] || mountpoint -q "$pins" || [ -z "$(ls -A "$pins")" ]; then
  exit 0
fi
if [ -e "$aside" ]; then
  echo "move-earlier-pins: $pins holds pins of an earlier layout and $aside exists too (an unfinished upgrade): start krsi-agent once to finish it, then try again" >&2
  exit 1
fi
mv -T "$pins" "$aside"
echo "move-earlier-pins: moved the pins of the installed version to $aside: they enforce until the new agent has taken over"
