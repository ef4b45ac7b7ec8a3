// Shared setup of the libbpf-ts tests: fixture objects compiled into a temp dir, a private bpffs mount,
// and getppid(2) through koffi to fire the fixture's tracepoint.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';
import { BpfObject, type BpfLink } from '../../../libbpf-ts/index.js';

const here = dirname(fileURLToPath(import.meta.url));
export const FIXTURE_DIR = resolve(here, '../../fixtures/libbpf-ts');

let buildDir: string | null = null;

/** Compile test/fixtures/libbpf-ts/<name>.bpf.c (once per process) and return the object's path. */
export function fixtureObject(name: 'fixture' | 'lsm'): string {
  buildDir ??= mkdtempSync(join(tmpdir(), 'libbpf-ts-build-'));
  const out = join(buildDir, `${name}.bpf.o`);
  try {
    readFileSync(out);
    return out;
  } catch {
    // not built yet
  }
  execFileSync(
    'clang',
    [
      '-g',
      '-O2',
      '-target',
      'bpf',
      '-D__TARGET_ARCH_x86',
      '-I/usr/include/x86_64-linux-gnu',
      '-I',
      FIXTURE_DIR,
      '-c',
      join(FIXTURE_DIR, `${name}.bpf.c`),
      '-o',
      out,
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  return out;
}

export function removeBuildDir(): void {
  if (buildDir) rmSync(buildDir, { recursive: true, force: true });
  buildDir = null;
}

export interface Bpffs {
  readonly dir: string;
  cleanup(): void;
}

/**
 * A fresh directory on a bpffs. Under /sys/fs/bpf when bpffs is mounted there; otherwise a private bpffs
 * mount on a temp dir (unmounted by cleanup), so the host's /sys/fs/bpf is left as it was.
 */
export function makeBpffs(): Bpffs {
  const mounts = readFileSync('/proc/mounts', 'utf8');
  if (/^\S+ \/sys\/fs\/bpf bpf /m.test(mounts)) {
    const dir = mkdtempSync('/sys/fs/bpf/libbpf-ts-test-');
    return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
  }
  const dir = mkdtempSync(join(tmpdir(), 'libbpf-ts-bpffs-'));
  execFileSync('mount', ['-t', 'bpf', 'bpf', dir]);
  return {
    dir,
    cleanup: () => {
      execFileSync('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const libc = koffi.load('libc.so.6');
const getppidFn = libc.func('int getppid(void)') as unknown as () => number;

/** Call getppid(2) `count` times: each call fires tp/syscalls/sys_enter_getppid once. */
export function getppid(count = 1): void {
  for (let i = 0; i < count; i++) getppidFn();
}

/** Resolve once `cond()` holds; reject after `timeoutMs`. */
export async function waitFor(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** u32 key as a 4-byte little-endian Buffer. */
export function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v);
  return b;
}

/** u64 value as an 8-byte little-endian Buffer. */
export function u64(v: bigint | number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
}

/** struct fixture_config (fixture.h). */
export function fixtureConfig(targetTgid: number, seq = 0n): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt32LE(targetTgid, 0);
  b.writeBigUInt64LE(seq, 8);
  return b;
}

export interface FixtureEvent {
  magic: number;
  tgid: number;
  pid: number;
  seq: bigint;
}

export const FIXTURE_MAGIC = 0x4b525349;
export const FIXTURE_EVENT_SIZE = 24;

/** struct fixture_event (fixture.h). */
export function decodeEvent(b: Buffer): FixtureEvent {
  return { magic: b.readUInt32LE(0), tgid: b.readUInt32LE(4), pid: b.readUInt32LE(8), seq: b.readBigUInt64LE(16) };
}

export interface LoadedFixture {
  readonly obj: BpfObject;
  readonly link: BpfLink;
  close(): void;
}

/**
 * fixture.bpf.o opened, loaded (without the 'rejected' program), attached, and reporting on this process.
 * Each call is an independent object with its own maps.
 */
export function loadFixture(): LoadedFixture {
  const obj = BpfObject.open(fixtureObject('fixture'));
  try {
    obj.program('rejected').setAutoload(false);
    obj.load();
    obj.map('config').update(u32(0), fixtureConfig(process.pid));
    const link = obj.program('on_getppid').attach();
    return {
      obj,
      link,
      close: () => {
        link.destroy();
        obj.close();
      },
    };
  } catch (err) {
    obj.close();
    throw err;
  }
}
