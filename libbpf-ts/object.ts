// BpfObject (struct bpf_object) and its programs (struct bpf_program). The object owns every program and
// map it contains; links made by attach() are separate and outlive close().
import { getNative, type Ptr } from './ffi.js';
import { ENOENT, lastErrno, libbpfError } from './errors.js';
import { assertOpen, type ObjectHandle } from './handle.js';
import { BpfLink } from './link.js';
import { BpfMap } from './map.js';
import { withLogCapture } from './log.js';

/** What the kernel reports about a loaded program (part of struct bpf_prog_info). */
export interface ProgInfo {
  readonly type: number;
  readonly id: number;
  readonly name: string;
  /** time spent in the program and number of runs: counted only while kernel.bpf_stats_enabled=1 */
  readonly runTimeNs: bigint;
  readonly runCnt: bigint;
}

// offsets in struct bpf_prog_info (uapi, stable): name[16] at 64, run_time_ns at 192, run_cnt at 200
const PROG_INFO_SIZE = 208;

/** struct bpf_prog_info of the program with kernel id `id` (opened by id, which needs CAP_SYS_ADMIN, then closed). */
export function progInfoById(id: number): ProgInfo {
  const n = getNative();
  const fd = n.bpf_prog_get_fd_by_id(id);
  if (fd < 0) throw libbpfError(`bpf_prog_get_fd_by_id(${id})`, fd);
  try {
    const buf = Buffer.alloc(PROG_INFO_SIZE);
    const ret = n.bpf_obj_get_info_by_fd(fd, buf, [buf.length]);
    if (ret < 0) throw libbpfError(`bpf_obj_get_info_by_fd(prog id ${id})`, ret);
    const nameEnd = buf.indexOf(0, 64);
    return {
      type: buf.readUInt32LE(0),
      id: buf.readUInt32LE(4),
      name: buf.toString('utf8', 64, nameEnd < 0 || nameEnd > 80 ? 80 : nameEnd),
      runTimeNs: buf.readBigUInt64LE(192),
      runCnt: buf.readBigUInt64LE(200),
    };
  } finally {
    n.close(fd);
  }
}

export class BpfProgram {
  readonly #owner: ObjectHandle;
  readonly #ptr: Ptr;
  readonly name: string;
  readonly sectionName: string;

  /** @internal Use BpfObject.program() or programs(). */
  constructor(owner: ObjectHandle, ptr: Ptr) {
    const n = getNative();
    this.#owner = owner;
    this.#ptr = ptr;
    this.name = n.bpf_program__name(ptr);
    this.sectionName = n.bpf_program__section_name(ptr);
  }

