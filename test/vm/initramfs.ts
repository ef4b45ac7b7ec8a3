// Builds (and caches) the test VM's initramfs: static busybox, the modules for a 9p + overlay root, and
// the /init script from init-script.ts, as a gzip'd newc cpio archive under .vm-work/. The cache key hashes
// everything that goes in, so a kernel upgrade or an edit of /init rebuilds it.
import { createHash } from 'node:crypto';
import { accessSync, constants, createWriteStream, existsSync, readdirSync, statSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';

import { INIT_SCRIPT, PID1_SCRIPT, RUN_UNIT_SCRIPT } from './init-script.js';
import { workDir } from './paths.js';

/** Bump when the archive layout changes in a way the inputs do not show. */
const LAYOUT_VERSION = 1;

/** Modules the /init needs before it can mount the root (dependencies are resolved by modprobe). */
export const ROOT_MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'overlay'] as const;

export const BUSYBOX = '/bin/busybox';
export const QEMU = 'qemu-system-x86_64';

export interface Kernel {
  version: string;
  image: string;
  modulesDir: string;
}

export class HarnessError extends Error {
  override name = 'HarnessError';
}

/** Kernel versions (like 6.1.0-56-amd64) that have both an image in /boot and a modules folder. */
export function installedKernels(): string[] {
  let names: string[];
  try {
    names = readdirSync('/boot');
  } catch {
    return [];
  }
  return names
    .filter((n) => /^vmlinuz-.+-amd64$/.test(n))
    .map((n) => n.slice('vmlinuz-'.length))
    .filter((v) => existsSync(join('/lib/modules', v, 'modules.dep')))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));
}

/** The kernel to boot: the named version, or the newest installed amd64 kernel. */
export function findKernel(version?: string): Kernel {
  const kernels = installedKernels();
  const chosen = version ?? kernels[kernels.length - 1];
  if (chosen === undefined) {
    throw new HarnessError(
      'krsi-vm: no /boot/vmlinuz-*-amd64 with modules in /lib/modules: install the Debian package linux-image-amd64',
    );
  }
  if (!kernels.includes(chosen)) {
    throw new HarnessError(
      `krsi-vm: kernel ${chosen} is not installed (have: ${kernels.join(', ') || 'none'}); install linux-image-${chosen}`,
    );
  }
  return { version: chosen, image: `/boot/vmlinuz-${chosen}`, modulesDir: `/lib/modules/${chosen}` };
}

function onPath(command: string): boolean {
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(':')) {
    if (dir === '') continue;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      // keep looking
    }
  }
  return false;
}

/**
 * Checks that everything the VM needs is installed and throws one HarnessError listing what is missing,
 * with the Debian package that provides each piece.
 */
export async function checkPrerequisites(kernelVersion?: string): Promise<Kernel> {
  const missing: string[] = [];
  if (!onPath(QEMU)) missing.push(`${QEMU} (Debian package qemu-system-x86)`);
  if (!existsSync(BUSYBOX)) {
    missing.push(`${BUSYBOX} (Debian package busybox-static)`);
  } else {
    const { stdout } = await execa('file', ['-b', BUSYBOX], { reject: false });
    // `file` may be absent; only a positive "dynamically linked" is a reason to refuse
    if (/dynamically linked/.test(stdout)) {
      missing.push(`a static ${BUSYBOX} (Debian package busybox-static, not busybox)`);
    }
  }
  if (!onPath('cpio')) missing.push('cpio (Debian package cpio)');
  if (!onPath('gzip')) missing.push('gzip (Debian package gzip)');
  if (!existsSync('/usr/sbin/modprobe') && !existsSync('/sbin/modprobe')) {
    missing.push('modprobe (Debian package kmod)');
  }
  let kernel: Kernel | undefined;
  try {
    kernel = findKernel(kernelVersion);
  } catch (err) {
    missing.push((err as Error).message.replace(/^krsi-vm: /, ''));
  }
  if (missing.length > 0 || kernel === undefined) {
    throw new HarnessError(`krsi-vm: cannot run the test VM, missing:\n  - ${missing.join('\n  - ')}`);
  }
  return kernel;
}

