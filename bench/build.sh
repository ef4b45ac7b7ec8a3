#!/usr/bin/env bash
# Build the benchmark workloads: bench/workloads/*.c -> build/bench/<name> (cc -O2), and the floor's BPF
# programs (clang, as bpf/build.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/build/bench"
mkdir -p "$out"
for src in "$root"/bench/workloads/*.c; do
  name=$(basename "$src" .c)
  static=
  [ "$name" = nop ] && static=-static
  cc -O2 -Wall -Werror $static -o "$out/$name.tmp" "$src"
  mv "$out/$name.tmp" "$out/$name"
done
# the floor's BPF programs (bench/bpf/*.bpf.c -> build/bench/<name>.bpf.o), built as bpf/build.sh builds the agent's
# shellcheck source=../bpf/build-id.sh
source "$root/bpf/build-id.sh"
for src in "$root"/bench/bpf/*.bpf.c; do
  krsi_compile_bpf "$src" "$out/$(basename "$src" .c).o"
done
echo "bench build: $(ls "$out" | tr '\n' ' ')"
