#!/usr/bin/env node
/**
 * krsictl: the admin CLI of slurm-krsi.
 *
 *   krsictl check     can this node enforce? (preflight: root, BTF, BPF LSM active and accepted, bpffs)
 *
 * Exit status: 0 success, 1 the check failed, 2 usage error.
 */
import { OBJECTS } from '../paths.js';
import { preflight, preflightMessage } from '../enforcement/preflight.js';

function usage(): never {
  process.stderr.write('usage: krsictl check\n');
  process.exit(2);
}

const [command] = process.argv.slice(2);
switch (command) {
  case 'check': {
    const result = preflight({ probeObjectPath: OBJECTS.preflight });
    (result.ok ? process.stdout : process.stderr).write(`${preflightMessage(result)}\n`);
    process.exit(result.ok ? 0 : 1);
    break;
  }
  default:
    usage();
}
