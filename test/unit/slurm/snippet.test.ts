/** slurm/slurm.conf.snippet names the programs where install.sh and the packages put them (deploy/lib.sh), with a timeout above the hooks' own deadline. */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_KEYS, hookDeadlineSeconds } from '../../../agent/config/keys.js';
import { HOOK_PATHS } from '../../../agent/manual/overview.js';
import { PACKAGE_ROOT } from '../../../agent/paths.js';

const snippet = readFileSync(join(PACKAGE_ROOT, 'slurm', 'slurm.conf.snippet'), 'utf8');
const installed = readFileSync(join(PACKAGE_ROOT, 'deploy', 'lib.sh'), 'utf8');

/** the value of each slurm.conf line (comments aside) */
function settings(text: string): Map<string, string> {
  const lines = text.split('\n').filter((l) => /^[A-Za-z]+=/.test(l));
  const keys = lines.map((l) => l.slice(0, l.indexOf('=')));
  expect(new Set(keys).size, 'a key given twice').to.equal(keys.length);
  return new Map(lines.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

describe('slurm.conf.snippet', () => {
  const conf = settings(snippet);

  it('runs the prolog, epilog and TaskProlog that install.sh and the packages put on the node', () => {
    expect(conf.get('Prolog')).to.equal(HOOK_PATHS.prolog);
    expect(conf.get('Epilog')).to.equal(HOOK_PATHS.epilog);
    expect(conf.get('TaskProlog')).to.equal(HOOK_PATHS.taskProlog);
    for (const path of Object.values(HOOK_PATHS)) expect(installed, path).to.include(`"$root${path}"`);
  });

  it('gives the hooks more time than their own deadline, and the flags the reconciliation relies on', () => {
    const agentWait = AGENT_KEYS.agentWait.parse(AGENT_KEYS.agentWait.default);
    expect(Number(conf.get('PrologEpilogTimeout'))).to.be.greaterThan(hookDeadlineSeconds(agentWait));
    expect(conf.get('PrologFlags')?.split(',')).to.include.members(['Alloc', 'Contain']);
  });
});
