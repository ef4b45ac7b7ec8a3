#!/bin/bash
# The batch script of a heterogeneous job (sbatch OPTIONS0 : OPTIONS1 hetjob.sh): it runs in component 0.
# Once the test has seen both components bound (go-<jobid of component 0>), the batch step and an srun
# step in each component (--het-group) print their cgroup and try a set-uid chmod once.
# One ATTEMPT line per attempt (try.sh). Environment: KRSI_JOBS (sbatch --export).
# shellcheck source=try.sh
source "$KRSI_JOBS/try.sh"
enter_job_dir
echo "JOB $SLURM_JOB_ID het=${SLURM_HET_JOB_ID:-} components=${SLURM_JOB_ID_HET_GROUP_0:-}/${SLURM_JOB_ID_HET_GROUP_1:-}"
wait_for_go
touch batch het0 het1
try batch_chmod_suid /bin/sh -c "$(chmod_in_cgroup batch)"
try het0_chmod_suid srun --het-group=0 /bin/sh -c "$(chmod_in_cgroup het0)"
try het1_chmod_suid srun --het-group=1 /bin/sh -c "$(chmod_in_cgroup het1)"
echo DONE
