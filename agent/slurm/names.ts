/**
 * The shapes of the Slurm names the agent takes from outside (the prolog's environment, the API, the
 * notes on disk): one definition for the API's schemas and for the hooks, which must stay light (this
 * module imports nothing).
 */

/** Slurm job ids: plain `123`, array `123_4`, het `123+0`; never anything a shell or a path would interpret */
export const JOB_ID_PATTERN = '^[0-9A-Za-z_.+-]+$';
export const MAX_JOB_ID_LENGTH = 64;
export const JOB_ID = new RegExp(`^[0-9A-Za-z_.+-]{1,${MAX_JOB_ID_LENGTH}}$`);

/** a Slurm node name (SLURMD_NODENAME) as the agent accepts it: a host name */
export const NODE_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]*$';
export const MAX_NODE_NAME_LENGTH = 255;
export const NODE_NAME = new RegExp(NODE_NAME_PATTERN);

export const isNodeName = (name: string): boolean => name.length <= MAX_NODE_NAME_LENGTH && NODE_NAME.test(name);