/** Module files (absolute paths) in load order, for the given modules and all their dependencies. */
export async function moduleLoadOrder(kernel: Kernel, modules: readonly string[]): Promise<string[]> {
  const { stdout } = await execa('modprobe', ['-S', kernel.version, '-a', '--show-depends', ...modules]);
  const order: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^insmod (\S+)/.exec(line.trim());
    // "builtin x" lines need nothing; duplicates come from shared dependencies
    if (m?.[1] !== undefined && !order.includes(m[1])) order.push(m[1]);
  }
  for (const wanted of modules) {
    const found = order.some((p) => moduleName(p) === wanted.replace(/-/g, '_'));
    const builtin = stdout.includes(`builtin ${wanted}`);
    if (!found && !builtin) throw new HarnessError(`krsi-vm: modprobe did not resolve module ${wanted} for ${kernel.version}`);
  }
  return order;
}

function moduleName(path: string): string {
  return basename(path).replace(/\.ko(\.(xz|gz|zst))?$/, '').replace(/-/g, '_');
}

function fileFingerprint(path: string): string {
  const st = statSync(path);
  return `${path}:${st.size}:${st.mtimeMs}`;
}

export interface Initramfs {
  path: string;
  kernel: Kernel;
  /** What to pass to qemu -kernel: the uncompressed vmlinux when it could be extracted, else the bzImage. */
  bootImage: string;
  modules: string[];
  rebuilt: boolean;
}

/**
 * Returns the cached initramfs for this kernel and these inputs, building it first if needed.
 */
export async function ensureInitramfs(opts: { kernelVersion?: string; log?: (msg: string) => void } = {}): Promise<Initramfs> {
  const kernel = await checkPrerequisites(opts.kernelVersion);
  const modules = await moduleLoadOrder(kernel, ROOT_MODULES);

  const hash = createHash('sha256');
  hash.update(`layout ${LAYOUT_VERSION}\n${INIT_SCRIPT}\n${PID1_SCRIPT}\n${RUN_UNIT_SCRIPT}\n${fileFingerprint(kernel.image)}\n${fileFingerprint(BUSYBOX)}\n`);
  for (const m of modules) hash.update(`${fileFingerprint(m)}\n`);
  const key = hash.digest('hex').slice(0, 16);

  const dir = join(workDir(), 'initramfs');
  const path = join(dir, `initramfs-${kernel.version}-${key}.cpio.gz`);
  const bootImage = await ensureVmlinux(kernel, dir, opts.log);
  if (existsSync(path)) return { path, kernel, bootImage, modules, rebuilt: false };

  opts.log?.(`building ${path}`);
  await mkdir(dir, { recursive: true });
  const staging = await mkdtemp(join(dir, 'staging-'));
  const partial = `${path}.partial-${process.pid}`;
  try {
    for (const sub of ['bin', 'dev', 'proc', 'sys', 'mnt', 'newroot', 'lib/modules']) {
      await mkdir(join(staging, sub), { recursive: true });
    }
    await copyFile(BUSYBOX, join(staging, 'bin/busybox'));
    await chmod(join(staging, 'bin/busybox'), 0o755);
    await writeFile(join(staging, 'init'), INIT_SCRIPT, { mode: 0o755 });
    await writeFile(join(staging, 'pid1.sh'), PID1_SCRIPT, { mode: 0o755 });
    await writeFile(join(staging, 'run-unit.sh'), RUN_UNIT_SCRIPT, { mode: 0o755 });

    const names: string[] = [];
    for (const m of modules) {
      const name = `${moduleName(m)}.ko`;
      await copyModule(m, join(staging, 'lib/modules', name));
      names.push(name);
    }
    await writeFile(join(staging, 'modules.order'), `${names.join('\n')}\n`);

    const entries = ['.', ...(await listTree(staging, ''))].sort();
    const cpio = execa('cpio', ['--create', '--format=newc', '--quiet', '--owner=0:0'], {
      cwd: staging,
      input: `${entries.join('\n')}\n`,
      buffer: false,
      stdout: 'pipe',
    });
    const gzip = execa('gzip', ['-6', '-n'], { stdin: 'pipe', buffer: false });
    cpio.stdout.pipe(gzip.stdin);
    await Promise.all([cpio, gzip, pipeline(gzip.stdout, createWriteStream(partial))]);
    await rename(partial, path);
  } finally {
    await rm(staging, { recursive: true, force: true });
    await rm(partial, { force: true });
  }
  // drop archives built from older inputs
  for (const old of await readdir(dir)) {
    if (/^initramfs-.*\.cpio\.gz$/.test(old) && join(dir, old) !== path) await rm(join(dir, old), { force: true });
  }
  return { path, kernel, bootImage, modules, rebuilt: true };
}

