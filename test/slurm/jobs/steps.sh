#!/bin/bash
# Steps of one job (docs/POLICIES.md, order of events): step 0 runs while the batch step acts, step 1
# after step 0 has ended. Once the test has seen the job bound (go-<jobid>), the batch step and each srun
# step print their cgroup and try a set-uid chmod once; step 1 also a connect to a denied network.
# One ATTEMPT line per attempt (try.sh). Environment: KRSI_JOBS, KRSI_PROBE (sbatch --export).
# shellcheck source=try.sh
source "$KRSI_JOBS/try.sh"
enter_job_dir
wait_for_go
touch batch step0 step1
# step 0 says it is up, waits until the batch step has tried, then tries itself
# shellcheck disable=SC2016 # expanded by step 0's own shell
srun --ntasks=1 /bin/bash -c 'source "$KRSI_JOBS/try.sh" && touch step0.up &&
  while [ ! -e batch.tried ]; do sleep 0.2; done && try step0_chmod_suid /bin/sh -c "$(chmod_in_cgroup step0)"' &
step0=$!
while [ ! -e step0.up ] && kill -0 "$step0" 2>/dev/null; do sleep 0.2; done
try batch_chmod_suid /bin/sh -c "$(chmod_in_cgroup batch)"
touch batch.tried
wait "$step0"
try step1_chmod_suid srun --ntasks=1 /bin/sh -c "$(chmod_in_cgroup step1)"
try step1_connect_denied srun --ntasks=1 "$KRSI_PROBE" connect4 192.0.2.12 22 tcp
echo DONE
