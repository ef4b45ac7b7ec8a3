/**
 * Config problems. Every problem names the file, and where they apply the section and the key:
 * `/etc/slurm-krsi/krsi.ini: [profile strict] connect_deny: invalid CIDR "10.0.0.0/33": ...`.
 * Warnings use the same format.
 */

export interface ConfigProblem {
  /** section as written between the brackets, e.g. "agent" or "profile strict"; null outside any section */
  section: string | null;
  key: string | null;
  message: string;
}

export function formatProblem(path: string, problem: ConfigProblem): string {
  const where: string[] = [];
  if (problem.section !== null) where.push(`[${problem.section}]`);
  if (problem.key !== null) where.push(problem.key);
  return where.length === 0 ? `${path}: ${problem.message}` : `${path}: ${where.join(' ')}: ${problem.message}`;
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
  readonly problems: string[];
  readonly details: readonly ConfigProblem[];

  constructor(path: string, details: readonly ConfigProblem[]) {
    const list: readonly ConfigProblem[] = details.length > 0 ? details : [{ section: null, key: null, message: 'invalid config' }];
    const problems = list.map((p) => formatProblem(path, p));
    super(problems.join('\n'));
    this.name = 'ConfigError';
    this.path = path;
    this.section = list[0]?.section ?? null;
    this.key = list[0]?.key ?? null;
    this.problems = problems;
    this.details = list;
  }
}
