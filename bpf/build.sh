#!/usr/bin/env bash
# Build the BPF LSM object: bpf/krsi.bpf.c -> build/bpf/krsi.bpf.o (CO-RE, BTF included).
# Needs clang (>= 14) and libbpf-dev (bpf/bpf_helpers.h and friends).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/build/bpf"
mkdir -p "$out"
command -v clang >/dev/null || { echo "krsi build: clang not found (apt-get install clang llvm)" >&2; exit 1; }
[ -f /usr/include/bpf/bpf_helpers.h ] || { echo "krsi build: libbpf headers not found (apt-get install libbpf-dev)" >&2; exit 1; }
for name in krsi identity preflight; do
  clang -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_x86 \
    -I"$root/bpf" -c "$root/bpf/$name.bpf.c" -o "$out/$name.bpf.o.tmp"
  # strip DWARF but keep BTF: smaller object, same relocations
  llvm-strip -g "$out/$name.bpf.o.tmp"
  mv "$out/$name.bpf.o.tmp" "$out/$name.bpf.o"
  echo "krsi build: $out/$name.bpf.o"
done
