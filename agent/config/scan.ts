/**
 * The structure of an INI file: sections, and key = value lines with their line numbers.
 *
 * Values go through the `ini` package's own value grammar (`ini.unsafe`): surrounding whitespace trimmed,
 * "double" (JSON) or 'single' quotes removed, and an unquoted `;` or `#` starts a comment, so the inline
 * comments of DESIGN.md's sample (`on_error = fail   ; prolog exit status ...`) are not part of the value.
 * `\;` and `\#` keep the character; so does quoting, and a quoted value may be followed by a comment.
 *
 * The section structure is scanned here rather than with `ini.decode`, because `ini.decode` silently
 * loses what a security config must not lose:
 * - a repeated key (or section) quietly overrides the earlier one; here it is an error;
 * - a dot in a section name nests sections (`[profile a.b]` becomes key "b" of `[profile a]`); here dots
 *   are ordinary characters, so profile names may contain them;
 * - a header followed by a comment (`[agent] ; ...`) or indented is read as a key of the previous section;
 *   here it is a header;
 * - a line that is neither a header nor `key = value` is dropped or read as `key = true`; here it is an error.
 * Comment lines start with `;` or `#` (after optional whitespace).
 */
import ini from 'ini';
import type { ConfigProblem } from './errors.js';

export interface IniEntry {
  key: string;
  value: string;
  line: number;
}

export interface IniSection {
  /** text between the brackets, trimmed, inner whitespace runs collapsed to one space */
  name: string;
  line: number;
  entries: IniEntry[];
}

export interface IniScan {
  sections: IniSection[];
  problems: ConfigProblem[];
}

const HEADER = /^\[([^\]]*)\]\s*(?:[;#].*)?$/;

/** end index of the quoted value opened at 0, or -1; backslash escapes apply inside "..." (JSON rules) */
function closingQuote(text: string, quote: string): number {
  for (let i = 1; i < text.length; i++) {
    const c = text[i];
    if (quote === '"' && c === '\\') i++;
    else if (c === quote) return i;
  }
  return -1;
}

export function parseValue(raw: string): string {
  const text = raw.trim();
  const quote = text[0];
  if (quote === '"' || quote === "'") {
    const end = closingQuote(text, quote);
    const rest = end === -1 ? null : text.slice(end + 1).trim();
    if (rest !== null && (rest === '' || rest.startsWith(';') || rest.startsWith('#'))) {
      return ini.unsafe(text.slice(0, end + 1));
    }
  }
  return ini.unsafe(text);
}

export function scanIni(text: string): IniScan {
  const sections: IniSection[] = [];
  const problems: ConfigProblem[] = [];
  const byName = new Map<string, IniSection>();
  // null: before the first header, or inside a broken/duplicate section whose lines are skipped
  let current: IniSection | null = null;
  let skipping = false;
  const lines = text.replace(/^\uFEFF/, '').split(/\r\n|\r|\n/);

  lines.forEach((raw, index) => {
    const lineNo = index + 1;
    const line = raw.trim();
    if (line === '' || line.startsWith(';') || line.startsWith('#')) return;

    if (line.startsWith('[')) {
      const match = HEADER.exec(line);
      if (match === null) {
        problems.push({ section: null, key: null, line: lineNo, message: `malformed section header ${JSON.stringify(line)}` });
        current = null;
        skipping = true;
        return;
      }
      const name = (match[1] ?? '').trim().replace(/\s+/g, ' ');
      const earlier = byName.get(name);
      if (earlier !== undefined) {
        problems.push({ section: name, key: null, line: lineNo, message: `section appears twice (lines ${earlier.line} and ${lineNo})` });
        current = null;
        skipping = true;
        return;
      }
      current = { name, line: lineNo, entries: [] };
      byName.set(name, current);
      sections.push(current);
      skipping = false;
      return;
    }

    if (skipping) return;
    const section: IniSection | null = current;
    const eq = line.indexOf('=');
    const key = eq === -1 ? null : line.slice(0, eq).trim();
    if (key === null || key === '') {
      problems.push({
        section: section?.name ?? null,
        key: null,
        line: lineNo,
        message: `expected "key = value", got ${JSON.stringify(line)}`,
      });
      return;
    }
    if (section === null) {
      problems.push({ section: null, key, line: lineNo, message: 'set before any [section]' });
      return;
    }
    const earlier = section.entries.find((e) => e.key === key);
    if (earlier !== undefined) {
      problems.push({ section: section.name, key, line: lineNo, message: `set twice (lines ${earlier.line} and ${lineNo})` });
      return;
    }
    section.entries.push({ key, value: parseValue(line.slice(eq + 1)), line: lineNo });
  });

  return { sections, problems };
}
