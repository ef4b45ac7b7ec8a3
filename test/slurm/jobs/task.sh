#!/bin/bash
# One job, or one task of a job array: prints its job ids, and once the test has seen it bound
# (go-<jobid>), tries a set-uid chmod once in its batch step, printing the step's cgroup.
# One ATTEMPT line (try.sh). Environment: KRSI_JOBS (sbatch --export).
# shellcheck source=try.sh
source "$KRSI_JOBS/try.sh"
enter_job_dir
echo "JOB $SLURM_JOB_ID array=${SLURM_ARRAY_JOB_ID:-}_${SLURM_ARRAY_TASK_ID:-} comment=${SLURM_JOB_COMMENT:-}"
wait_for_go
touch mine
try chmod_suid /bin/sh -c "$(chmod_in_cgroup mine)"
echo DONE
