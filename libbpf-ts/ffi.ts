// koffi declarations of the libbpf and libc functions libbpf-ts uses. Loaded lazily, on first use, so that
// importing libbpf-ts on a machine without libbpf (or without koffi's native binary) only fails when a
// function is actually called, with an error that says what is missing.
import { createRequire } from 'node:module';
import type koffiDefault from 'koffi';
import type { KoffiFunc, LibraryHandle, TypeObject } from 'koffi';
import { onLibbpfPrint } from './log.js';

export type Koffi = typeof koffiDefault;

/** A native pointer as koffi 3 represents it. NULL comes back as `null`. */
export type Ptr = bigint;

/** The soname opened by default; `LIBBPF_TS_LIBRARY` overrides it (a path or another soname). */
export const DEFAULT_LIBBPF = 'libbpf.so.1';

export interface Native {
  readonly koffi: Koffi;
  readonly sampleFnType: TypeObject;

  // libbpf: library
  libbpf_strerror(err: number, buf: Buffer, size: number): number;
  libbpf_num_possible_cpus(): number;

  // libbpf: objects and programs
  bpf_object__open_file(path: string, opts: null): Ptr | null;
  bpf_object__load(obj: Ptr): number;
  bpf_object__close(obj: Ptr): void;
  bpf_object__name(obj: Ptr): string;
  bpf_object__next_program(obj: Ptr, prev: Ptr | null): Ptr | null;
  bpf_object__next_map(obj: Ptr, prev: Ptr | null): Ptr | null;
  bpf_object__find_program_by_name(obj: Ptr, name: string): Ptr | null;
  bpf_object__find_map_by_name(obj: Ptr, name: string): Ptr | null;
  bpf_program__name(prog: Ptr): string;
  bpf_program__section_name(prog: Ptr): string;
  bpf_program__fd(prog: Ptr): number;
  bpf_program__type(prog: Ptr): number;
  bpf_program__autoload(prog: Ptr): boolean;
  bpf_program__set_autoload(prog: Ptr, autoload: boolean): number;
  bpf_program__attach(prog: Ptr): Ptr | null;

  // libbpf: links
  bpf_link__open(path: string): Ptr | null;
  bpf_link__pin(link: Ptr, path: string): number;
  bpf_link__unpin(link: Ptr): number;
  bpf_link__pin_path(link: Ptr): string | null;
  bpf_link__fd(link: Ptr): number;
  bpf_link__disconnect(link: Ptr): void;
  bpf_link__destroy(link: Ptr): number;
  bpf_iter_create(linkFd: number): number;

  // libbpf: maps of an object
  bpf_map__name(map: Ptr): string;
  bpf_map__type(map: Ptr): number;
  bpf_map__key_size(map: Ptr): number;
  bpf_map__value_size(map: Ptr): number;
  bpf_map__max_entries(map: Ptr): number;
  bpf_map__fd(map: Ptr): number;
  bpf_map__set_max_entries(map: Ptr, maxEntries: number): number;
  bpf_map__set_pin_path(map: Ptr, path: string | null): number;
  bpf_map__pin_path(map: Ptr): string | null;
  bpf_map__is_pinned(map: Ptr): boolean;
  bpf_map__reuse_fd(map: Ptr, fd: number): number;
  bpf_map__initial_value(map: Ptr, size: [number]): Ptr | null;

  // libbpf: low-level syscall wrappers (1.x: return -errno on failure)
  bpf_obj_get(path: string): number;
  bpf_obj_pin(fd: number, path: string): number;
  bpf_obj_get_info_by_fd(fd: number, info: Buffer, infoLen: number[]): number;
  bpf_prog_get_fd_by_id(id: number): number;
  bpf_map_lookup_elem(fd: number, key: Buffer, value: Buffer): number;
  bpf_map_update_elem(fd: number, key: Buffer, value: Buffer, flags: number): number;
  bpf_map_delete_elem(fd: number, key: Buffer): number;
  bpf_map_get_next_key(fd: number, key: Buffer | null, nextKey: Buffer): number;

  // libbpf: ring buffers
  ring_buffer__new(mapFd: number, sampleCb: Ptr, ctx: null, opts: null): Ptr | null;
  ring_buffer__consume(rb: Ptr): number;
  ring_buffer__epoll_fd(rb: Ptr): number;
  ring_buffer__free(rb: Ptr): void;

  // libc
  close(fd: number): number;
  eventfd(initval: number, flags: number): number;
  epoll_create1(flags: number): number;
  write(fd: number, buf: Buffer, count: number): number;
  epoll_ctl(epfd: number, op: number, fd: number, event: Buffer): number;
  epoll_wait: KoffiFunc<(epfd: number, events: Ptr, maxevents: number, timeoutMs: number) => number>;
  mmap(addr: null, length: number, prot: number, flags: number, fd: number, offset: number): Ptr | null;
  munmap(addr: Ptr, length: number): number;
  getpagesize(): number;
}

