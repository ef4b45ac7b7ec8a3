/**
 * The build id and the generations of pinned objects (agent/enforcement/generations.ts): the id the build
 * writes is the one the object carries, the same sources give the same id wherever they are built, the
 * layout part names 0.1.0's krsi.h, and a pin dir's folders are read as the generations they are. Needs
 * `npm run build:bpf` first (npm test builds). Attaching and upgrading real programs is tested in the VM.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BUILD_ID, BuildIdError, LEGACY_LAYOUT, generationDir, layoutOf, listGenerations, readBuildId,
} from '../../agent/enforcement/generations.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const OBJECT = join(ROOT, 'build/bpf/krsi.bpf.o');
/** the last commit before build ids: what sites run as 0.1.0 */
const RELEASE_0_1_0 = '6712c18';

/** bpf/build-id.sh's functions, run by bash */
function buildIdSh(call: string, env: Record<string, string> = {}): string {
  return execFileSync('bash', ['-c', `set -euo pipefail; source ${JSON.stringify(join(ROOT, 'bpf/build-id.sh'))}; ${call}`], {
    encoding: 'utf8', env: { ...process.env, ...env },
  }).trim();
}

describe('build ids and generations of pinned objects', () => {
  let tmp: string;
  beforeEach(() => {
    tmp = mkdtempSync(join(tmpdir(), 'krsi-generations-'));
  });
  afterEach(() => rmSync(tmp, { recursive: true, force: true }));

  it('the built object carries the id bpf/build.sh wrote beside it, and it is the id of the sources', () => {
    const id = readBuildId(OBJECT);
    expect(id).to.match(BUILD_ID);
    expect(readFileSync(join(ROOT, 'build/bpf/krsi.build-id'), 'utf8').trim()).to.equal(id);
    expect(buildIdSh(`krsi_build_id ${JSON.stringify(join(ROOT, 'bpf'))}`)).to.equal(id);
  });

  it('the same sources elsewhere get the same id; a salt or a changed source another one, a changed krsi.h another layout', () => {
    const copy = join(tmp, 'bpf');
    cpSync(join(ROOT, 'bpf'), copy, { recursive: true });
    const id = readBuildId(OBJECT);
    expect(buildIdSh(`krsi_build_id ${copy}`), 'another checkout path').to.equal(id);
    const salted = buildIdSh(`krsi_build_id ${copy}`, { KRSI_BUILD_ID_SALT: 'upgrade-test' });
    expect(salted).to.match(BUILD_ID).and.not.equal(id);
    expect(salted.slice(0, 8), 'same krsi.h, same layout').to.equal(id.slice(0, 8));

    writeFileSync(join(copy, 'krsi.bpf.c'), `${readFileSync(join(copy, 'krsi.bpf.c'), 'utf8')}\n/* a comment changes nothing */\n`);
    expect(buildIdSh(`krsi_build_id ${copy}`), 'a comment').to.equal(id);
    writeFileSync(join(copy, 'krsi.bpf.c'), `${readFileSync(join(copy, 'krsi.bpf.c'), 'utf8')}\nint krsi_unused_global;\n`);
    const changed = buildIdSh(`krsi_build_id ${copy}`);
    expect(changed.slice(9), 'code changed').to.not.equal(id.slice(9));
    expect(changed.slice(0, 8)).to.equal(id.slice(0, 8));

    const header = readFileSync(join(copy, 'krsi.h'), 'utf8').replace('__u32 signal;', '__u32 signal;\n\t__u32 folded;');
    expect(header).to.include('folded');
    writeFileSync(join(copy, 'krsi.h'), header);
    expect(buildIdSh(`krsi_layout_id ${join(copy, 'krsi.h')}`), 'an event field added').to.not.equal(id.slice(0, 8));
  });

  it(`LEGACY_LAYOUT is the layout of krsi.h as ${RELEASE_0_1_0} (0.1.0) shipped it`, () => {
    const old = join(tmp, 'krsi.h');
    writeFileSync(old, execFileSync('git', ['-C', ROOT, 'show', `${RELEASE_0_1_0}:bpf/krsi.h`], { encoding: 'utf8' }));
    expect(buildIdSh(`krsi_layout_id ${old}`)).to.equal(LEGACY_LAYOUT);
  });

  it('refuses an object whose id file is missing, malformed or not the id the object carries', () => {
    const object = join(tmp, 'krsi.bpf.o');
    copyFileSync(OBJECT, object);
    expect(() => readBuildId(object)).to.throw(BuildIdError, /cannot read the build id of .*krsi\.bpf\.o from .*krsi\.build-id/);
    writeFileSync(join(tmp, 'krsi.build-id'), 'v0.2.0\n');
    expect(() => readBuildId(object)).to.throw(BuildIdError, /holds "v0.2.0", not a build id/);
    writeFileSync(join(tmp, 'krsi.build-id'), '00000000-000000000000\n');
    expect(() => readBuildId(object)).to.throw(BuildIdError, /does not carry build id 00000000-000000000000 .*rebuild with bpf\/build.sh/);
    copyFileSync(join(ROOT, 'build/bpf/krsi.build-id'), join(tmp, 'krsi.build-id'));
    expect(readBuildId(object)).to.equal(readBuildId(OBJECT));
  });

  it('reads a pin dir: 0.1.0\'s links/ and maps/, each build-<id>/, and nothing else', () => {
    const pinDir = join(tmp, 'pins');
    expect(listGenerations(pinDir), 'no pin dir yet').to.deep.equal([]);
    const a = 'e2f8852b-ae1364784ce6';
    const b = '0123abcd-0123456789ab';
    for (const dir of ['links', 'maps', `build-${b}/links`, `build-${a}/maps`, 'build-latest', 'build-0123abcd', 'unrelated']) {
      mkdirSync(join(pinDir, dir), { recursive: true });
    }
    expect(listGenerations(pinDir)).to.deep.equal([
      { dir: pinDir, buildId: null },
      { dir: join(pinDir, `build-${b}`), buildId: b },
      { dir: join(pinDir, `build-${a}`), buildId: a },
    ]);
    expect(generationDir(pinDir, a)).to.equal(join(pinDir, `build-${a}`));
    expect(layoutOf({ dir: pinDir, buildId: null })).to.equal(LEGACY_LAYOUT);
    expect(layoutOf({ dir: generationDir(pinDir, b), buildId: b })).to.equal('0123abcd');
    rmSync(join(pinDir, 'links'), { recursive: true });
    rmSync(join(pinDir, 'maps'), { recursive: true });
    expect(listGenerations(pinDir).map((g) => g.buildId)).to.deep.equal([b, a]);
  });
});
