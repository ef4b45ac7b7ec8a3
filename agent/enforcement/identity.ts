/**
 * File identities as the kernel sees them. The suid allowlist and the ssh client list are keyed by the
 * inode's super block s_dev and i_ino: the same numbers bprm_creds_from_file and socket_listen read.
 * stat() is not trusted for this: st_dev is the userspace encoding of dev_t (major << 8 | minor for
 * small numbers, where the kernel uses major << 20 | minor), and overlayfs and btrfs report a device
 * that is not the inode's super block at all. So the agent opens each file (O_PATH: no read permission
 * needed, nothing executed) and asks the kernel, through the task_file iterator in bpf/identity.bpf.c,
 * what it holds.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { BpfObject } from '../../libbpf-ts/index.js';
import { O_PATH, OpenTimeout, type BoundedOpener } from './bounded-open.js';
import { decodeFileIdentities, type KernelFileId } from './layout.js';

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;

export interface ResolvedFile extends KernelFileId {
  path: string;
  mode: number;
}

export interface ResolveResult {
  files: ResolvedFile[];
  /** paths that could not be opened, with the reason (missing allowlisted files are warnings, not errors) */
  missing: { path: string; reason: string }[];
}

/** Userspace st_dev (glibc/new_encode_dev) to the kernel's dev_t (MKDEV: major << 20 | minor). */
export function kernelDevFromStDev(stDev: bigint): number {
  const major = ((stDev >> 8n) & 0xfffn) | ((stDev >> 32n) & ~0xfffn);
  const minor = (stDev & 0xffn) | ((stDev >> 12n) & ~0xffn);
  return Number(((major << 20n) | minor) & 0xffffffffn);
}

function readAll(fd: number): Buffer {
  const chunks: Buffer[] = [];
  const chunk = Buffer.alloc(64 * 1024);
  for (;;) {
    const n = readSync(fd, chunk, 0, chunk.length, null);
    if (n === 0) break;
    chunks.push(Buffer.from(chunk.subarray(0, n)));
  }
  return Buffer.concat(chunks);
}

/**
 * Resolve paths (symlinks followed) to kernel identities. Only regular files are accepted: a directory
 * or device in an allowlist is a configuration mistake and is reported as missing, and so is a file
 * whose open() does not return in time (the opener's deadline: a stuck network file system). The agent
 * resolves through this; `open` is each path's open(2), which may block (tests and tools pass openSync).
 */
export async function resolveFileIdentities(
  identityObjectPath: string,
  paths: readonly string[],
  open: (path: string) => number | Promise<number>,
): Promise<ResolveResult> {
  const opened = new Map<number, string>();
  const missing: { path: string; reason: string }[] = [];
  try {
    for (const path of new Set(paths)) {
      try {
        opened.set(await open(path), path);
      } catch (err) {
        missing.push({ path, reason: err instanceof OpenTimeout ? err.message : ((err as NodeJS.ErrnoException).code ?? String(err)) });
      }
    }
    if (opened.size === 0) return { files: [], missing };
    return { files: identitiesOf(identityObjectPath, opened, missing), missing };
  } finally {
    for (const fd of opened.keys()) closeSync(fd);
  }
}

/** open(2) with O_PATH in this thread (no read permission needed, nothing executed; may block) */
export function openPath(path: string): number {
  return openSync(path, O_PATH);
}

/** the opener the agent uses: O_PATH opens bounded in time */
export function boundedOpenPath(opener: BoundedOpener): (path: string) => Promise<number> {
  return (path) => opener.open(path, O_PATH);
}

/** the kernel's identities of files this process holds open (fd -> path); odd files go to `missing` */
function identitiesOf(identityObjectPath: string, opened: Map<number, string>, missing: { path: string; reason: string }[]): ResolvedFile[] {
  let obj: BpfObject | undefined;
  let iterFd = -1;
  try {

    obj = BpfObject.open(identityObjectPath);
    obj.load();
    const link = obj.program('krsi_file_identity').attach();
    try {
      iterFd = link.createIter();
      const records = decodeFileIdentities(readAll(iterFd));
      const files: ResolvedFile[] = [];
      for (const rec of records) {
        const path = opened.get(rec.fd);
        if (path === undefined) continue;
        if ((rec.mode & S_IFMT) !== S_IFREG) {
          missing.push({ path, reason: 'not a regular file' });
          continue;
        }
        files.push({ path, dev: rec.dev, ino: rec.ino, mode: rec.mode });
      }
      return files;
    } finally {
      link.destroy();
    }
  } finally {
    if (iterFd >= 0) closeSync(iterFd);
    obj?.close();
  }
}
