/**
 * slurm/slurm_krsi.lua, the submit-time check, loaded the way a site's job_submit.lua loads it (through
 * the example slurm/job_submit.lua, which requires it) by Lua 5.1, the Lua of Debian's Slurm 22.05, with
 * the few members of Slurm's `slurm` table it uses. The same files run inside real slurmctld in the VM
 * (test/kernel/slurm.spec.ts).
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { luaProfileTable, luaString } from '../../../agent/cli/format.js';
import { PACKAGE_ROOT } from '../../../agent/paths.js';

const SLURM_DIR = join(PACKAGE_ROOT, 'slurm');
const LUA = 'lua5.1';

interface Verdict {
  ok: boolean;
  /** what slurm.log_user told the user, or slurm.log_info logged */
  message: string;
}

/** run slurm_job_submit (and slurm_job_modify) of slurm/job_submit.lua on each comment */
async function submit(comments: (string | null)[], profilesFile: string): Promise<{ submit: Verdict; modify: Verdict }[]> {
  const driver = `
    local messages = {}
    slurm = {
      SUCCESS = 0, ERROR = -1,
      log_user = function(fmt, ...) messages[#messages + 1] = "user: " .. string.format(fmt, ...) end,
      log_info = function(fmt, ...) messages[#messages + 1] = "info: " .. string.format(fmt, ...) end,
    }
    -- the module is found in the checkout's slurm/ (the example looks in /etc/slurm first)
    package.path = ${luaString(`${SLURM_DIR}/?.lua`)} .. ";" .. package.path
    assert(dofile(${luaString(join(SLURM_DIR, 'job_submit.lua'))}) == slurm.SUCCESS)
    package.loaded.slurm_krsi.profiles_file = ${luaString(profilesFile)}
    local function verdict(rc)
      local line = (rc == slurm.SUCCESS and "ok" or "error") .. "\\t" .. table.concat(messages, " | ")
      messages = {}
      return line
    end
    local comments = { ${comments.map((c) => (c === null ? 'false' : luaString(c))).join(', ')} }
    for i = 1, ${comments.length} do
      local comment = comments[i] or nil
      local s = verdict(slurm_job_submit({ comment = comment }, {}, 1000))
      local m = verdict(slurm_job_modify({ comment = comment }, {}, {}, 1000))
      io.write(s, "\\n", m, "\\n")
    end
    -- a profiles file is data: it reached no global
    io.write(tostring(rawget(_G, "INJECTED")), "\\n")
  `;
  const r = await execa(LUA, ['-e', driver], { reject: false });
  expect(r.exitCode, `${LUA}: ${r.stderr}`).to.equal(0);
  const lines = r.stdout.split('\n');
  expect(lines.pop(), 'a global set by the profiles file').to.equal('nil');
  const parse = (line: string): Verdict => ({ ok: line.startsWith('ok\t'), message: line.slice(line.indexOf('\t') + 1) });
  return comments.map((_, i) => ({ submit: parse(lines[2 * i]!), modify: parse(lines[2 * i + 1]!) }));
}

describe('slurm_krsi.lua: the submit-time check of --comment=policy:NAME', () => {
  const dir = mkdtempSync(join(tmpdir(), 'krsi-lua-'));
  const profiles = join(dir, 'profiles.lua');
  writeFileSync(profiles, `${luaProfileTable(['default', 'strict', 'gpu.v2'])}\n`);
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts comments naming no policy or one valid policy, on submit and on modify', async () => {
    const accepted = [null, '', 'run 3', 'policy:strict', 'run 3 policy:strict', 'policy:gpu.v2,x', 'policy:strict policy:strict', 'xpolicy:nosuch', 'a\npolicy:default'];
    for (const [i, v] of (await submit(accepted, profiles)).entries()) {
      expect(v.submit, JSON.stringify(accepted[i])).to.deep.equal({ ok: true, message: '' });
      expect(v.modify, JSON.stringify(accepted[i])).to.deep.equal({ ok: true, message: '' });
    }
  });

  it('rejects an unknown, a malformed, or a second policy, telling the user the valid ones', async () => {
    const valid = 'Valid policies: default, strict, gpu.v2';
    const cases: [string, string][] = [
      ['policy:nosuch', `user: slurm-krsi: unknown policy "nosuch" in --comment. ${valid}`],
      ['run 3 policy:', `user: slurm-krsi: malformed policy name in --comment (policy:NAME, NAME of letters, digits, . _ -). ${valid}`],
      ['policy:os.exit(1)', `user: slurm-krsi: malformed policy name in --comment (policy:NAME, NAME of letters, digits, . _ -). ${valid}`],
      [`policy:${'a'.repeat(65)}`, `user: slurm-krsi: malformed policy name in --comment (policy:NAME, NAME of letters, digits, . _ -). ${valid}`],
      ['policy:strict;policy:default', `user: slurm-krsi: the comment names several policies (strict, default); name one. ${valid}`],
    ];
    const verdicts = await submit(cases.map(([c]) => c), profiles);
    cases.forEach(([comment, message], i) => {
      expect(verdicts[i]!.submit, comment).to.deep.equal({ ok: false, message });
      expect(verdicts[i]!.modify, comment).to.deep.equal({ ok: false, message });
    });
  });

  it('without a readable profile list it lets jobs through and logs why; a list that is code reaches nothing', async () => {
    const [missing] = await submit(['policy:nosuch'], join(dir, 'absent.lua'));
    expect(missing!.submit).to.deep.equal({ ok: true, message: `info: slurm-krsi: cannot read ${join(dir, 'absent.lua')}; not checking policy names` });
    const hostile = join(dir, 'hostile.lua');
    writeFileSync(hostile, 'INJECTED = true\nreturn { "strict" }\n');
    const [fromHostile] = await submit(['policy:strict'], hostile);
    // the assignment lands in the file's own empty environment, not among Slurm's globals (submit checks _G)
    expect(fromHostile!.submit.ok).to.equal(true);
    const calling = join(dir, 'calling.lua');
    writeFileSync(calling, 'os.exit(3)\n');
    const [fromCalling] = await submit(['policy:strict'], calling);
    expect(fromCalling!.submit).to.deep.equal({ ok: true, message: `info: slurm-krsi: cannot read ${calling}; not checking policy names` });
  });
});