async function listTree(root: string, rel: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(root, rel), { withFileTypes: true })) {
    const p = rel === '' ? entry.name : `${rel}/${entry.name}`;
    out.push(p);
    if (entry.isDirectory()) out.push(...(await listTree(root, p)));
  }
  return out;
}

/** Copies a module, decompressing it: busybox insmod does not load compressed modules. */
async function copyModule(src: string, dest: string): Promise<void> {
  const decompressors: Record<string, string[]> = {
    '.ko.xz': ['xz', '-dc'],
    '.ko.zst': ['zstd', '-dcq'],
    '.ko.gz': ['gzip', '-dc'],
  };
  for (const [suffix, command] of Object.entries(decompressors)) {
    if (!src.endsWith(suffix)) continue;
    const [bin, ...args] = command as [string, ...string[]];
    await execa(bin, [...args, src], { stdout: { file: dest } });
    return;
  }
  await copyFile(src, dest);
}

const COMPRESSED_KERNEL_FORMATS = [
  { magic: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), command: ['xz', '-dc', '--single-stream'] },
  { magic: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), command: ['zstd', '-dcq'] },
  { magic: Buffer.from([0x1f, 0x8b, 0x08]), command: ['gzip', '-dc'] },
] as const;

/**
 * The kernel as an uncompressed ELF vmlinux, cached beside the initramfs. Under software emulation the
 * bzImage's self-decompression costs about 3.5 s of every boot; qemu boots a vmlinux that carries a PVH
 * note (CONFIG_PVH=y, as in Debian) directly. Falls back to the bzImage when extraction fails.
 */
async function ensureVmlinux(kernel: Kernel, dir: string, log?: (msg: string) => void): Promise<string> {
  const key = createHash('sha256').update(fileFingerprint(kernel.image)).digest('hex').slice(0, 16);
  const path = join(dir, `vmlinux-${kernel.version}-${key}`);
  if (existsSync(path)) return path;
  await mkdir(dir, { recursive: true });
  const image = await readFile(kernel.image);
  const partial = `${path}.partial-${process.pid}`;
  try {
    for (const { magic, command } of COMPRESSED_KERNEL_FORMATS) {
      const at = image.indexOf(magic);
      if (at < 0) continue;
      const [bin, ...args] = command;
      // trailing bytes after the stream make some decompressors complain: judge by the output instead
      await execa(bin, args, { input: image.subarray(at), stdout: { file: partial }, reject: false, encoding: 'buffer' });
      if (await isPvhElf(partial)) {
        await rename(partial, path);
        for (const old of await readdir(dir)) {
          if (old.startsWith(`vmlinux-${kernel.version}-`) && join(dir, old) !== path) await rm(join(dir, old), { force: true });
        }
        log?.(`extracted ${path}`);
        return path;
      }
    }
  } finally {
    await rm(partial, { force: true });
  }
  log?.(`cannot extract a PVH vmlinux from ${kernel.image}; booting the compressed image (slower)`);
  return kernel.image;
}

/** An ELF file with the PVH entry note, which lets qemu boot it without the bzImage decompressor. */
async function isPvhElf(path: string): Promise<boolean> {
  if (!existsSync(path)) return false;
  const elf = await readFile(path);
  if (elf.subarray(0, 4).toString('latin1') !== '\x7fELF') return false;
  // an ELF note: namesz 4, descsz, type XEN_ELFNOTE_PHYS32_ENTRY (18), name "Xen\0"
  const tail = Buffer.from([0x12, 0, 0, 0, 0x58, 0x65, 0x6e, 0x00]);
  for (let at = elf.indexOf(tail); at >= 8; at = elf.indexOf(tail, at + 1)) {
    if (elf.readUInt32LE(at - 8) === 4) return true;
  }
  return false;
}
