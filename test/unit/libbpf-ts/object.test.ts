import { existsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { constants } from 'node:os';
import { expect } from 'chai';
import { BpfLink, BpfMap, BpfObject, LibbpfError, recentLibbpfLog, setLibbpfLogHandler, type LibbpfLogLevel } from '../../../libbpf-ts/index.js';
import { fixtureConfig, fixtureObject, getppid, makeBpffs, removeBuildDir, u32, type Bpffs } from './helpers.js';

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected an exception');
}

describe('libbpf-ts BpfObject, BpfProgram and BpfLink', function () {
  this.timeout(20000);

  afterEach(function () {
    setLibbpfLogHandler(null);
  });

  after(function () {
    removeBuildDir();
  });

  it('names the path when the object file does not exist', function () {
    const path = '/nonexistent/libbpf-ts/missing.bpf.o';
    const err = catchError(() => BpfObject.open(path));
    expect(err).to.be.instanceOf(LibbpfError);
    const e = err as LibbpfError;
    expect(e.errno).to.equal(constants.errno.ENOENT);
    expect(e.op).to.equal(`bpf_object__open_file(${path})`);
    expect(e.message).to.match(/^bpf_object__open_file\(\/nonexistent\/libbpf-ts\/missing\.bpf\.o\): No such file or directory \(errno 2\)/);
    expect(e.libbpfLog.join('\n')).to.include(path);
  });

  it('lists programs and maps, and names what it cannot find', function () {
    const obj = BpfObject.open(fixtureObject('fixture'));
    try {
      expect(obj.name).to.equal('fixture');
      expect(obj.programs().map((p) => [p.name, p.sectionName])).to.deep.equal([
        ['on_getppid', 'raw_tp/sys_enter'],
        ['rejected', 'raw_tp/sys_enter'],
      ]);
      expect(obj.program('on_getppid')).to.equal(obj.programs()[0]);
      expect(obj.maps().map((m) => m.name)).to.include.members(['config', 'events', 'hits', 'drops', 'kv']);
      expect(() => obj.program('nope')).to.throw(LibbpfError, /program 'nope' in .*fixture\.bpf\.o.*programs: on_getppid, rejected/);
      expect(() => obj.map('nope')).to.throw(LibbpfError, /map 'nope' in .*maps: .*kv/);
      expect(obj.program('on_getppid').fd).to.be.lessThan(0);
      expect(obj.program('rejected').autoload).to.equal(true);
    } finally {
      obj.close();
    }
    obj.close(); // idempotent
    expect(() => obj.programs()).to.throw(/is closed/);
  });

  it('reads the initial value of the object\'s .rodata, and refuses it for a map that has none', function () {
    const obj = BpfObject.open(fixtureObject('fixture'));
    try {
      const rodata = obj.maps().find((m) => m.name.endsWith('.rodata'));
      expect(rodata, 'the .rodata map').to.not.equal(undefined);
      expect(rodata!.initialValue().toString('latin1')).to.equal('libbpf-ts fixture\0');
      expect(() => obj.map('kv').initialValue()).to.throw(LibbpfError, /bpf_map__initial_value\(map 'kv'\).*not a global-data map/);
    } finally {
      obj.close();
    }
  });

  it('reports a verifier rejection with the verifier log', function () {
    const lines: [LibbpfLogLevel, string][] = [];
    setLibbpfLogHandler((level, line) => lines.push([level, line]));
    const obj = BpfObject.open(fixtureObject('fixture'));
    try {
      obj.program('on_getppid').setAutoload(false); // only 'rejected' is loaded
      const err = catchError(() => obj.load());
      expect(err).to.be.instanceOf(LibbpfError);
      const e = err as LibbpfError;
      expect(e.op).to.match(/^bpf_object__load\(.*fixture\.bpf\.o\)$/);
      expect(e.errno).to.equal(constants.errno.EACCES);
      const log = e.libbpfLog.join('\n');
      expect(log).to.include('-- BEGIN PROG LOAD LOG --');
      expect(log).to.match(/invalid access to map value/);
      expect(e.message).to.match(/invalid access to map value/); // in the tail shown in the message
      expect(lines.some(([level, line]) => level === 'warn' && /invalid access to map value/.test(line))).to.equal(true);
      expect(recentLibbpfLog().some((l) => /invalid access to map value/.test(l.line))).to.equal(true);
      expect(() => obj.load()).to.throw(/already loaded/);
    } finally {
      obj.close();
    }
  });

  it('loads, attaches, and detaches on destroy()', function () {
    const obj = BpfObject.open(fixtureObject('fixture'));
    try {
      obj.program('rejected').setAutoload(false);
      obj.load();
      expect(obj.loaded).to.equal(true);
      expect(obj.program('on_getppid').fd).to.be.greaterThan(0);
      expect(() => obj.program('rejected').setAutoload(true)).to.throw(LibbpfError, /set_autoload/);
      obj.map('config').update(u32(0), fixtureConfig(process.pid));
      const hits = obj.map('hits');
      const link = obj.program('on_getppid').attach();
      expect(link.fd).to.be.greaterThan(0);
      getppid(7);
      expect(hits.sumPerCpuU64(u32(0))).to.equal(7n);
      link.destroy();
      link.destroy(); // idempotent
      expect(() => link.fd).to.throw(/destroyed/);
      getppid(7);
      expect(hits.sumPerCpuU64(u32(0))).to.equal(7n);
    } finally {
      obj.close();
    }
  });

  describe('pinned links', function () {
    let fs: Bpffs;
    before(function () {
      fs = makeBpffs();
    });
    after(function () {
      fs?.cleanup();
    });

    it('stay attached after destroy() and object close, until the pin is removed', function () {
      const path = join(fs.dir, 'on_getppid');
      const hitsPath = join(fs.dir, 'hits');
      const hits = (): bigint => {
        const m = BpfMap.openPinned(hitsPath);
        try {
          return m.sumPerCpuU64(u32(0));
        } finally {
          m.close();
        }
      };
      const obj = BpfObject.open(fixtureObject('fixture'));
      try {
        obj.program('rejected').setAutoload(false);
        obj.map('hits').setPinPath(hitsPath);
        obj.load();
        obj.map('config').update(u32(0), fixtureConfig(process.pid));
        const link = obj.program('on_getppid').attach();
        link.pin(path);
        expect(link.pinPath).to.equal(path);
        link.destroy();
      } finally {
        obj.close();
      }
      // the pin holds the link, the link holds the program and its maps
      getppid(5);
      expect(hits()).to.equal(5n);
      const reopened = BpfLink.openPinned(path);
      expect(reopened.fd).to.be.greaterThan(0);
      expect(reopened.pinPath).to.equal(path);
      reopened.unpin();
      expect(existsSync(path)).to.equal(false);
      getppid(5); // our fd still holds it
      expect(hits()).to.equal(10n);
      reopened.destroy(); // last reference: detached
      getppid(5);
      expect(hits()).to.equal(10n);
      unlinkSync(hitsPath);
    });

    it('openPinned names a missing path', function () {
      const missing = join(fs.dir, 'missing-link');
      const err = catchError(() => BpfLink.openPinned(missing));
      expect(err).to.be.instanceOf(LibbpfError);
      expect((err as LibbpfError).message).to.include(missing);
      expect((err as LibbpfError).errno).to.equal(constants.errno.ENOENT);
    });
  });

  it('fails to load an LSM program on a kernel that refuses them with a LibbpfError, not a crash', function () {
    const obj = BpfObject.open(fixtureObject('lsm'));
    try {
      try {
        obj.load();
      } catch (err) {
        expect(err).to.be.instanceOf(LibbpfError);
        expect((err as LibbpfError).op).to.match(/^bpf_object__load/);
        return;
      }
      // a kernel with BPF LSM enabled loads it: attaching is then also expected to work
      obj.program('allow_file_open').attach().destroy();
    } finally {
      obj.close();
    }
  });
});
