#!/usr/bin/env bash
# Build the test probe: test/probe/krsi-probe.c -> build/probe/krsi-probe
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$root/build/probe"
cc -O2 -Wall -Werror -pthread -o "$root/build/probe/krsi-probe" "$root/test/probe/krsi-probe.c"
