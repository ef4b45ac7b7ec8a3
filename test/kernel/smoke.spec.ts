// Smoke test of the VM harness: the guest looks like what the kernel specs expect.
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import { preflight } from '../../agent/enforcement/preflight.js';
import { OBJECTS } from '../../agent/paths.js';

const sh = (cmd: string, args: string[]): string => execFileSync(cmd, args, { encoding: 'utf8' });

describe('test VM smoke', () => {
  it('has bpf in the active LSM list', () => {
    assert.ok(readFileSync('/sys/kernel/security/lsm', 'utf8').split(',').includes('bpf'));
  });

  it('exposes kernel BTF', () => {
    assert.ok(existsSync('/sys/kernel/btf/vmlinux'));
  });

  it('runs the Debian 6.1 kernel', () => {
    assert.match(sh('uname', ['-r']).trim(), /^6\.1\.\d+.*-amd64$/);
  });

  it('runs as root', () => {
    assert.equal(sh('id', ['-u']).trim(), '0');
  });

  it('can write to /tmp and the results folder', () => {
    for (const dir of ['/tmp', process.env.KRSI_RESULTS_DIR ?? '/krsi-results']) {
      const f = `${dir}/smoke-${process.pid}`;
      writeFileSync(f, 'ok');
      assert.equal(readFileSync(f, 'utf8'), 'ok');
      rmSync(f);
    }
  });

  it('passes the preflight: this kernel loads BPF LSM programs', () => {
    const result = preflight({ probeObjectPath: OBJECTS.preflight });
    assert.deepEqual(result.problems, []);
    assert.ok(result.ok);
  });

  it('has no network device but lo', () => {
    const names = [...sh('ip', ['-o', 'link', 'show']).matchAll(/^\d+: ([^:@]+)/gm)].map((m) => m[1]);
    assert.deepEqual(names, ['lo']);
  });
});
