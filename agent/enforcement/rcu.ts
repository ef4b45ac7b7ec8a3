/**
 * Wait for an RCU grace period from user space. BPF LSM programs run inside an RCU read-side critical
 * section, so once membarrier(MEMBARRIER_CMD_GLOBAL) returns (it calls synchronize_rcu()), no program
 * that could still hold a pointer to a uid's old policy value is running. Only then may the old policy's
 * set entries go: a program that read the old value must still find the old set.
 *
 * The wait runs on a libuv worker thread (koffi async call): a grace period takes milliseconds, and the
 * agent's event loop has prologs to answer meanwhile.
 */
import koffi from 'koffi';

const SYS_MEMBARRIER = 324; // x86_64
const MEMBARRIER_CMD_GLOBAL = 1;
const FALLBACK_WAIT_MS = 50;

type Membarrier = ((nr: number, cmd: number, flags: number, cpu: number) => number | bigint) & {
  async: (nr: number, cmd: number, flags: number, cpu: number, cb: (err: unknown, rc: number | bigint) => void) => void;
};

let membarrier: Membarrier | undefined;

function fn(): Membarrier {
  // syscall(2) is variadic in C; its x86_64 implementation reads integer registers only, so a fixed
  // prototype is safe and lets koffi run it asynchronously
  membarrier ??= koffi.load('libc.so.6').func('long syscall(long nr, int cmd, unsigned int flags, int cpu)') as unknown as Membarrier;
  return membarrier;
}

export function synchronizeRcu(): Promise<void> {
  return new Promise((resolve) => {
    fn().async(SYS_MEMBARRIER, MEMBARRIER_CMD_GLOBAL, 0, 0, (err, rc) => {
      if (err || Number(rc) !== 0) {
        // nohz_full kernels refuse MEMBARRIER_CMD_GLOBAL: a grace period is far shorter than this wait
        setTimeout(resolve, FALLBACK_WAIT_MS);
      } else {
        resolve();
      }
    });
  });
}