  /** The program's fd after load; negative before load, for programs not loaded, or after close. */
  get fd(): number {
    if (this.#owner.closed) return -1;
    return getNative().bpf_program__fd(this.#ptr);
  }

  /** enum bpf_prog_type. */
  get type(): number {
    return getNative().bpf_program__type(this.#live('type'));
  }

  get autoload(): boolean {
    return getNative().bpf_program__autoload(this.#live('autoload'));
  }

  /** Whether BpfObject.load() loads this program (default true). Only before load. */
  setAutoload(autoload: boolean): void {
    const ptr = this.#live('setAutoload');
    const ret = getNative().bpf_program__set_autoload(ptr, autoload);
    if (ret < 0) throw libbpfError(`bpf_program__set_autoload(prog '${this.name}', ${autoload})`, ret);
  }

  /**
   * Attach the loaded program where its section name says (bpf_program__attach): LSM hook, tracepoint,
   * raw tracepoint, fentry, kprobe... The returned link owns the attachment; destroy() it to detach.
   */
  attach(): BpfLink {
    const n = getNative();
    const ptr = this.#live('attach');
    return withLogCapture((log) => {
      const link = n.bpf_program__attach(ptr);
      if (link === null) throw libbpfError(`bpf_program__attach(prog '${this.name}', section '${this.sectionName}')`, lastErrno(), log);
      return new BpfLink(link, `prog '${this.name}'`);
    });
  }

  #live(what: string): Ptr {
    assertOpen(this.#owner, `BpfProgram.${what}(prog '${this.name}')`);
    return this.#ptr;
  }
}

export class BpfObject {
  readonly path: string;
  readonly #h: ObjectHandle;
  readonly #programs = new Map<Ptr, BpfProgram>();
  readonly #maps = new Map<Ptr, BpfMap>();

  private constructor(path: string, ptr: Ptr) {
    this.path = path;
    this.#h = { ptr, path, closed: false, loaded: false };
  }

  /** Open (parse, not load) a BPF ELF object file (bpf_object__open_file). */
  static open(path: string): BpfObject {
    const n = getNative();
    return withLogCapture((log) => {
      const ptr = n.bpf_object__open_file(path, null);
      if (ptr === null) throw libbpfError(`bpf_object__open_file(${path})`, lastErrno(), log);
      return new BpfObject(path, ptr);
    });
  }

  /** The object's name (from the file name unless set otherwise). */
  get name(): string {
    return getNative().bpf_object__name(this.#live('name'));
  }

  get loaded(): boolean {
    return this.#h.loaded;
  }

  get closed(): boolean {
    return this.#h.closed;
  }

  programs(): BpfProgram[] {
    const n = getNative();
    const obj = this.#live('programs');
    const out: BpfProgram[] = [];
    for (let p = n.bpf_object__next_program(obj, null); p !== null; p = n.bpf_object__next_program(obj, p)) out.push(this.#program(p));
    return out;
  }

  /** The program called `name` (its C function name); throws naming it and the programs there are. */
  program(name: string): BpfProgram {
    const obj = this.#live('program');
    const p = getNative().bpf_object__find_program_by_name(obj, name);
    if (p === null) {
      const have = this.programs().map((x) => x.name);
      throw libbpfError(`program '${name}' in ${this.path}`, -ENOENT, [], `programs: ${have.join(', ') || '(none)'}`);
    }
    return this.#program(p);
  }

  maps(): BpfMap[] {
    const n = getNative();
    const obj = this.#live('maps');
    const out: BpfMap[] = [];
    for (let m = n.bpf_object__next_map(obj, null); m !== null; m = n.bpf_object__next_map(obj, m)) out.push(this.#map(m));
    return out;
  }

  /** The map called `name` (including internal ones such as '.rodata' under libbpf's names); before or after load. */
  map(name: string): BpfMap {
    const obj = this.#live('map');
    const m = getNative().bpf_object__find_map_by_name(obj, name);
    if (m === null) {
      const have = this.maps().map((x) => x.name);
      throw libbpfError(`map '${name}' in ${this.path}`, -ENOENT, [], `maps: ${have.join(', ') || '(none)'}`);
    }
    return this.#map(m);
  }

  /**
   * Create the maps and load the programs into the kernel (bpf_object__load). On failure the LibbpfError's
   * libbpfLog holds libbpf's log, verifier output included. A failed load cannot be retried: close() the
   * object and open it again.
   */
  load(): void {
    const n = getNative();
    const obj = this.#live('load');
    if (this.#h.loaded) throw new Error(`BpfObject.load: ${this.path} was already loaded`);
    withLogCapture((log) => {
      const ret = n.bpf_object__load(obj);
      this.#h.loaded = true;
      if (ret < 0) throw libbpfError(`bpf_object__load(${this.path})`, ret, log);
    });
  }

  /**
   * Free the object (bpf_object__close): unloads its programs and closes its map fds. Links stay attached
   * until destroyed, and pinned maps and links stay in bpffs. Idempotent.
   */
  close(): void {
    if (this.#h.closed) return;
    this.#h.closed = true;
    this.#programs.clear();
    this.#maps.clear();
    getNative().bpf_object__close(this.#h.ptr);
  }

  #program(p: Ptr): BpfProgram {
    let prog = this.#programs.get(p);
    if (!prog) {
      prog = new BpfProgram(this.#h, p);
      this.#programs.set(p, prog);
    }
    return prog;
  }

  #map(m: Ptr): BpfMap {
    let map = this.#maps.get(m);
    if (!map) {
      map = new BpfMap({ kind: 'object', owner: this.#h, ptr: m });
      this.#maps.set(m, map);
    }
    return map;
  }

  #live(what: string): Ptr {
    assertOpen(this.#h, `BpfObject.${what}`);
    return this.#h.ptr;
  }
}
