// Reads mocha's end-of-run summary ("N passing", "N failing", "N pending") out of reporter output.

export interface MochaSummary {
  passing: number;
  failing: number;
  pending: number;
}

// eslint-disable-next-line no-control-regex
const ANSI_RE = /\u001b\[[0-9;]*m/g;

/** The last summary in the text, or undefined when mocha never printed one (it crashed or never ran). */
export function parseMochaSummary(text: string): MochaSummary | undefined {
  const clean = text.replace(ANSI_RE, '');
  const count = (word: string): number | undefined => {
    const all = [...clean.matchAll(new RegExp(`^\\s*(\\d+) ${word}\\b`, 'gm'))];
    const last = all[all.length - 1];
    return last?.[1] === undefined ? undefined : Number(last[1]);
  };
  const passing = count('passing');
  if (passing === undefined) return undefined;
  return { passing, failing: count('failing') ?? 0, pending: count('pending') ?? 0 };
}

/** Quotes a string for bash. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
