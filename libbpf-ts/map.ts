// BpfMap: one BPF map, either one of a BpfObject's maps (owned by the object) or opened from a bpffs pin
// (owning its fd). Keys and values are Buffers of exactly the map's key and value sizes.
import { readFileSync, unlinkSync } from 'node:fs';
import { getNative, type Ptr } from './ffi.js';
import { ENOENT, libbpfError, LibbpfError } from './errors.js';
import { assertOpen, type ObjectHandle } from './handle.js';
import { withLogCapture } from './log.js';

/** Map type numbers (enum bpf_map_type) of the types libbpf-ts users are likely to meet. */
export const MapType = {
  HASH: 1,
  ARRAY: 2,
  PROG_ARRAY: 3,
  PERF_EVENT_ARRAY: 4,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  STACK_TRACE: 7,
  CGROUP_ARRAY: 8,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  LPM_TRIE: 11,
  ARRAY_OF_MAPS: 12,
  HASH_OF_MAPS: 13,
  PERCPU_CGROUP_STORAGE: 21,
  QUEUE: 22,
  STACK: 23,
  SK_STORAGE: 24,
  INODE_STORAGE: 28,
  RINGBUF: 27,
  TASK_STORAGE: 29,
} as const;

const PER_CPU_TYPES: ReadonlySet<number> = new Set([
  MapType.PERCPU_HASH,
  MapType.PERCPU_ARRAY,
  MapType.LRU_PERCPU_HASH,
  MapType.PERCPU_CGROUP_STORAGE,
]);

/** Update flags: BPF_ANY, BPF_NOEXIST (fails with EEXIST), BPF_EXIST (fails with ENOENT). */
export type UpdateFlag = 'any' | 'noexist' | 'exist';
const UPDATE_FLAGS: Record<UpdateFlag, number> = { any: 0, noexist: 1, exist: 2 };

/** What the kernel reports about a map (struct bpf_map_info). */
export interface MapInfo {
  readonly type: number;
  readonly id: number;
  readonly keySize: number;
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly flags: number;
  readonly name: string;
  readonly mapExtra: bigint;
}

// sizeof(struct bpf_map_info) in the uapi of 5.16+; older kernels fill less and report the length they used
const MAP_INFO_SIZE = 88;

let possibleCpus: number | null = null;

/** Number of possible CPUs (libbpf_num_possible_cpus): the slot count of per-CPU map values. */
export function numPossibleCpus(): number {
  if (possibleCpus !== null) return possibleCpus;
  const ret = getNative().libbpf_num_possible_cpus();
  if (ret <= 0) throw libbpfError('libbpf_num_possible_cpus', ret);
  possibleCpus = ret;
  return ret;
}

/** struct bpf_map_info of the map behind `fd` (bpf_obj_get_info_by_fd). */
export function mapInfoByFd(fd: number): MapInfo {
  const n = getNative();
  const buf = Buffer.alloc(MAP_INFO_SIZE);
  const len = [MAP_INFO_SIZE];
  const ret = n.bpf_obj_get_info_by_fd(fd, buf, len);
  if (ret < 0) throw libbpfError(`bpf_obj_get_info_by_fd(fd ${fd})`, ret);
  const nameEnd = buf.indexOf(0, 24);
  return {
    type: buf.readUInt32LE(0),
    id: buf.readUInt32LE(4),
    keySize: buf.readUInt32LE(8),
    valueSize: buf.readUInt32LE(12),
    maxEntries: buf.readUInt32LE(16),
    flags: buf.readUInt32LE(20),
    name: buf.toString('utf8', 24, nameEnd < 0 || nameEnd > 40 ? 40 : nameEnd),
    mapExtra: (len[0] ?? 0) >= 88 ? buf.readBigUInt64LE(80) : 0n,
  };
}

type MapSource =
  | { readonly kind: 'object'; readonly owner: ObjectHandle; readonly ptr: Ptr }
  | { readonly kind: 'fd'; fd: number; readonly info: MapInfo; readonly origin: string };

export class BpfMap {
  readonly #src: MapSource;

  /** @internal Use BpfObject.map() or BpfMap.openPinned(). */
  constructor(src: MapSource) {
    this.#src = src;
  }

