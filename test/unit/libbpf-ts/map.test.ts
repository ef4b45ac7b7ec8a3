import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { constants } from 'node:os';
import { expect } from 'chai';
import { BpfMap, BpfObject, LibbpfError, MapType, numPossibleCpus } from '../../../libbpf-ts/index.js';
import { fixtureObject, loadFixture, makeBpffs, removeBuildDir, u32, u64, type Bpffs, type LoadedFixture } from './helpers.js';

function expectLibbpfError(fn: () => unknown, errno: number, pattern?: RegExp): LibbpfError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(LibbpfError);
    const e = err as LibbpfError;
    expect(e.errno).to.equal(errno);
    if (pattern) expect(e.message).to.match(pattern);
    return e;
  }
  throw new Error('expected a LibbpfError');
}

/** fixture.bpf.o loaded without attaching anything, with per-map setup before load. */
function loadObject(setup: (obj: BpfObject) => void = () => undefined): BpfObject {
  const obj = BpfObject.open(fixtureObject('fixture'));
  try {
    obj.program('rejected').setAutoload(false);
    setup(obj);
    obj.load();
    return obj;
  } catch (err) {
    obj.close();
    throw err;
  }
}

describe('libbpf-ts BpfMap', function () {
  this.timeout(20000);
  let fx: LoadedFixture;
  let kv: BpfMap;
  let fs: Bpffs;

  before(function () {
    fx = loadFixture();
    kv = fx.obj.map('kv');
    fs = makeBpffs();
  });

  after(function () {
    fx?.close();
    fs?.cleanup();
    removeBuildDir();
  });

  beforeEach(function () {
    for (const k of kv.keys()) kv.delete(k);
  });

  it('describes an object map before and after load', function () {
    expect(kv.name).to.equal('kv');
    expect(kv.type).to.equal(MapType.HASH);
    expect(kv.keySize).to.equal(4);
    expect(kv.valueSize).to.equal(8);
    expect(kv.maxEntries).to.equal(64);
    expect(kv.fd).to.be.greaterThan(0);
    expect(kv.isPerCpu).to.equal(false);
    expect(kv.info()).to.include({ name: 'kv', type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 64 });
    const obj = BpfObject.open(fixtureObject('fixture'));
    try {
      expect(obj.map('kv').fd).to.equal(-1);
      expect(obj.map('kv').keySize).to.equal(4);
      expect(() => obj.map('kv').lookup(u32(1))).to.throw(/'kv' has no fd yet/);
    } finally {
      obj.close();
    }
  });

  it('updates, looks up, iterates and deletes', function () {
    expect(kv.lookup(u32(1))).to.equal(null);
    kv.update(u32(1), u64(100));
    kv.update(u32(2), u64(200));
    kv.update(u32(3), u64(2n ** 64n - 1n));
    expect(kv.lookup(u32(1))?.readBigUInt64LE()).to.equal(100n);
    expect(kv.lookup(u32(3))?.readBigUInt64LE()).to.equal(2n ** 64n - 1n);
    expect(kv.keys().map((k) => k.readUInt32LE()).sort()).to.deep.equal([1, 2, 3]);
    expect(kv.entries().map(([k, v]) => [k.readUInt32LE(), v.readBigUInt64LE()]).sort()).to.deep.equal([
      [1, 100n],
      [2, 200n],
      [3, 2n ** 64n - 1n],
    ]);
    expect(kv.delete(u32(2))).to.equal(true);
    expect(kv.delete(u32(2))).to.equal(false);
    expect(kv.lookup(u32(2))).to.equal(null);
    expect(kv.keys()).to.have.length(2);
  });

  it("honours 'noexist' and 'exist'", function () {
    kv.update(u32(7), u64(1), 'noexist');
    expectLibbpfError(() => kv.update(u32(7), u64(2), 'noexist'), constants.errno.EEXIST, /bpf_map_update_elem\(map 'kv', noexist\).*errno 17/);
    kv.update(u32(7), u64(3), 'exist');
    expect(kv.lookup(u32(7))?.readBigUInt64LE()).to.equal(3n);
    expectLibbpfError(() => kv.update(u32(8), u64(4), 'exist'), constants.errno.ENOENT, /map 'kv', exist/);
  });

  it('fails when the map is full', function () {
    for (let i = 0; i < 64; i++) kv.update(u32(i), u64(i));
    expectLibbpfError(() => kv.update(u32(1000), u64(1)), constants.errno.E2BIG);
  });

  it('checks key and value sizes, naming the map', function () {
    expect(() => kv.lookup(Buffer.alloc(2))).to.throw(RangeError, /map 'kv': key is 2 bytes, the map's key size is 4/);
    expect(() => kv.update(u32(1), Buffer.alloc(4))).to.throw(RangeError, /map 'kv': value is 4 bytes, the map's value size is 8/);
    expect(() => kv.delete(Buffer.alloc(8))).to.throw(RangeError, /map 'kv'/);
  });

  it('reads and writes per-CPU values', function () {
    const drops = fx.obj.map('drops');
    const cpus = numPossibleCpus();
    expect(cpus).to.be.at.least(1);
    expect(drops.isPerCpu).to.equal(true);
    expect(() => drops.lookup(u32(0))).to.throw(TypeError, /per-CPU map: use lookupPerCpu/);
    expect(() => kv.lookupPerCpu(u32(0))).to.throw(TypeError, /not a per-CPU map/);
    drops.updatePerCpu(
      u32(0),
      Array.from({ length: cpus }, (_, i) => u64(10 + i)),
    );
    const values = drops.lookupPerCpu(u32(0));
    expect(values?.map((v) => v.readBigUInt64LE())).to.deep.equal(Array.from({ length: cpus }, (_, i) => BigInt(10 + i)));
    expect(drops.sumPerCpuU64(u32(0))).to.equal(BigInt(Array.from({ length: cpus }, (_, i) => 10 + i).reduce((a, b) => a + b)));
    expect(drops.lookupPerCpu(u32(5))).to.equal(null); // past the end of the array
    expect(drops.sumPerCpuU64(u32(5))).to.equal(0n);
    expect(() => drops.updatePerCpu(u32(0), [u64(1)].concat(cpus === 1 ? [u64(1)] : []))).to.throw(RangeError, /one per possible CPU/);
    drops.updatePerCpu(
      u32(0),
      Array.from({ length: cpus }, () => u64(0)),
    );
  });

  it('pins a map and opens the pin from its path', function () {
    const path = join(fs.dir, 'kv');
    kv.update(u32(42), u64(4242));
    kv.pin(path);
    expect(existsSync(path)).to.equal(true);
    const pinned = BpfMap.openPinned(path);
    try {
      expect(pinned).to.include({ name: 'kv', type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 64 });
      expect(pinned.fd).to.be.greaterThan(0).and.not.equal(kv.fd);
      expect(pinned.lookup(u32(42))?.readBigUInt64LE()).to.equal(4242n);
      pinned.update(u32(43), u64(1));
      expect(kv.lookup(u32(43))?.readBigUInt64LE()).to.equal(1n); // same kernel map
      expect(() => pinned.lookup(u32(1).subarray(0, 3))).to.throw(/map 'kv'/);
      expect(() => pinned.setMaxEntries(1)).to.throw(/not part of a BPF object/);
    } finally {
      pinned.close();
      kv.unpin(path);
    }
    pinned.close(); // idempotent
    expect(() => pinned.lookup(u32(42))).to.throw(/closed/);
    expect(existsSync(path)).to.equal(false);
  });

  it('openPinned fails with ENOENT naming a missing path, and refuses a non-map', function () {
    const missing = join(fs.dir, 'nothing-here');
    expectLibbpfError(() => BpfMap.openPinned(missing), constants.errno.ENOENT, new RegExp(`bpf_obj_get\\(${missing}\\)`));
    const linkPath = join(fs.dir, 'a-link');
    fx.link.pin(linkPath);
    try {
      expect(() => BpfMap.openPinned(linkPath)).to.throw(/not a BPF map/);
    } finally {
      fx.link.unpin();
    }
  });

  it('setPinPath pins the map on load, and a second object reuses the pinned map', function () {
    const path = join(fs.dir, 'shared-kv');
    const a = loadObject((o) => o.map('kv').setPinPath(path));
    try {
      expect(a.map('kv').pinPath).to.equal(path);
      expect(existsSync(path)).to.equal(true);
      a.map('kv').update(u32(5), u64(55));
      const b = loadObject((o) => o.map('kv').setPinPath(path));
      try {
        expect(b.map('kv').lookup(u32(5))?.readBigUInt64LE()).to.equal(55n);
        expect(b.map('kv').info().id).to.equal(a.map('kv').info().id);
      } finally {
        b.close();
      }
    } finally {
      a.close();
      kv.unpin(path);
    }
  });

  it('setMaxEntries and reuseFd take effect at load', function () {
    const a = loadObject((o) => o.map('kv').setMaxEntries(8));
    try {
      expect(a.map('kv').maxEntries).to.equal(8);
      expect(a.map('kv').info().maxEntries).to.equal(8);
      a.map('kv').update(u32(1), u64(11));
      const b = loadObject((o) => o.map('kv').reuseFd(a.map('kv').fd));
      try {
        expect(b.map('kv').lookup(u32(1))?.readBigUInt64LE()).to.equal(11n);
        expect(b.map('kv').maxEntries).to.equal(8);
      } finally {
        b.close();
      }
      expect(() => a.map('kv').setMaxEntries(4)).to.throw(LibbpfError, /bpf_map__set_max_entries\(map 'kv', 4\)/);
    } finally {
      a.close();
    }
  });

  it('refuses to use an object map after the object is closed', function () {
    const a = loadObject();
    const m = a.map('kv');
    a.close();
    expect(m.fd).to.equal(-1);
    expect(() => m.lookup(u32(1))).to.throw(/is closed/);
    m.close(); // no-op for object maps
  });
});
