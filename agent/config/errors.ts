/**
 * Config problems. Every problem names the file, and where they apply the line, the section and the key,
 * the way compilers name a place (editors and CI logs link `file:line`):
 * `/etc/slurm-krsi/krsi.ini:23: [profile strict] connect_deny: invalid CIDR "10.0.0.0/33": ...`.
 * Warnings use the same format.
 */

export interface ConfigProblem {
  /** section as written between the brackets, e.g. "agent" or "profile strict"; null outside any section */
  section: string | null;
  key: string | null;
  message: string;
  /** 1-based line of the file the problem is on; null when it concerns the whole file */
  line: number | null;
}

export function formatProblem(path: string, problem: ConfigProblem): string {
  const where: string[] = [];
  if (problem.section !== null) where.push(`[${problem.section}]`);
  if (problem.key !== null) where.push(problem.key);
  const place = problem.line === null ? path : `${path}:${problem.line}`;
  return where.length === 0 ? `${place}: ${problem.message}` : `${place}: ${where.join(' ')}: ${problem.message}`;
}

/**
 * One error for everything wrong with a config file. `problems` holds one formatted line per problem and
 * the message joins them on newlines; `section` and `key` are those of the first problem.
 */
export class ConfigError extends Error {
  readonly code = 'KRSI_ERR_CONFIG';
  readonly path: string;
  readonly section: string | null;
  readonly key: string | null;
  /** line of the first problem */
  readonly line: number | null;
  readonly problems: string[];
  readonly details: readonly ConfigProblem[];

  constructor(path: string, details: readonly ConfigProblem[]) {
    const list: readonly ConfigProblem[] = details.length > 0 ? details : [{ section: null, key: null, line: null, message: 'invalid config' }];
    const problems = list.map((p) => formatProblem(path, p));
    super(problems.join('\n'));
    this.name = 'ConfigError';
    this.path = path;
    this.section = list[0]?.section ?? null;
    this.key = list[0]?.key ?? null;
    this.line = list[0]?.line ?? null;
    this.problems = problems;
    this.details = list;
  }
}
