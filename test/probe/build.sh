#!/usr/bin/env bash
# Build the test programs: test/probe/krsi-probe.c and krsi-flood.c -> build/probe/
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$root/build/probe"
cc -O2 -Wall -Werror -pthread -o "$root/build/probe/krsi-probe" "$root/test/probe/krsi-probe.c"
cc -O2 -Wall -Werror -o "$root/build/probe/krsi-flood" "$root/test/probe/krsi-flood.c"
