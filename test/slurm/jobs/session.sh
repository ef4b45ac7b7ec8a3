#!/bin/bash
# A login session of a job's user (an ssh session before pam_slurm_adopt adopts it), run with the
# directory DIR: tries a set-uid chmod outside every job cgroup, writes its pid to DIR/session.pid, waits
# until root has moved it into a job's cgroup as pam_slurm_adopt does (DIR/adopted), then tries a set-uid
# chmod and a connect to a denied network from there. One ATTEMPT line per attempt (try.sh).
# Environment: KRSI_JOBS, KRSI_PROBE.
# shellcheck source=try.sh
source "$KRSI_JOBS/try.sh"
umask 022
cd "$1" || exit 1
touch outside adopted-file
try outside_chmod_suid /bin/sh -c "$(chmod_in_cgroup outside)"
echo $$ >session.pid
while [ ! -e adopted ]; do sleep 0.2; done
try adopted_chmod_suid /bin/sh -c "$(chmod_in_cgroup adopted-file)"
try adopted_connect_denied "$KRSI_PROBE" connect4 192.0.2.13 22 tcp
echo DONE
