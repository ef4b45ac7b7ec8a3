#!/bin/bash
# Per-job scoping (docs/POLICIES.md): run by two jobs of one user side by side. Waits until the test has
# seen the job bound to its cgroup (/tmp/krsi-slurm/go-<jobid>), then tries, once each:
# - a set-uid chmod and a connect to a denied network, in the batch step and in an srun step;
# - the same from a user namespace whose map the test writes as newuidmap would (0 -> the user's uid,
#   1.. -> subordinate uids 100000..), as namespace uid 1: kernel uid 100000, a uid with no policy of its own.
# One ATTEMPT line per attempt (try.sh). Environment: KRSI_JOBS, KRSI_PROBE (sbatch --export).
# shellcheck source=try.sh
source "$KRSI_JOBS/try.sh"
enter_job_dir
W=$PWD
echo "JOB $SLURM_JOB_ID uid=$(id -u) comment=${SLURM_JOB_COMMENT:-}"
wait_for_go
touch mine step
try chmod_suid chmod u+s mine
try connect_denied "$KRSI_PROBE" connect4 192.0.2.10 22 tcp
try step_chmod_suid srun --ntasks=1 chmod u+s step
try step_connect_denied srun --ntasks=1 "$KRSI_PROBE" connect4 192.0.2.11 22 tcp

# a user namespace mapped as newuidmap maps it (the test writes the maps and makes ns-file, owned by the
# subordinate uid 100000, then the ready file); krsi-probe switches to namespace uid 1 = kernel uid 100000
try userns_chmod_suid "$KRSI_PROBE" --userns userns-chmod.pid userns-chmod.ready chmod "$W/ns-file" 4755
try userns_connect_denied "$KRSI_PROBE" --userns userns-connect.pid userns-connect.ready connect4 192.0.2.10 22 tcp
echo DONE
