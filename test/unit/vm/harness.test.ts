// Pure helpers of the VM harness (test/vm/); booting the VM itself is exercised by `npm run test:vm`.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

import { INIT_SCRIPT } from '../../vm/init-script.js';
import { parseMochaSummary, shellQuote } from '../../vm/mocha-summary.js';
import { consoleTail, DEFAULT_LSM, kernelCommandLine } from '../../vm/qemu.js';

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
  });
});
