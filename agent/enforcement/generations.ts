/**
 * Generations of pinned programs and maps: what each BPF build left under the pin dir.
 *
 * A build of the BPF side has an id (bpf/build.sh): "<layout>-<code>", where <layout> hashes krsi.h (the
 * records and map values shared with user space, the event record included) and <code> everything
 * compiled in. Each build pins its programs and maps under pinDir/build-<id>/{links,maps}/. Version 0.1.0
 * pinned them without an id, straight under pinDir/{links,maps}/: the legacy generation.
 *
 * An agent adopts only its own build's generation. Any other generation is upgraded away (enforcer.ts):
 * the agent attaches its own programs beside it, writes every uid's policy from its job table into its own
 * maps, and only then detaches and unpins the other one. Of another generation it reads nothing but the
 * event ring, and that only when the layout part of the id says the records are its own layout.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { BpfObject } from '../../libbpf-ts/index.js';

/** "<layout>-<code>": 8 and 12 lower-case hex digits (bpf/build.sh) */
export const BUILD_ID = /^([0-9a-f]{8})-[0-9a-f]{12}$/;

/** the layout part of 0.1.0's build (krsi.h as 0.1.0 shipped it), for its generation, which has no id */
export const LEGACY_LAYOUT = 'e2f8852b';

const GENERATION_PREFIX = 'build-';

export interface Generation {
  /** the folder holding links/ and maps/ */
  dir: string;
  /** the build id, or null for 0.1.0's generation */
  buildId: string | null;
}

export class BuildIdError extends Error {
  override name = 'BuildIdError';
}

/**
 * Where the pins of a version from before the pins' own file system wait to be retired. Those versions
 * (0.1.0 among them) pinned straight on the bpffs at /sys/fs/bpf, in the directory on which the pins' own
 * file system is now mounted: before that mount hides them, they are renamed aside on their file system
 * (pin-fs.ts, deploy/install.sh), which keeps every program attached, and an agent retires them from there.
 */
export function previousLayoutDir(pinDir: string): string {
  // a dash, not a dot: bpffs refuses names with a dot (EPERM, reserved for the kernel's own files)
  return `${pinDir}-previous`;
}

/** where a build pins its programs and maps */
export function generationDir(pinDir: string, buildId: string): string {
  return join(pinDir, `${GENERATION_PREFIX}${buildId}`);
}

/** the layout part of a generation's build id (LEGACY_LAYOUT for 0.1.0's) */
export function layoutOf(gen: Generation): string {
  if (gen.buildId === null) return LEGACY_LAYOUT;
  const m = BUILD_ID.exec(gen.buildId);
  if (!m) throw new BuildIdError(`not a build id: ${JSON.stringify(gen.buildId)}`);
  return m[1]!;
}

/**
 * Every generation pinned under pinDir: 0.1.0's (links/ or maps/ straight under pinDir), then each
 * build-<id>/ folder. A folder whose name is not a well-formed build id is no generation of ours and is
 * left alone.
 */
export function listGenerations(pinDir: string): Generation[] {
  if (!existsSync(pinDir)) return [];
  const names = readdirSync(pinDir);
  const out: Generation[] = [];
  if (names.includes('links') || names.includes('maps')) out.push({ dir: pinDir, buildId: null });
  for (const name of names.sort()) {
    if (!name.startsWith(GENERATION_PREFIX)) continue;
    const buildId = name.slice(GENERATION_PREFIX.length);
    if (BUILD_ID.test(buildId)) out.push({ dir: join(pinDir, name), buildId });
  }
  return out;
}

/**
 * The build id of an enforcement object: build/bpf/krsi.build-id beside it, checked against the
 * bpf_metadata_build_id the object itself carries (an object rebuilt or copied without its id file must
 * not pass for another build).
 */
export function readBuildId(objectPath: string): string {
  const idFile = join(dirname(objectPath), `${basename(objectPath).replace(/\.bpf\.o$/, '')}.build-id`);
  let id: string;
  try {
    id = readFileSync(idFile, 'utf8').trim();
  } catch (err) {
    throw new BuildIdError(`cannot read the build id of ${objectPath} from ${idFile} (built by bpf/build.sh): ${(err as Error).message}`);
  }
  if (!BUILD_ID.test(id)) throw new BuildIdError(`${idFile} holds ${JSON.stringify(id)}, not a build id (<8 hex>-<12 hex>)`);
  const object = BpfObject.open(objectPath);
  try {
    const rodata = object.maps().find((m) => m.name.endsWith('.rodata'));
    const carried = rodata?.initialValue().includes(Buffer.from(`${id}\0`, 'latin1')) ?? false;
    if (!carried) throw new BuildIdError(`${objectPath} does not carry build id ${id} of ${idFile}: rebuild with bpf/build.sh`);
  } finally {
    object.close();
  }
  return id;
}
