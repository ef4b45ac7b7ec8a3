# build-id.sh - sourced by bpf/build.sh: the compiler flags and the build id of the enforcement object
#
# The build id says what the BPF side is: "<layout>-<code>", 8 + 12 hex digits. <layout> hashes krsi.h as
# the preprocessor sees it, white space removed: every record and map value shared with user space, the
# event record included, so the same layout means the agent can read the records. <code> hashes the
# compiler's version, the flags and krsi.bpf.c with every header it includes, preprocessed without line
# markers, so that the checkout's path does not count: the same sources built by the same compiler get the
# same id. bpf/build.sh compiles the id into krsi.bpf.o (bpf_metadata_build_id, which `bpftool prog show`
# prints) and writes it to build/bpf/krsi.build-id. KRSI_BUILD_ID_SALT, when set, is hashed into <code>
# too: a build of the same sources with another id (the upgrade tests use it for the cross-build path).

KRSI_BPF_FLAGS=(-g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_x86)

# krsi_layout_id KRSI_H: the <layout> part
krsi_layout_id() {
  clang -E -P -x c "${KRSI_BPF_FLAGS[@]}" "$1" | tr -d ' \t\n' | sha256sum | cut -c1-8
}

# krsi_build_id BPF_DIR: the whole id for BPF_DIR/krsi.h and BPF_DIR/krsi.bpf.c
krsi_build_id() {
  local code
  code=$({
    clang --version | head -n1
    echo "${KRSI_BPF_FLAGS[*]}"
    echo "salt ${KRSI_BUILD_ID_SALT:-}"
    # the id itself is not known yet: an empty one stands in
    clang -E -P "${KRSI_BPF_FLAGS[@]}" -DKRSI_BUILD_ID='""' -I"$1" "$1/krsi.bpf.c"
  } | sha256sum | cut -c1-12) || return 1
  echo "$(krsi_layout_id "$1/krsi.h")-$code"
}

# krsi_compile_bpf SRC OUT [CLANG_ARG...]: one BPF object, CO-RE with BTF, DWARF stripped (smaller object,
# same relocations), written whole or not at all; bench/build.sh builds the bench's floor with it too
krsi_compile_bpf() {
  local src=$1 out=$2
  shift 2
  clang "${KRSI_BPF_FLAGS[@]}" "$@" -I"$(dirname "${BASH_SOURCE[0]}")" -c "$src" -o "$out.tmp"
  llvm-strip -g "$out.tmp"
  mv "$out.tmp" "$out"
}
