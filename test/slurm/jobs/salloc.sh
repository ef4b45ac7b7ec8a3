#!/bin/bash
# The command of an salloc: it runs where salloc was called, outside every job cgroup. Once the test has
# seen the allocation bound (go-<jobid>), an srun step of the allocation and this shell itself each print
# their cgroup and try a set-uid chmod once. One ATTEMPT line per attempt (try.sh). Environment: KRSI_JOBS.
# shellcheck source=try.sh
source "$KRSI_JOBS/try.sh"
enter_job_dir
wait_for_go
touch step shell
try step_chmod_suid srun --ntasks=1 /bin/sh -c "$(chmod_in_cgroup step)"
try shell_chmod_suid /bin/sh -c "$(chmod_in_cgroup shell)"
echo DONE
