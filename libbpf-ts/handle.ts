// The state a BpfObject shares with the programs and maps it owns, so that they refuse to touch freed
// libbpf memory once the object is closed.
import type { Ptr } from './ffi.js';

/** @internal */
export interface ObjectHandle {
  readonly ptr: Ptr;
  readonly path: string;
  closed: boolean;
  loaded: boolean;
}

/** @internal Throws if the owning object was closed. */
export function assertOpen(h: ObjectHandle, what: string): void {
  if (h.closed) throw new Error(`${what}: its BPF object ${h.path} is closed`);
}
