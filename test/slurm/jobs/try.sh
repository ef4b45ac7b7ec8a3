# shellcheck shell=bash
# Sourced by the test jobs: try NAME COMMAND ARGS... runs the command once and prints one line
#   ATTEMPT <name> rc=<exit status> <what the command printed, on one line>
try() {
  local name=$1 out rc
  shift
  out=$("$@" 2>&1 </dev/null)
  rc=$?
  printf 'ATTEMPT %s rc=%d %s\n' "$name" "$rc" "$(printf '%s' "$out" | tr '\n' ' ' | cut -c1-160)"
}