let native: Native | null = null;
let loadError: Error | null = null;

// the libbpf_set_print callback: registered once and kept for the life of the process, because libbpf keeps
// calling the pointer it was given
let printCallback: Ptr | null = null;

/** The loaded bindings; loads koffi, libbpf and libc on first call. Throws a clear error if it cannot. */
export function getNative(): Native {
  if (native) return native;
  if (loadError) throw loadError;
  try {
    native = load();
    return native;
  } catch (err) {
    loadError = err instanceof Error ? err : new Error(String(err));
    throw loadError;
  }
}

/** Load koffi, libbpf and libc now (instead of on first use), to fail early when they are missing. */
export function loadLibbpf(): void {
  getNative();
}

function load(): Native {
  const require = createRequire(import.meta.url);
  let koffi: Koffi;
  try {
    koffi = require('koffi') as Koffi;
  } catch (err) {
    throw new Error(`libbpf-ts: cannot load koffi (is its native binary installed?): ${message(err)}`, { cause: err });
  }
  const libbpfName = process.env['LIBBPF_TS_LIBRARY'] ?? DEFAULT_LIBBPF;
  let bpf: LibraryHandle;
  let libc: LibraryHandle;
  try {
    bpf = koffi.load(libbpfName);
  } catch (err) {
    throw new Error(`libbpf-ts: cannot load ${libbpfName} (install libbpf 1.x, e.g. Debian's libbpf1): ${message(err)}`, {
      cause: err,
    });
  }
  try {
    libc = koffi.load('libc.so.6');
  } catch (err) {
    throw new Error(`libbpf-ts: cannot load libc.so.6: ${message(err)}`, { cause: err });
  }

  const f = <T extends (...args: never[]) => unknown>(lib: LibraryHandle, decl: string): T => lib.func(decl) as unknown as T;

  // on x86_64 (and arm64) a va_list parameter is passed as a pointer; hand it straight to vasprintf, which
  // consumes it exactly once
  const printFnType = koffi.proto('int libbpf_ts_print_fn(int level, const char *fmt, void *args)');
  const sampleFnType = koffi.proto('int libbpf_ts_sample_fn(void *ctx, void *data, size_t size)');
  const vasprintf = f<(strp: [Ptr | null], fmt: string, args: Ptr) => number>(
    libc,
    'int vasprintf(_Out_ void **strp, const char *fmt, void *args)',
  );
  const libbpfSetPrint = f<(fn: Ptr | null) => Ptr | null>(bpf, 'void *libbpf_set_print(libbpf_ts_print_fn *fn)');

  const n: Native = {
    koffi,
    sampleFnType,
    libbpf_strerror: f(bpf, 'int libbpf_strerror(int err, _Out_ uint8_t *buf, size_t size)'),
    libbpf_num_possible_cpus: f(bpf, 'int libbpf_num_possible_cpus(void)'),

    bpf_object__open_file: f(bpf, 'void *bpf_object__open_file(const char *path, void *opts)'),
    bpf_object__load: f(bpf, 'int bpf_object__load(void *obj)'),
    bpf_object__close: f(bpf, 'void bpf_object__close(void *obj)'),
    bpf_object__name: f(bpf, 'const char *bpf_object__name(void *obj)'),
    bpf_object__next_program: f(bpf, 'void *bpf_object__next_program(void *obj, void *prev)'),
    bpf_object__next_map: f(bpf, 'void *bpf_object__next_map(void *obj, void *prev)'),
    bpf_object__find_program_by_name: f(bpf, 'void *bpf_object__find_program_by_name(void *obj, const char *name)'),
    bpf_object__find_map_by_name: f(bpf, 'void *bpf_object__find_map_by_name(void *obj, const char *name)'),
    bpf_program__name: f(bpf, 'const char *bpf_program__name(void *prog)'),
    bpf_program__section_name: f(bpf, 'const char *bpf_program__section_name(void *prog)'),
    bpf_program__fd: f(bpf, 'int bpf_program__fd(void *prog)'),
    bpf_program__type: f(bpf, 'int bpf_program__type(void *prog)'),
    bpf_program__autoload: f(bpf, 'bool bpf_program__autoload(void *prog)'),
    bpf_program__set_autoload: f(bpf, 'int bpf_program__set_autoload(void *prog, bool autoload)'),
    bpf_program__attach: f(bpf, 'void *bpf_program__attach(void *prog)'),

    bpf_link__open: f(bpf, 'void *bpf_link__open(const char *path)'),
    bpf_link__pin: f(bpf, 'int bpf_link__pin(void *link, const char *path)'),
    bpf_link__unpin: f(bpf, 'int bpf_link__unpin(void *link)'),
    bpf_link__pin_path: f(bpf, 'const char *bpf_link__pin_path(void *link)'),
    bpf_link__fd: f(bpf, 'int bpf_link__fd(void *link)'),
    bpf_link__disconnect: f(bpf, 'void bpf_link__disconnect(void *link)'),
    bpf_link__destroy: f(bpf, 'int bpf_link__destroy(void *link)'),
    bpf_iter_create: f(bpf, 'int bpf_iter_create(int link_fd)'),

    bpf_map__name: f(bpf, 'const char *bpf_map__name(void *map)'),
    bpf_map__type: f(bpf, 'int bpf_map__type(void *map)'),
    bpf_map__key_size: f(bpf, 'uint32_t bpf_map__key_size(void *map)'),
    bpf_map__value_size: f(bpf, 'uint32_t bpf_map__value_size(void *map)'),
    bpf_map__max_entries: f(bpf, 'uint32_t bpf_map__max_entries(void *map)'),
    bpf_map__fd: f(bpf, 'int bpf_map__fd(void *map)'),
    bpf_map__set_max_entries: f(bpf, 'int bpf_map__set_max_entries(void *map, uint32_t max_entries)'),
    bpf_map__set_pin_path: f(bpf, 'int bpf_map__set_pin_path(void *map, const char *path)'),
    bpf_map__pin_path: f(bpf, 'const char *bpf_map__pin_path(void *map)'),
    bpf_map__is_pinned: f(bpf, 'bool bpf_map__is_pinned(void *map)'),
    bpf_map__reuse_fd: f(bpf, 'int bpf_map__reuse_fd(void *map, int fd)'),
    bpf_map__initial_value: f(bpf, 'void *bpf_map__initial_value(void *map, _Out_ size_t *psize)'),

    bpf_obj_get: f(bpf, 'int bpf_obj_get(const char *path)'),
    bpf_obj_pin: f(bpf, 'int bpf_obj_pin(int fd, const char *path)'),
    bpf_obj_get_info_by_fd: f(bpf, 'int bpf_obj_get_info_by_fd(int fd, _Inout_ uint8_t *info, _Inout_ uint32_t *info_len)'),
    bpf_prog_get_fd_by_id: f(bpf, 'int bpf_prog_get_fd_by_id(uint32_t id)'),
    bpf_map_lookup_elem: f(bpf, 'int bpf_map_lookup_elem(int fd, const void *key, void *value)'),
    bpf_map_update_elem: f(bpf, 'int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    bpf_map_delete_elem: f(bpf, 'int bpf_map_delete_elem(int fd, const void *key)'),
    bpf_map_get_next_key: f(bpf, 'int bpf_map_get_next_key(int fd, const void *key, void *next_key)'),

    ring_buffer__new: f(bpf, 'void *ring_buffer__new(int map_fd, libbpf_ts_sample_fn *sample_cb, void *ctx, void *opts)'),
    ring_buffer__consume: f(bpf, 'int ring_buffer__consume(void *rb)'),
    ring_buffer__epoll_fd: f(bpf, 'int ring_buffer__epoll_fd(void *rb)'),
    ring_buffer__free: f(bpf, 'void ring_buffer__free(void *rb)'),

    close: f(libc, 'int close(int fd)'),
    eventfd: f(libc, 'int eventfd(unsigned int initval, int flags)'),
    epoll_create1: f(libc, 'int epoll_create1(int flags)'),
    write: f(libc, 'intptr_t write(int fd, const void *buf, size_t count)'),
    epoll_ctl: f(libc, 'int epoll_ctl(int epfd, int op, int fd, void *event)'),
    // called with .async only: it blocks a koffi worker thread, never the event loop
    epoll_wait: libc.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)') as unknown as Native['epoll_wait'],
    mmap: f(libc, 'void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)'),
    munmap: f(libc, 'int munmap(void *addr, size_t length)'),
    getpagesize: f(libc, 'int getpagesize(void)'),
  };

  printCallback = koffi.register((level: number, fmt: string | null, args: Ptr | null): number => {
    // never let an exception unwind into libbpf
    try {
      if (fmt === null) return 0;
      let text = fmt;
      if (args !== null) {
        const out: [Ptr | null] = [null];
        if (vasprintf(out, fmt, args) < 0 || out[0] === null) {
          text = `(libbpf-ts: cannot format libbpf message) ${fmt}`;
        } else {
          try {
            text = koffi.decode(out[0], 'char', -1) as string;
          } finally {
            koffi.free(out[0]);
          }
        }
      }
      onLibbpfPrint(level, text);
    } catch {
      // a broken log handler must not break libbpf
    }
    return 0;
  }, koffi.pointer(printFnType));
  libbpfSetPrint(printCallback);
  return n;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
