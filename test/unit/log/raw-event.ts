/** a raw ring-buffer record (struct krsi_event) of a fileperms creat decision, as the kernel writes it */
import { LAYOUT } from '../../../agent/enforcement/layout.js';

export function rawEvent(f: { uid: number; pid: number; comm: string; decision?: number }): Buffer {
  const F = LAYOUT.krsi_event.fields;
  const raw = Buffer.alloc(LAYOUT.krsi_event.size);
  raw.writeBigUInt64LE(5_000_000_000n, F.ts_ns[0]);
  raw.writeUInt32LE(1, F.type[0]);
  raw.writeUInt32LE(f.uid, F.uid[0]);
  raw.writeUInt32LE(1001, F.gid[0]);
  raw.writeUInt32LE(f.pid, F.pid[0]);
  raw.writeUInt32LE(f.pid, F.tid[0]);
  raw.writeUInt8(f.decision ?? 0, F.decision[0]);
  raw.write(f.comm, F.comm[0]);
  raw.write('f', F.name[0]);
  return raw;
}
