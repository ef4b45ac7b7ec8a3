#!/usr/bin/env bash
# Build the benchmark workloads: bench/workloads/*.c -> build/bench/<name> (cc -O2).
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
echo "bench build: $(ls "$out" | tr '\n' ' ')"
