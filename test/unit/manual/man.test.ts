/**
 * The man pages: each renders with man(1) without a groff warning; krsi.ini(5) names every config key,
 * krsictl(8) every command the CLI accepts; --help of both programs prints the page's own text.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../../agent/cli/krsictl.js';
import { AGENT_FIELDS, AGENT_KEYS, PROFILE_KEYS } from '../../../agent/config/keys.js';
import { POLICIES } from '../../../agent/enforcement/layout.js';
import { AGENT_MANUAL } from '../../../agent/manual/agent.js';
import { CONFIG_MANUAL } from '../../../agent/manual/config.js';
import { COMMANDS, EXIT, KRSICTL_MANUAL } from '../../../agent/manual/krsictl.js';
import { renderRoff, renderText, wrapWords, type Manual } from '../../../agent/manual/manual.js';
import { OVERVIEW_MANUAL } from '../../../agent/manual/overview.js';
import { MAN_PAGES, manFileName } from '../../../agent/manual/pages.js';
import { PACKAGE_ROOT } from '../../../agent/paths.js';

const dir = mkdtempSync(join(tmpdir(), 'krsi-man-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** the page as man(1) shows it at 80 columns, and what groff warned */
async function man(page: Manual): Promise<{ shown: string; warnings: string }> {
  const file = join(dir, manFileName(page));
  writeFileSync(file, renderRoff(page, 'slurm-krsi test'));
  const r = await execa('man', ['--warnings', '-l', file], { env: { MANWIDTH: '80', MAN_KEEP_FORMATTING: '', LC_ALL: 'C.UTF-8' }, reject: false });
  expect(r.exitCode, `man -l ${file}: ${r.stderr}`).to.equal(0);
  return { shown: r.stdout, warnings: r.stderr };
}

/** the rendered page as one line of words: a term wrapped over two lines still matches */
const words = (shown: string): string => shown.replace(/\s+/g, ' ');

describe('man pages', () => {
  it('are krsi-agent(8), krsictl(8), krsi.ini(5) and slurm-krsi(7)', () => {
    expect(MAN_PAGES.map(manFileName)).to.deep.equal(['krsi-agent.8', 'krsictl.8', 'krsi.ini.5', 'slurm-krsi.7']);
  });

  for (const page of MAN_PAGES) {
    it(`${manFileName(page)} renders with man --warnings -l, without a warning, every section shown`, async () => {
      const { shown, warnings } = await man(page);
      expect(warnings).to.equal('');
      const lines = shown.split('\n');
      for (const title of ['NAME', ...page.sections.map((s) => s.title)]) expect(lines, title).to.include(title);
      expect(words(shown)).to.include(`${page.name} - `);
    });
  }

  it('krsi.ini(5) names every [agent] key with its default, every profile key and every policy', async () => {
    const shown = words((await man(CONFIG_MANUAL)).shown);
    for (const f of AGENT_FIELDS) {
      const key = AGENT_KEYS[f];
      expect(shown, key.name).to.include(`${key.name} = ${key.default === '' ? '(empty)' : key.default}`);
    }
    for (const key of PROFILE_KEYS) expect(shown, key.name).to.match(new RegExp(`(^| )${key.name} `));
    for (const policy of POLICIES) expect(shown, policy).to.include(policy);
  });

  it('krsictl(8) names every command the CLI accepts, and the CLI accepts every command it names', async () => {
    const shown = words((await man(KRSICTL_MANUAL)).shown);
    for (const c of COMMANDS) expect(shown, c.name).to.match(new RegExp(`(^| )${c.name}( |$)`));
    for (const c of COMMANDS) {
      // a command reaches its own work (here: no agent on this socket, or no such config file), not "unknown command"
      const argv = c.name === 'check' ? ['check', '--config-only', '--config', join(dir, 'absent.ini')] : [c.name, '--socket', join(dir, 'absent.sock')];
      let stderr = '';
      const code = await main(argv, { stdout: () => undefined, stderr: (t) => (stderr += t), timeoutMs: 2000 });
      expect(code, `krsictl ${argv.join(' ')}: ${stderr}`).to.not.equal(EXIT.USAGE);
    }
    const rejected = await main(['frobnicate'], { stdout: () => undefined, stderr: () => undefined });
    expect(rejected).to.equal(EXIT.USAGE);
  });

  it('slurm-krsi(7) names every policy and the files of the node', async () => {
    const shown = words((await man(OVERVIEW_MANUAL)).shown);
    for (const policy of POLICIES) expect(shown, policy).to.include(`${policy} stops`);
    for (const path of ['/etc/slurm-krsi/krsi.ini', '/usr/libexec/slurm-krsi/prolog', '/usr/libexec/slurm-krsi/task-prolog', AGENT_KEYS.pinDir.default]) {
      expect(shown, path).to.include(path);
    }
  });

  it('krsi-agent --help and krsictl --help print their page as text', async () => {
    const tsx = join(PACKAGE_ROOT, 'node_modules', '.bin', 'tsx');
    const agent = await execa(tsx, [join(PACKAGE_ROOT, 'agent', 'main.ts'), '--help']);
    expect(agent.stdout).to.equal(renderText(AGENT_MANUAL).trimEnd());
    let out = '';
    expect(await main(['--help'], { stdout: (t) => (out += t) })).to.equal(0);
    expect(out).to.equal(renderText(KRSICTL_MANUAL));
  });

  it('text rendering wraps at word boundaries and escapes roff where it must', () => {
    expect(wrapWords('aa bb cc dd', 5)).to.deep.equal(['aa bb', 'cc dd']);
    expect(wrapWords('averylongword b', 4)).to.deep.equal(['averylongword', 'b']);
    const roff = renderRoff({ name: 'x', section: 7, summary: 's', sections: [{ title: 'T', blocks: [{ kind: 'text', text: '.leading dot, a\\b, --opt' }] }] }, 'src');
    expect(roff).to.include('\\&.leading dot, a\\eb, \\-\\-opt');
  });
});
