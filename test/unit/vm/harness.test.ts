// Pure helpers of the VM harness (test/vm/); booting the VM itself is exercised by `npm run test:vm`.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { INIT_CONTROL_DIR, INIT_SCRIPT, PID1_SCRIPT, RUN_UNIT_SCRIPT, RUN_UNIT_SCRIPT_PATH } from '../../vm/init-script.js';
import { signalFromInit } from '../../vm/init-control.js';
import { waitFor } from '../../vm/pace.js';
import { parseMochaSummary, shellQuote } from '../../vm/mocha-summary.js';
import { consoleTail, DEFAULT_LSM, kernelCommandLine, SYSTEMD_RUN_UNIT, SYSTEMD_TARGET, systemdRunUnits } from '../../vm/qemu.js';

describe('VM harness helpers', () => {
  describe('parseMochaSummary', () => {
    it('reads passing, failing and pending counts', () => {
      const out = '  suite\n    ✔ a\n\n\n  3 passing (1s)\n  2 pending\n  1 failing\n\n  1) suite\n';
      assert.deepEqual(parseMochaSummary(out), { passing: 3, failing: 1, pending: 2 });
    });

    it('strips colours and defaults missing counts to zero', () => {
      assert.deepEqual(parseMochaSummary('\u001b[32m  7 passing\u001b[0m\u001b[90m (2s)\u001b[0m\n'), {
        passing: 7,
        failing: 0,
        pending: 0,
      });
    });

    it('reports no summary when mocha never printed one', () => {
      assert.equal(parseMochaSummary('Error: No test files found\n'), undefined);
    });
  });

  describe('shellQuote', () => {
    it('survives bash unchanged', () => {
      for (const s of ["it's", 'a b', '$(rm -rf /)', '"x"\\n', '']) {
        assert.equal(execFileSync('bash', ['-c', `printf %s ${shellQuote(s)}`], { encoding: 'utf8' }), s);
      }
    });
  });

  describe('kernelCommandLine', () => {
    it('keeps bpf in the LSM list by default', () => {
      const line = kernelCommandLine({});
      assert.match(line, /(^| )console=ttyS0( |$)/);
      assert.ok(line.includes(`lsm=${DEFAULT_LSM}`));
      assert.ok(DEFAULT_LSM.split(',').includes('bpf'));
    });

    it('lets an explicit lsm= replace the default', () => {
      const line = kernelCommandLine({ kernelArgs: ['lsm=yama,apparmor'] });
      assert.equal(line.match(/lsm=/g)?.length, 1);
      assert.ok(line.endsWith('lsm=yama,apparmor'));
    });

    it('hands over to systemd, on its own target and hostname, without the host\'s fstab, only when asked', () => {
      assert.ok(!kernelCommandLine({}).includes('systemd'));
      const line = kernelCommandLine({ systemd: {} }).split(' ');
      for (const arg of ['krsi.init=systemd', `systemd.unit=${SYSTEMD_TARGET}`, 'systemd.hostname=krsi-vm', 'fstab=no']) assert.ok(line.includes(arg), arg);
    });

    it('names extra shares for /init', () => {
      const line = kernelCommandLine({ shares: [{ hostPath: '/srv', tag: 'data', mountAt: '/data', readonly: true }] });
      assert.ok(line.includes('krsi.share=data:/data:ro'));
    });
  });

  it('consoleTail keeps the last lines', () => {
    assert.equal(consoleTail('a\nb\nc\n', 2), 'b\nc');
  });

  it('the /init script parses as shell', () => {
    execFileSync('/bin/busybox', ['sh', '-n', '-c', INIT_SCRIPT]);
    execFileSync('bash', ['-n', '-c', PID1_SCRIPT]);
    execFileSync('bash', ['-n', '-c', RUN_UNIT_SCRIPT]);
  });

  it('a systemd boot\'s target pulls in the script\'s unit and the units asked for; the script\'s unit runs the run script', () => {
    const units = systemdRunUnits(['slurmd.service', 'krsi-agent.service']);
    assert.match(units[SYSTEMD_TARGET]!, new RegExp(`^Wants=${SYSTEMD_RUN_UNIT} slurmd\\.service krsi-agent\\.service$`, 'm'));
    assert.match(units[SYSTEMD_RUN_UNIT]!, new RegExp(`^ExecStart=/bin/bash ${RUN_UNIT_SCRIPT_PATH}$`, 'm'));
    assert.match(units[SYSTEMD_RUN_UNIT]!, /^Environment=KRSI_VM=1 /m);
    assert.match(RUN_UNIT_SCRIPT, /\/krsi-results\/run\.sh/);
  });

  it('PID 1 sends the signals tests ask it for, and answers a failure with kill\'s message', async function () {
    this.timeout(20_000);
    // PID 1's request loop, run here by a bash of our own in place of PID 1, on a scratch control dir
    const dir = mkdtempSync(join(tmpdir(), 'krsi-init-'));
    const body = PID1_SCRIPT.slice(PID1_SCRIPT.indexOf('serve_requests() {'), PID1_SCRIPT.indexOf('say "starting run.sh'))
      .replace(`ctl=${INIT_CONTROL_DIR}`, '');
    const init = spawn('bash', ['-c', `ctl=${shellQuote(dir)}\n${body}\ntouch "$ctl/ready"\nwhile :; do sleep 0.05; done`], { stdio: 'ignore' });
    // the victim prints the pid the signal came from: it must be the init's own, not a child's
    const victim = spawn('python3', ['-c', [
      'import signal, sys',
      'signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])',
      'print("ready", flush=True)',
      'print(signal.sigwaitinfo([signal.SIGTERM]).si_pid, flush=True)',
    ].join('\n')], { stdio: ['ignore', 'pipe', 'ignore'] });
    let said = '';
    victim.stdout.on('data', (chunk: Buffer) => (said += chunk.toString()));
    try {
      await waitFor('the stand-in PID 1 to set its trap', () => existsSync(join(dir, 'ready')));
      await waitFor('the victim to block SIGTERM', () => said.startsWith('ready'));
      const exited = new Promise((r) => victim.on('exit', (code) => r(code)));
      await signalFromInit(victim.pid!, 'TERM', dir, init.pid!);
      assert.equal(await exited, 0);
      assert.equal(said.split('\n')[1], String(init.pid), 'the signal was sent by the init process itself');
      await assert.rejects(signalFromInit(2 ** 22 + 7, 'KILL', dir, init.pid!), /could not send SIGKILL to pid 4194311: failed: .*No such process/);
    } finally {
      init.kill('SIGKILL');
      victim.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
