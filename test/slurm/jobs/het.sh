#!/bin/bash
# A heterogeneous job of two components (sbatch OPTIONS : OPTIONS), each a job of its own with its own
# job id, comment and job_<id> cgroup; the batch script runs in component 0. Once the test has seen both
# components bound (go-<jobid>), it tries a set-uid chmod in the batch step, then in an srun step of each
# component, and a connect to a denied network from component 1, printing each one's cgroup.
# One ATTEMPT line per attempt (try.sh). Environment: KRSI_JOBS, KRSI_PROBE (sbatch --export).
# shellcheck source=try.sh
source "$KRSI_JOBS/try.sh"
enter_job_dir
echo "JOB $SLURM_JOB_ID het_size=${SLURM_HET_SIZE:-} components=${SLURM_JOB_ID_HET_GROUP_0:-},${SLURM_JOB_ID_HET_GROUP_1:-}"
wait_for_go
touch batch comp0 comp1
try batch_chmod_suid /bin/sh -c "$(chmod_in_cgroup batch)"
try comp0_chmod_suid srun --het-group=0 --ntasks=1 /bin/sh -c "$(chmod_in_cgroup comp0)"
try comp1_chmod_suid srun --het-group=1 --ntasks=1 /bin/sh -c "$(chmod_in_cgroup comp1)"
try comp1_connect_denied srun --het-group=1 --ntasks=1 "$KRSI_PROBE" connect4 192.0.2.12 22 tcp
echo DONE
