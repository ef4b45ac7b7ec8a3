/**
 * The preflight on the machine the unit tests run on. Where the kernel cannot enforce (this project's
 * build machines refuse BPF LSM programs), `krsictl check` must say so in one readable message with the
 * fix, not throw a libbpf stack; where it can, it says so. The VM side is in test/kernel/smoke.spec.ts.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { fileURLToPath } from 'node:url';
import { preflight, preflightMessage } from '../../agent/enforcement/preflight.js';
import { OBJECTS } from '../../agent/paths.js';

const KRSICTL = fileURLToPath(new URL('../../agent/cli/krsictl.ts', import.meta.url));
const PREFLIGHT = fileURLToPath(new URL('../../agent/enforcement/preflight.ts', import.meta.url));

describe('preflight on this machine', () => {
  it('krsictl check explains the verdict in one message, without a stack trace', async function () {
    this.timeout(30000);
    const r = await execa('npx', ['tsx', KRSICTL, 'check', '--config', '/dev/null/none.ini'], { reject: false });
    const result = preflight({ probeObjectPath: OBJECTS.preflight });
    const out = `${r.stdout}\n${r.stderr}`;
    expect(out).to.not.match(/^\s+at .*\.(js|ts):\d+/m);
    if (result.ok) {
      expect(out).to.include('can enforce');
    } else {
      expect(r.exitCode).to.equal(1);
      expect(out).to.include('cannot enforce');
      for (const problem of result.problems) expect(out).to.include(problem.slice(0, 60));
    }
  });

  it('names each problem with its fix', () => {
    const msg = preflightMessage({ ok: false, kernel: '6.1.0', lsm: ['lockdown', 'capability'], btf: true, bpffs: true, problems: ['BPF LSM is not active (active LSMs: lockdown,capability). Add it to the kernel command line: lsm=lockdown,capability,bpf'] });
    expect(msg).to.match(/cannot enforce policies on kernel 6\.1\.0:\n {2}- BPF LSM is not active.*lsm=lockdown,capability,bpf/);
  });
});

describe('the agent\'s own OOM score', () => {
  /** oomScoreProblem() in a fresh process started through choom with the given oom_score_adj */
  async function problemAt(adj: number): Promise<string> {
    const script = `import(${JSON.stringify(PREFLIGHT)}).then((m) => console.log(JSON.stringify(m.oomScoreProblem())))`;
    const r = await execa('choom', ['-n', String(adj), '--', 'npx', 'tsx', '-e', script]);
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as string;
  }

  // lowering the value needs CAP_SYS_RESOURCE, which the unit-test machine may not grant: the VM specs start
  // every agent at -1000 (test/vm/agent-command.ts), and check the refusal with the real agent
  it('refuses a value above -1000, naming the value and the unit setting', async function () {
    this.timeout(60000);
    expect(await problemAt(500)).to.match(/oom_score_adj is 500: the agent must run with -1000.*OOMScoreAdjust=-1000/);
  });
});

