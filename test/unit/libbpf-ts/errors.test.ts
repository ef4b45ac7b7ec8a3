import { spawnSync } from 'node:child_process';
import { constants } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { LibbpfError, describeErrno, recentLibbpfLog, RECENT_LOG_LINES } from '../../../libbpf-ts/index.js';

const indexPath = resolve(dirname(fileURLToPath(import.meta.url)), '../../../libbpf-ts/index.ts');

describe('libbpf-ts errors and loading', function () {
  this.timeout(20000);

  it('formats op, libbpf_strerror text, errno and the tail of the log', function () {
    const log = [
      { level: 'debug' as const, line: 'libbpf: noise' },
      { level: 'warn' as const, line: 'libbpf: the reason' },
    ];
    const e = new LibbpfError("bpf_map_update_elem(map 'kv')", -constants.errno.E2BIG, log);
    expect(e.errno).to.equal(constants.errno.E2BIG);
    expect(e.op).to.equal("bpf_map_update_elem(map 'kv')");
    expect(e.message).to.equal(
      "bpf_map_update_elem(map 'kv'): Argument list too long (errno 7)\nlibbpf log (last 1 lines):\n  libbpf: the reason",
    );
    expect(e.libbpfLog).to.deep.equal(['libbpf: noise', 'libbpf: the reason']);
    expect(e.name).to.equal('LibbpfError');
  });

  it('knows libbpf-specific error codes', function () {
    expect(describeErrno(4003)).to.match(/endian/i); // LIBBPF_ERRNO__ENDIAN
  });

  it('keeps a bounded log of recent lines', function () {
    expect(recentLibbpfLog().length).to.be.at.most(RECENT_LOG_LINES);
  });

  it('imports without libbpf, and fails with a clear error on first use', function () {
    const script = `
      const m = await import(${JSON.stringify(indexPath)});
      console.log('imported');
      try { m.BpfObject.open('/x.o'); } catch (e) { console.log(e.message); }
    `;
    const r = spawnSync(process.execPath, ['--import', 'tsx/esm', '--input-type=module', '-e', script], {
      env: { ...process.env, LIBBPF_TS_LIBRARY: '/nonexistent/libbpf.so.1' },
      encoding: 'utf8',
      cwd: resolve(dirname(indexPath), '..'),
    });
    expect(r.stderr).to.equal('');
    expect(r.stdout).to.match(/^imported\nlibbpf-ts: cannot load \/nonexistent\/libbpf\.so\.1 \(install libbpf 1\.x/);
  });
});
