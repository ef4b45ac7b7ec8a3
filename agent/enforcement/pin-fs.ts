/**
 * The pins' own file system. The set's maps and links are pinned on a bpffs mounted at the pin directory
 * for them alone, and that file system is kept read-only except while pins are made or opened: the VFS
 * then refuses every unlink, rename, rmdir and new pin on it (EROFS), through every mount of it in every
 * mount namespace, at no cost to anyone's file operations. The BPF programs refuse everyone but the live
 * agent and init a remount, unmount or mount over it (bpf/krsi.bpf.c, section tamper).
 *
 * Opening a pin read-write is a write access to a read-only file system too (EROFS), so pins are opened
 * inside withWritablePins(), and the descriptors stay usable after it returns.
 */
import { existsSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, statSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import { lastErrno, libc } from '../libc.js';
import { previousLayoutDir } from './generations.js';

const BPF_FS_MAGIC = 0xcafe4a11;
const MS_RDONLY = 1;
const MS_REMOUNT = 32;

interface PinFsCalls {
  mount: (source: string | null, target: string, fstype: string | null, flags: number, data: string | null) => number;
  umount2: (target: string, flags: number) => number;
}

let calls: PinFsCalls | undefined;

function getLibc(): PinFsCalls {
  if (calls) return calls;
  const { lib } = libc();
  calls = {
    mount: lib.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)') as PinFsCalls['mount'],
    umount2: lib.func('int umount2(const char *target, int flags)') as PinFsCalls['umount2'],
  };
  return calls;
}

/** a failed mount(2)/umount2(2), with errno's name (read before any other native call) */
function syscallError(what: string): NodeJS.ErrnoException {
  const { errno, code } = lastErrno();
  return Object.assign(new Error(`${what}: ${code} (errno ${errno})`), { errno, code });
}

/** a bpffs mounted at `dir` itself (not the directory of a file system mounted higher up) */
export function isPinFsMount(dir: string): boolean {
  try {
    return statfsSync(dir).type === BPF_FS_MAGIC && statSync(dir).dev !== statSync(dirname(dir)).dev;
  } catch {
    return false;
  }
}

function inInitMountNamespace(): boolean {
  try {
    return readlinkSync('/proc/self/ns/mnt') === readlinkSync('/proc/1/ns/mnt');
  } catch {
    return true; // no procfs namespace links to compare: nothing to warn about
  }
}

/**
 * Make sure the pins have their own bpffs at `dir`, mounting one if needed. The mount must be the host's:
 * one made in a service's private mount namespace ends with that process, and every pin with it. Under
 * systemd the mount unit (deploy/sys-fs-bpf-slurm\x2dkrsi.mount) mounts it before the agent starts.
 */
export function ensurePinFs(dir: string, log: (message: string) => void = () => {}): void {
  if (isPinFsMount(dir)) return;
  const inInit = inInitMountNamespace();
  if (existsSync(dir) && readdirSync(dir).length > 0) {
    // pins of a version from before the pins' own file system (0.1.0's layout): they sit on the bpffs above
    const aside = previousLayoutDir(dir);
    if (!inInit) {
      throw new Error(
        `${dir} holds pins of an earlier slurm-krsi layout but is not a bpffs of its own: move them aside first ` +
          `(mv -T ${dir} ${aside}, which keeps them attached; deploy/install.sh does it before it restarts the agent), ` +
          `then start the agent: it takes them over from there`,
      );
    }
    if (existsSync(aside)) {
      throw new Error(`${dir} holds pins of an earlier slurm-krsi layout, and ${aside} exists too: an earlier upgrade is unfinished; remove one of them`);
    }
    // a rename within their file system: every program stays attached; Enforcer retires them from there
    renameSync(dir, aside);
    log(`moved the pins of an earlier layout from ${dir} to ${aside}: they enforce until this build has taken over`);
  }
  if (!inInit) {
    throw new Error(
      `${dir} is not a mounted bpffs, and this process runs in a mount namespace of its own, where a mount would ` +
        `end with it and detach every program: mount it in the host first (mount -t bpf krsi ${dir}; the unit ` +
        `sys-fs-bpf-slurm\\x2dkrsi.mount does it at boot)`,
    );
  }
  mkdirSync(dir, { recursive: true });
  if (getLibc().mount('krsi', dir, 'bpf', 0, 'mode=0700') !== 0) throw syscallError(`mount -t bpf krsi ${dir}`);
  log(`mounted a bpffs of its own for the pins at ${dir}`);
}

function remount(dir: string, readOnly: boolean): void {
  if (getLibc().mount(null, dir, null, MS_REMOUNT | (readOnly ? MS_RDONLY : 0), null) !== 0) {
    throw syscallError(`mount -o remount,${readOnly ? 'ro' : 'rw'} ${dir}`);
  }
}

/**
 * Run `fn` with the pin file system writable, then make it read-only again (also when `fn` throws). Only
 * the live agent and init may do this while an agent is registered; anyone may while none is.
 */
export function withWritablePins<T>(dir: string, fn: () => T): T {
  remount(dir, false);
  try {
    return fn();
  } finally {
    remount(dir, true);
  }
}

/** Unmount the pin file system (every pin goes, and with its last reference each program stops) and remove its directory. */
export function removePinFs(dir: string): void {
  if (isPinFsMount(dir) && getLibc().umount2(dir, 0) !== 0) throw syscallError(`umount ${dir}`);
  rmSync(dir, { recursive: true, force: true });
}
