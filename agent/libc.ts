/**
 * libc through koffi, for the system calls Node has no API for (mount(2), unix datagram sockets), loaded
 * once on first use, and errno's name after a failed call.
 */
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import type koffiDefault from 'koffi';
import type { LibraryHandle } from 'koffi';

let loaded: { koffi: typeof koffiDefault; lib: LibraryHandle } | undefined;

/** koffi and libc.so.6 */
export function libc(): { koffi: typeof koffiDefault; lib: LibraryHandle } {
  if (loaded) return loaded;
  const koffi = createRequire(import.meta.url)('koffi') as typeof koffiDefault;
  loaded = { koffi, lib: koffi.load('libc.so.6') };
  return loaded;
}

/** the errno of the last native call (read it before any other) with its name, e.g. ENOENT */
export function lastErrno(): { errno: number; code: string } {
  const errno = libc().koffi.errno();
  return { errno, code: Object.entries(constants.errno).find(([, v]) => v === errno)?.[0] ?? `errno ${errno}` };
}
