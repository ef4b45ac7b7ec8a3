/**
 * ExecStart of the node setup unit (SETUP_UNIT in node.ts), at every boot of a systemd spec group, before
 * munge, slurmctld, slurmd and krsi-agent start: the persistent state bind-mounted in place, this checkout
 * where the agent's unit can see it, Slurm's configuration and users, slurm-krsi installed. Exits non-zero, saying what failed, if anything did.
 */
import { configureSystemdCluster, REPO } from '../slurm/cluster.js';
import { CLUSTER, MUNGE_KEY, installSlurmKrsi, mountCheckout, mountPersistentDirs } from './node.js';

try {
  await mountPersistentDirs();
  await mountCheckout();
  await configureSystemdCluster(CLUSTER, MUNGE_KEY);
  installSlurmKrsi(REPO);
  console.log('krsi-node-setup: node ready for its units');
} catch (err) {
  console.error(`krsi-node-setup: ${(err as Error).message}`);
  process.exitCode = 1;
}
