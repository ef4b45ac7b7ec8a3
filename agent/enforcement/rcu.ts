/**
 * Wait for an RCU grace period from user space. BPF LSM programs run inside an RCU read-side critical
 * section, so once membarrier(MEMBARRIER_CMD_GLOBAL) returns (it calls synchronize_rcu()), no program
 * that could still hold a pointer to a uid's old policy value is running. Only then may the old policy's
 * set entries go: a program that read the old value must still find the old set.
 */
import koffi from 'koffi';

const SYS_MEMBARRIER = 324; // x86_64
const MEMBARRIER_CMD_GLOBAL = 1;
const FALLBACK_WAIT_MS = 50;

let syscall: ((...args: unknown[]) => number | bigint) | undefined;

export function synchronizeRcu(): void {
  syscall ??= koffi.load('libc.so.6').func('long syscall(long nr, ...)') as (...args: unknown[]) => number | bigint;
  const rc = Number(syscall(SYS_MEMBARRIER, 'int', MEMBARRIER_CMD_GLOBAL, 'unsigned int', 0, 'int', 0));
  if (rc !== 0) {
    // nohz_full kernels refuse MEMBARRIER_CMD_GLOBAL: a grace period is far shorter than this wait
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, FALLBACK_WAIT_MS);
  }
}
