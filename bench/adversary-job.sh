#!/bin/bash
# The batch script of the adversary emulation's Slurm jobs (bench/vm/driver.ts submits it with sbatch as
# the job's user, --comment=policy:strict). It runs the attempts listed in ADV_LIST, one per line (an
# argv, words separated by single spaces), one after the other with a pause of ADV_PACE seconds between
# them; for each it appends "<index> <pid> <last line the attempt printed>" to ADV_OUT, so that the driver
# can find each attempt's events in the agent's log by process id. Every attempt is a process of the job.
# Environment (sbatch --export): ADV_LIST, ADV_PACE, ADV_OUT.
umask 022
list=$ADV_LIST pace=$ADV_PACE out=$ADV_OUT
tmp="$out.last"
i=0
echo "JOB ${SLURM_JOB_ID:-?} uid=$(id -u) comment=${SLURM_JOB_COMMENT:-}" >>"$out"
while IFS= read -r line; do
  read -r -a argv <<<"$line"
  "${argv[@]}" >"$tmp" 2>/dev/null </dev/null &
  pid=$!
  wait "$pid"
  mapfile -t printed <"$tmp"
  last=
  [ "${#printed[@]}" -gt 0 ] && last=${printed[${#printed[@]} - 1]}
  printf '%d %d %s\n' "$i" "$pid" "$last" >>"$out"
  i=$((i + 1))
  sleep "$pace"
done <"$list"
echo "DONE $i" >>"$out"
