/**
 * Which profile a job asks for: `policy:NAME` anywhere in its Slurm comment (`--comment="run 3
 * policy:strict"`), or a profile name given directly. The comment is user input, byte for byte: it is
 * only ever matched against, never interpreted. A request the node cannot honour exactly (a malformed
 * name, two different names) is reported as unknown, which the agent answers with the strictest profile:
 * a comment can only tighten.
 */
export const PROFILE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

export interface ProfileRequest {
  /** the name asked for, null when the job asks for none */
  name: string | null;
  /** why the request is not a usable name (malformed, ambiguous), null when it is */
  problem: string | null;
}

const MARK = /(?:^|[^A-Za-z0-9_])policy:/g;

export function profileFromComment(comment: string | undefined): ProfileRequest {
  if (!comment) return { name: null, problem: null };
  const names = new Set<string>();
  for (const match of comment.matchAll(MARK)) {
    const rest = comment.slice(match.index + match[0].length);
    const token = /^[^\s,;]*/.exec(rest)![0];
    if (!PROFILE_NAME.test(token)) {
      return { name: token.slice(0, 64), problem: `malformed policy name ${JSON.stringify(token.slice(0, 64))} in the job comment` };
    }
    names.add(token);
  }
  if (names.size === 0) return { name: null, problem: null };
  if (names.size > 1) {
    const list = [...names].join(', ');
    return { name: list, problem: `the job comment names several policies (${list})` };
  }
  return { name: [...names][0]!, problem: null };
}

export function chooseProfile(profile: string | undefined, comment: string | undefined): ProfileRequest {
  if (profile !== undefined) {
    return PROFILE_NAME.test(profile)
      ? { name: profile, problem: null }
      : { name: profile.slice(0, 64), problem: `malformed profile name ${JSON.stringify(profile.slice(0, 64))}` };
  }
  return profileFromComment(comment);
}
