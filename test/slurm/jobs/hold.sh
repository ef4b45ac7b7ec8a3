#!/bin/bash
# A job that runs until the test creates /tmp/krsi-slurm/release-<jobid>.
echo "RUNNING $SLURM_JOB_ID uid=$(id -u) comment=${SLURM_JOB_COMMENT:-}"
while [ ! -e "/tmp/krsi-slurm/release-$SLURM_JOB_ID" ]; do sleep 0.2; done
echo RELEASED