  /**
   * Open a map pinned in bpffs (bpf_obj_get) and learn its type and sizes from the kernel. The returned map
   * owns its fd: close() it.
   */
  static openPinned(path: string): BpfMap {
    const n = getNative();
    const fd = withLogCapture((log) => {
      const ret = n.bpf_obj_get(path);
      if (ret < 0) throw libbpfError(`bpf_obj_get(${path})`, ret, log);
      return ret;
    });
    try {
      let fdinfo = '';
      try {
        fdinfo = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
      } catch {
        // no procfs: trust the pin
      }
      if (fdinfo !== '' && !/^map_type:/m.test(fdinfo)) throw new Error(`BpfMap.openPinned(${path}): not a BPF map`);
      return new BpfMap({ kind: 'fd', fd, info: mapInfoByFd(fd), origin: path });
    } catch (err) {
      n.close(fd);
      throw err;
    }
  }

  // --- what the map is ---

  get name(): string {
    const s = this.#src;
    if (s.kind === 'fd') return s.info.name;
    assertOpen(s.owner, 'BpfMap.name');
    return getNative().bpf_map__name(s.ptr);
  }

  get type(): number {
    const s = this.#src;
    if (s.kind === 'fd') return s.info.type;
    return getNative().bpf_map__type(this.#objPtr('type'));
  }

  get keySize(): number {
    const s = this.#src;
    if (s.kind === 'fd') return s.info.keySize;
    return getNative().bpf_map__key_size(this.#objPtr('keySize'));
  }

  get valueSize(): number {
    const s = this.#src;
    if (s.kind === 'fd') return s.info.valueSize;
    return getNative().bpf_map__value_size(this.#objPtr('valueSize'));
  }

  get maxEntries(): number {
    const s = this.#src;
    if (s.kind === 'fd') return s.info.maxEntries;
    return getNative().bpf_map__max_entries(this.#objPtr('maxEntries'));
  }

  /** The map's fd, or -1 for an object's map before load (or after close). */
  get fd(): number {
    const s = this.#src;
    if (s.kind === 'fd') return s.fd;
    if (s.owner.closed) return -1;
    return getNative().bpf_map__fd(s.ptr);
  }

  get isPerCpu(): boolean {
    return PER_CPU_TYPES.has(this.type);
  }

  /** The pin path set with setPinPath() (object maps only), or null. */
  get pinPath(): string | null {
    const s = this.#src;
    if (s.kind === 'fd') return null;
    return getNative().bpf_map__pin_path(this.#objPtr('pinPath'));
  }

  /** The kernel's view of the map (needs an fd: after load for object maps). */
  info(): MapInfo {
    return mapInfoByFd(this.#fd('info'));
  }

  /**
   * A copy of the contents an object's global-data map (.rodata, .data, .bss) starts with: what the object
   * file holds, or what was set before load (bpf_map__initial_value). Object maps only.
   */
  initialValue(): Buffer {
    const n = getNative();
    const ptr = this.#objPtr('initialValue');
    const size: [number] = [0];
    const data = n.bpf_map__initial_value(ptr, size);
    if (data === null) throw libbpfError(`bpf_map__initial_value(map '${this.name}')`, 0, [], 'not a global-data map');
    return Buffer.from(n.koffi.view(data, size[0]).slice(0));
  }

  // --- configuration before BpfObject.load() ---

  setMaxEntries(maxEntries: number): void {
    const ptr = this.#objPtr('setMaxEntries');
    const ret = getNative().bpf_map__set_max_entries(ptr, maxEntries);
    if (ret < 0) throw libbpfError(`bpf_map__set_max_entries(map '${this.name}', ${maxEntries})`, ret);
  }

  /**
   * Pin path for load: if a compatible map is already pinned there, load reuses it; otherwise load creates
   * the map and pins it there. `null` clears it.
   */
  setPinPath(path: string | null): void {
    const ptr = this.#objPtr('setPinPath');
    const ret = getNative().bpf_map__set_pin_path(ptr, path);
    if (ret < 0) throw libbpfError(`bpf_map__set_pin_path(map '${this.name}', ${String(path)})`, ret);
  }

  /** Make load use the existing map behind `fd` instead of creating one (bpf_map__reuse_fd dups the fd). */
  reuseFd(fd: number): void {
    const ptr = this.#objPtr('reuseFd');
    const ret = getNative().bpf_map__reuse_fd(ptr, fd);
    if (ret < 0) throw libbpfError(`bpf_map__reuse_fd(map '${this.name}', fd ${fd})`, ret);
  }

  // --- elements ---

  /** The value at `key`, or null if there is none. Not for per-CPU maps (use lookupPerCpu). */
  lookup(key: Buffer): Buffer | null {
    const fd = this.#fd('lookup');
    this.#notPerCpu('lookup');
    this.#checkKey(key);
    const value = Buffer.alloc(this.valueSize);
    const ret = getNative().bpf_map_lookup_elem(fd, key, value);
    if (ret === 0) return value;
    if (ret === -ENOENT) return null;
    throw libbpfError(`bpf_map_lookup_elem(map '${this.name}')`, ret);
  }

  /** Set `key` to `value`. 'noexist' fails with EEXIST if the key is present, 'exist' with ENOENT if absent. */
  update(key: Buffer, value: Buffer, flags: UpdateFlag = 'any'): void {
    const fd = this.#fd('update');
    this.#notPerCpu('update');
    this.#checkKey(key);
    this.#checkValue(value, this.valueSize, 'value');
    const ret = getNative().bpf_map_update_elem(fd, key, value, UPDATE_FLAGS[flags]);
    if (ret < 0) throw libbpfError(`bpf_map_update_elem(map '${this.name}', ${flags})`, ret);
  }

  /** Delete `key`; false if it was not there. */
  delete(key: Buffer): boolean {
    const fd = this.#fd('delete');
    this.#checkKey(key);
    const ret = getNative().bpf_map_delete_elem(fd, key);
    if (ret === 0) return true;
    if (ret === -ENOENT) return false;
    throw libbpfError(`bpf_map_delete_elem(map '${this.name}')`, ret);
  }

  /**
   * Iterate over the keys (bpf_map_get_next_key). Stops after maxEntries keys, since deleting the current
   * key during iteration makes the kernel restart from the first key.
   */
  *keyIterator(): Generator<Buffer, void, undefined> {
    const fd = this.#fd('keys');
    const n = getNative();
    const size = this.keySize;
    const limit = this.maxEntries;
    let prev: Buffer | null = null;
    for (let i = 0; i < limit; i++) {
      const next = Buffer.alloc(size);
      const ret = n.bpf_map_get_next_key(fd, prev, next);
      if (ret === -ENOENT) return;
      if (ret < 0) throw libbpfError(`bpf_map_get_next_key(map '${this.name}')`, ret);
      yield next;
      prev = next;
    }
  }

  keys(): Buffer[] {
    return [...this.keyIterator()];
  }

  /** Every key with its value (values of per-CPU maps are their per-CPU slots concatenated, see lookupPerCpu). */
  entries(): [Buffer, Buffer][] {
    const out: [Buffer, Buffer][] = [];
    for (const key of this.keyIterator()) {
      const value = this.isPerCpu ? (this.lookupPerCpu(key)?.reduce((a, b) => Buffer.concat([a, b]))) : this.lookup(key);
      if (value) out.push([key, value]);
    }
    return out;
  }

  // --- per-CPU maps ---

  /**
   * The per-CPU values at `key`, one Buffer of valueSize bytes per possible CPU, or null if there is none.
   * The kernel copies roundup(valueSize, 8) bytes per CPU.
   */
  lookupPerCpu(key: Buffer): Buffer[] | null {
    const fd = this.#fd('lookupPerCpu');
    this.#perCpuOnly('lookupPerCpu');
    this.#checkKey(key);
    const size = this.valueSize;
    const stride = roundup8(size);
    const cpus = numPossibleCpus();
    const buf = Buffer.alloc(stride * cpus);
    const ret = getNative().bpf_map_lookup_elem(fd, key, buf);
    if (ret === -ENOENT) return null;
    if (ret < 0) throw libbpfError(`bpf_map_lookup_elem(map '${this.name}')`, ret);
    const out: Buffer[] = [];
    for (let cpu = 0; cpu < cpus; cpu++) out.push(Buffer.from(buf.subarray(cpu * stride, cpu * stride + size)));
    return out;
  }

  /** Set the per-CPU values at `key`: one Buffer of valueSize bytes per possible CPU. */
  updatePerCpu(key: Buffer, values: readonly Buffer[], flags: UpdateFlag = 'any'): void {
    const fd = this.#fd('updatePerCpu');
    this.#perCpuOnly('updatePerCpu');
    this.#checkKey(key);
    const size = this.valueSize;
    const stride = roundup8(size);
    const cpus = numPossibleCpus();
    if (values.length !== cpus) {
      throw new RangeError(`map '${this.name}': updatePerCpu got ${values.length} values, expected one per possible CPU (${cpus})`);
    }
    const buf = Buffer.alloc(stride * cpus);
    values.forEach((v, cpu) => {
      this.#checkValue(v, size, `value for CPU ${cpu}`);
      v.copy(buf, cpu * stride);
    });
    const ret = getNative().bpf_map_update_elem(fd, key, buf, UPDATE_FLAGS[flags]);
    if (ret < 0) throw libbpfError(`bpf_map_update_elem(map '${this.name}', ${flags})`, ret);
  }

  /**
   * Sum over CPUs of the little-endian u64 at `offset` in each per-CPU value (a per-CPU counter).
   * A missing key counts as 0.
   */
  sumPerCpuU64(key: Buffer, offset = 0): bigint {
    if (!Number.isInteger(offset) || offset < 0 || offset + 8 > this.valueSize) {
      throw new RangeError(`map '${this.name}': no u64 at offset ${offset} in a ${this.valueSize}-byte value`);
    }
    const values = this.lookupPerCpu(key);
    let sum = 0n;
    for (const v of values ?? []) sum += v.readBigUInt64LE(offset);
    return sum;
  }

  // --- pinning and lifetime ---

  /** Pin the map at `path` on a bpffs mount (bpf_obj_pin). The pin keeps the map alive after every fd closes. */
  pin(path: string): void {
    const fd = this.#fd('pin');
    withLogCapture((log) => {
      const ret = getNative().bpf_obj_pin(fd, path);
      if (ret < 0) throw libbpfError(`bpf_obj_pin(map '${this.name}' -> ${path})`, ret, log);
    });
  }

  /** Remove the pin at `path` (unlink); the map lives on while fds or programs hold it. */
  unpin(path: string): void {
    try {
      unlinkSync(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).errno;
      throw new LibbpfError(`unpin map '${this.#safeName()}' at ${path}`, code === undefined ? 0 : -code);
    }
  }

  /**
   * Close the fd of a map opened with openPinned(). Maps of a BpfObject are closed with the object: close()
   * on them does nothing. Idempotent.
   */
  close(): void {
    const s = this.#src;
    if (s.kind !== 'fd' || s.fd < 0) return;
    const fd = s.fd;
    s.fd = -1;
    getNative().close(fd);
  }

  // --- helpers ---

  #safeName(): string {
    try {
      return this.name;
    } catch {
      return this.#src.kind === 'fd' ? this.#src.origin : '?';
    }
  }

  #objPtr(what: string): Ptr {
    const s = this.#src;
    if (s.kind === 'fd') throw new Error(`BpfMap.${what}: map '${s.info.name}' (${s.origin}) is not part of a BPF object`);
    assertOpen(s.owner, `BpfMap.${what}`);
    return s.ptr;
  }

  #fd(what: string): number {
    const s = this.#src;
    if (s.kind === 'fd') {
      if (s.fd < 0) throw new Error(`BpfMap.${what}: map '${s.info.name}' (${s.origin}) is closed`);
      return s.fd;
    }
    assertOpen(s.owner, `BpfMap.${what}(map '${this.#safeName()}')`);
    const fd = getNative().bpf_map__fd(s.ptr);
    if (fd < 0) throw new Error(`BpfMap.${what}: map '${this.name}' has no fd yet (load the object first)`);
    return fd;
  }

  #checkKey(key: Buffer): void {
    if (!Buffer.isBuffer(key)) throw new TypeError(`map '${this.name}': key must be a Buffer`);
    const size = this.keySize;
    if (key.length !== size) throw new RangeError(`map '${this.name}': key is ${key.length} bytes, the map's key size is ${size}`);
  }

  #checkValue(value: Buffer, size: number, what: string): void {
    if (!Buffer.isBuffer(value)) throw new TypeError(`map '${this.name}': ${what} must be a Buffer`);
    if (value.length !== size) throw new RangeError(`map '${this.name}': ${what} is ${value.length} bytes, the map's value size is ${size}`);
  }

  #notPerCpu(what: string): void {
    if (this.isPerCpu) throw new TypeError(`map '${this.name}' is a per-CPU map: use ${what}PerCpu()`);
  }

  #perCpuOnly(what: string): void {
    if (!this.isPerCpu) throw new TypeError(`map '${this.name}' is not a per-CPU map: ${what}() needs one`);
  }
}

function roundup8(n: number): number {
  return (n + 7) & ~7;
}
