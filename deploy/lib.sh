# deploy/lib.sh - what deploy/install.sh and the package build (scripts/package.sh) share: the runtime
# tree of a built checkout and the wrappers that run it. Sourced, not run; bash.

# krsi_stage_tree SRC DEST: the runtime tree of the built checkout SRC into DEST (which must not exist):
# the compiled agent, CLI, prolog, epilog and libbpf binding, the BPF objects, package.json (the agent
# finds its own root by it) and the production dependencies exactly as npm resolved them (no network).
krsi_stage_tree() {
  local src=$1 dest=$2 dir rel
  mkdir -p "$dest/dist" "$dest/build" "$dest/node_modules"
  cp -a "$src/dist/agent" "$src/dist/prolog" "$src/dist/epilog" "$src/dist/libbpf-ts" "$dest/dist/"
  cp -a "$src/build/bpf" "$dest/build/"
  cp -a "$src/package.json" "$src/README.md" "$dest/"
  (cd "$src" && npm ls --omit=dev --all --parseable 2>/dev/null || true) | while read -r dir; do
    case "$dir" in "$src/node_modules/"*) ;; *) continue ;; esac
    rel=${dir#"$src/"}
    mkdir -p "$dest/$(dirname "$rel")"
    [ -e "$dest/$rel" ] || cp -a "$dir" "$dest/$rel"
  done
  [ -d "$dest/node_modules/koffi" ] && [ -d "$dest/node_modules/fastify" ] || {
    echo "slurm-krsi: production dependencies missing in $dest after the copy (npm ls failed?)" >&2
    return 1
  }
}

# krsi_wrapper PATH NODE PREFIX SCRIPT [NODE OPTIONS]: an executable PATH that runs PREFIX/SCRIPT with
# NODE, written whole and renamed into place.
krsi_wrapper() {
  local path=$1 node=$2 prefix=$3 script=$4 options=${5:-}
  mkdir -p "$(dirname "$path")"
  printf '#!/bin/sh\n# slurm-krsi: runs %s with %s\nexec %s %s%s/%s "$@"\n' \
    "$script" "$node" "$node" "${options:+$options }" "$prefix" "$script" >"$path.tmp"
  chmod 0755 "$path.tmp"
  mv "$path.tmp" "$path"
}

# krsi_agent_node_options SRC: the V8 options the agent runs with (deploy/agent-node-options, one line).
# --max-semi-space-size=1 caps V8's young generation at 1 MiB per semi-space instead of 16, which a flood
# of events would otherwise fill; the bench starts the agent with the same options.
krsi_agent_node_options() {
  tr -s '\n' ' ' <"$1/deploy/agent-node-options" | sed 's/ *$//'
}

# krsi_wrappers ROOT NODE PREFIX SRC: the four entry points under ROOT ('' for /), each running NODE
krsi_wrappers() {
  local root=$1 node=$2 prefix=$3 src=$4
  krsi_wrapper "$root/usr/sbin/krsi-agent" "$node" "$prefix" dist/agent/main.js "$(krsi_agent_node_options "$src")"
  krsi_wrapper "$root/usr/sbin/krsictl" "$node" "$prefix" dist/agent/cli/krsictl.js
  krsi_wrapper "$root/usr/libexec/slurm-krsi/prolog" "$node" "$prefix" dist/prolog/prolog.js
  krsi_wrapper "$root/usr/libexec/slurm-krsi/epilog" "$node" "$prefix" dist/epilog/epilog.js
  # a shell script, not Node.js: it runs before every task of every job step
  install -D -m 0755 "$src/slurm/task-prolog" "$root/usr/libexec/slurm-krsi/task-prolog"
}

# krsi_man_pages ROOT SRC [gzip]: the man pages built into SRC/build/man, under ROOT/usr/share/man
krsi_man_pages() {
  local root=$1 src=$2 compress=${3:-} page dest
  for page in "$src"/build/man/*.[578]; do
    dest="$root/usr/share/man/man${page##*.}/${page##*/}"
    install -D -m 0644 "$page" "$dest"
    if [ "$compress" = gzip ]; then gzip -9nf "$dest"; fi
  done
}
