#!/usr/bin/env bash
# Build the BPF objects: bpf/<name>.bpf.c -> build/bpf/<name>.bpf.o (CO-RE, BTF included), and the build id
# of the enforcement object (bpf/build-id.sh) into krsi.bpf.o and build/bpf/krsi.build-id.
# Needs clang (>= 14) and libbpf-dev (bpf/bpf_helpers.h and friends).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/build/bpf"
mkdir -p "$out"
command -v clang >/dev/null || { echo "krsi build: clang not found (apt-get install clang llvm)" >&2; exit 1; }
[ -f /usr/include/bpf/bpf_helpers.h ] || { echo "krsi build: libbpf headers not found (apt-get install libbpf-dev)" >&2; exit 1; }

# shellcheck source=build-id.sh
source "$root/bpf/build-id.sh"
build_id=$(krsi_build_id "$root/bpf")

for name in krsi identity preflight; do
  defines=()
  [ "$name" = krsi ] && defines=(-DKRSI_BUILD_ID="\"$build_id\"")
  krsi_compile_bpf "$root/bpf/$name.bpf.c" "$out/$name.bpf.o" "${defines[@]}"
  echo "krsi build: $out/$name.bpf.o"
done
echo "$build_id" >"$out/krsi.build-id.tmp"
mv "$out/krsi.build-id.tmp" "$out/krsi.build-id"
echo "krsi build: build id $build_id"
