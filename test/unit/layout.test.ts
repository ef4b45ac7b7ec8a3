/**
 * The TypeScript decoders agree with the C layout: every struct in agent/enforcement/layout.ts is
 * compared, field by field (offset and size) and in total size, with the BTF that clang put in the
 * built objects, and every enum the TypeScript side mirrors is compared with its C values.
 * Needs `npm run build:bpf` first (npm test builds).
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  CIDR_VERDICTS, COUNTER_SLOTS, DECISIONS, EVENT_TYPES, FOLD_SCOPES, GUARD_KINDS, LAYOUT, MODES, POLICIES, PROTECT_SCOPES, uidBitmapSlot,
} from '../../agent/enforcement/layout.js';
import { BpfObject } from '../../libbpf-ts/index.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface BtfType {
  id: number;
  kind: string;
  name?: string;
  size?: number;
  type_id?: number;
  nr_elems?: number;
  members?: { name: string; type_id: number; bits_offset: number }[];
  values?: { name: string; val: number }[];
}

function loadBtf(object: string): Map<number, BtfType> {
  const json = execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', join(ROOT, 'build/bpf', object)], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  return new Map((JSON.parse(json) as { types: BtfType[] }).types.map((t) => [t.id, t]));
}

function sizeOf(types: Map<number, BtfType>, id: number): number {
  const t = types.get(id);
  if (!t) throw new Error(`BTF type ${id} missing`);
  switch (t.kind) {
    case 'TYPEDEF':
    case 'VOLATILE':
    case 'CONST':
      return sizeOf(types, t.type_id!);
    case 'ARRAY':
      return sizeOf(types, t.type_id!) * t.nr_elems!;
    default:
      if (t.size === undefined) throw new Error(`BTF type ${id} (${t.kind}) has no size`);
      return t.size;
  }
}

const objects = { krsi: loadBtf('krsi.bpf.o'), identity: loadBtf('identity.bpf.o') };

function findNamed(kind: string, name: string): [Map<number, BtfType>, BtfType] {
  for (const types of Object.values(objects)) {
    for (const t of types.values()) if (t.kind === kind && t.name === name) return [types, t];
  }
  throw new Error(`${kind} ${name} is not in the BTF of the built objects`);
}

describe('shared layout: TypeScript decoders vs the BTF of the built BPF objects', () => {
  for (const [struct, spec] of Object.entries(LAYOUT)) {
    it(`struct ${struct}: size and every field's offset and size`, () => {
      const [types, t] = findNamed('STRUCT', struct);
      expect(t.size, `sizeof(struct ${struct})`).to.equal(spec.size);
      const btfFields = Object.fromEntries(
        t.members!.map((m) => [m.name, [m.bits_offset / 8, sizeOf(types, m.type_id)]]),
      );
      expect(btfFields).to.deep.equal(spec.fields);
    });
  }

  const enums: [string, string, readonly string[]][] = [
    ['krsi_policy_id', 'KRSI_POLICY_', POLICIES],
    ['krsi_mode', 'KRSI_MODE_', MODES],
    ['krsi_decision', 'KRSI_DECISION_', DECISIONS],
    ['krsi_counter_slot', 'KRSI_COUNTER_', COUNTER_SLOTS],
    ['krsi_protect_scope', 'KRSI_PROTECT_', PROTECT_SCOPES],
    ['krsi_fold_scope', 'KRSI_FOLD_', FOLD_SCOPES],
  ];
  for (const [name, prefix, names] of enums) {
    it(`enum ${name} matches its TypeScript list`, () => {
      const [, t] = findNamed('ENUM', name);
      const values = t.values!.filter((v) => names.includes(v.name.slice(prefix.length).toLowerCase()));
      expect(values.map((v) => v.name.slice(prefix.length).toLowerCase())).to.deep.equal([...names]);
      values.forEach((v, i) => expect(v.val, v.name).to.equal(i));
    });
  }

  it('enum krsi_cidr_verdict matches CIDR_VERDICTS', () => {
    const [, t] = findNamed('ENUM', 'krsi_cidr_verdict');
    expect(Object.fromEntries(t.values!.map((v) => [v.name.slice('KRSI_CIDR_'.length).toLowerCase(), v.val]))).to.deep.equal(CIDR_VERDICTS);
  });

  it('enum krsi_guard_kind matches GUARD_KINDS', () => {
    const [, t] = findNamed('ENUM', 'krsi_guard_kind');
    expect(Object.fromEntries(t.values!.map((v) => [v.name.slice('KRSI_GUARD_'.length).toLowerCase(), v.val]))).to.deep.equal(GUARD_KINDS);
  });

  it('enum krsi_event_type: every value has its log name', () => {
    const logNames: Record<string, string> = {
      CREATE: 'creat', MKNOD: 'mknod', MKDIR: 'mkdir', CHMOD: 'chmod', SETACL: 'setacl', LINK: 'link',
      EXEC: 'exsuid', LISTEN: 'listen', CONNECT: 'skconn', SENDMSG: 'sksend', KILL: 'sgkill', PTRACE: 'ptrace', SIGIO: 'sigio',
      SETRLIMIT: 'rlimit', SETSCHED: 'setsched', SETNICE: 'setnice', SETIOPRIO: 'ioprio', BPF_ID: 'bpfid', BPF_MAP: 'bpfmap',
      BPF_PROG: 'bpfprog', UMOUNT: 'umount', REMOUNT: 'remount', MOUNT: 'mount', MOVE_MOUNT: 'movemount', SOCKOPT: 'skopt',
    };
    const [, t] = findNamed('ENUM', 'krsi_event_type');
    expect(t.values!.length).to.equal(Object.keys(EVENT_TYPES).length);
    for (const v of t.values!) expect(EVENT_TYPES[v.val], v.name).to.equal(logNames[v.name.slice('KRSI_EV_'.length)]);
  });

  it('uid_bits: an array of u64 words, a power of two of them, indexed as uidBitmapSlot computes', () => {
    const obj = BpfObject.open(join(ROOT, 'build/bpf/krsi.bpf.o'));
    try {
      const bits = obj.map('uid_bits');
      expect(bits.valueSize).to.equal(8);
      expect(bits.keySize).to.equal(4);
      const words = bits.maxEntries;
      expect(words & (words - 1), 'power of two').to.equal(0);
      expect(uidBitmapSlot(1000, words)).to.deep.equal({ word: 15, bit: 40 });
      expect(uidBitmapSlot(1000 + 64 * words, words)).to.deep.equal(uidBitmapSlot(1000, words));
      expect(uidBitmapSlot(0xffffffff, words)).to.deep.equal({ word: words - 1, bit: 63 });
      expect(uidBitmapSlot(1001, words)).to.deep.equal({ word: 15, bit: 41 });
    } finally {
      obj.close();
    }
  });
});
