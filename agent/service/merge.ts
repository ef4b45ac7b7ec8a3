/**
 * Union of policies. A job's policy is the floor (default_profile) united with the profile it asked for;
 * a uid's policy is the union over its jobs on the node. "Union" means: whatever any part forbids stays
 * forbidden, so adding a profile can only tighten.
 *
 *   modes          the strictest per policy (off < audit < enforce); one mode per policy per uid
 *   suidexec_allow the files every part with suidexec on allows (intersection)
 *   ssh_clients    every client any part with sshlisteners on names (union)
 *   connections    a destination is allowed only if every part with skconnections on allows it:
 *                  deny-lists unite; allow-lists intersect; deny entries inside allowed networks stay as
 *                  holes (the kernel's longest-prefix match applies them). Each part's IPv4 rules count
 *                  under its NAT64 prefixes too (connect_nat64), before the parts are united.
 */
import { formatAddress, parseCidr, type Cidr } from '../enforcement/cidr.js';
import { MODES, POLICIES, type Mode, type PolicyName } from '../enforcement/layout.js';
import type { ProfileConfig } from '../config/config.js';
import type { CidrVerdict, EffectivePolicy } from './types.js';

function stricter(a: Mode, b: Mode): Mode {
  return MODES.indexOf(a) >= MODES.indexOf(b) ? a : b;
}

/** a ⊆ b, comparing the 16-byte (IPv4-mapped) forms */
export function cidrWithin(a: Cidr, b: Cidr): boolean {
  if (a.mappedPrefix < b.mappedPrefix) return false;
  for (let bit = 0; bit < b.mappedPrefix; bit++) {
    const mask = 0x80 >> (bit & 7);
    if ((a.mappedAddress[bit >> 3]! & mask) !== (b.mappedAddress[bit >> 3]! & mask)) return false;
  }
  return true;
}

function uniqueCidrs(list: Iterable<Cidr>): Cidr[] {
  const seen = new Map<string, Cidr>();
  for (const c of list) seen.set(c.text, c);
  return [...seen.values()];
}

/** the networks inside both lists (two CIDRs either nest or are disjoint) */
function intersect(a: Cidr[], b: Cidr[]): Cidr[] {
  const out: Cidr[] = [];
  for (const x of a) for (const y of b) {
    if (cidrWithin(x, y)) out.push(x);
    else if (cidrWithin(y, x)) out.push(y);
  }
  const unique = uniqueCidrs(out);
  return unique.filter((c) => !unique.some((o) => o !== c && cidrWithin(c, o)));
}

/**
 * A list of CIDRs with each IPv4 one added again under every NAT64 /96 prefix: 192.0.2.0/24 under
 * 64:ff9b::/96 is 64:ff9b::c000:200/120, where a NAT64 gateway sends what reaches it.
 */
export function withNat64(cidrs: readonly Cidr[], prefixes: readonly Cidr[]): Cidr[] {
  const translated = cidrs
    .filter((c) => c.family === 4)
    .flatMap((c) =>
      prefixes.map((p) => {
        const addr = Buffer.concat([p.mappedAddress.subarray(0, 12), c.mappedAddress.subarray(12)]);
        return parseCidr(`${formatAddress(addr, true)}/${96 + c.prefix}`);
      }),
    );
  return uniqueCidrs([...cidrs, ...translated]);
}

interface ConnectPart {
  deny: Cidr[];
  /** null: allow everything not denied */
  allow: Cidr[] | null;
}

export function mergeConnections(parts: ConnectPart[]): { connectDefault: CidrVerdict; rules: { cidr: Cidr; verdict: CidrVerdict }[] } {
  const deny = uniqueCidrs(parts.flatMap((p) => p.deny));
  const allowLists = parts.map((p) => p.allow).filter((a): a is Cidr[] => a !== null);
  if (allowLists.length === 0) {
    return { connectDefault: 'allow', rules: deny.map((cidr) => ({ cidr, verdict: 'deny' as const })) };
  }
  let allowed = allowLists[0]!;
  for (const next of allowLists.slice(1)) allowed = intersect(allowed, next);
  allowed = uniqueCidrs(allowed).filter((a) => !deny.some((d) => cidrWithin(a, d)));
  const holes = deny.filter((d) => allowed.some((a) => cidrWithin(d, a)));
  return {
    connectDefault: 'deny',
    rules: [
      ...allowed.map((cidr) => ({ cidr, verdict: 'allow' as const })),
      ...holes.map((cidr) => ({ cidr, verdict: 'deny' as const })),
    ],
  };
}

/** The union of profiles as one policy (associative: a uid's policy is the union of all its jobs' profiles). */
export function mergeProfiles(profiles: readonly ProfileConfig[]): EffectivePolicy {
  const modes = Object.fromEntries(POLICIES.map((p) => [p, 'off'])) as Record<PolicyName, Mode>;
  for (const profile of profiles) for (const p of POLICIES) modes[p] = stricter(modes[p], profile.modes[p]);

  const suidParts = profiles.filter((p) => p.modes.suidexec !== 'off').map((p) => p.suidexecAllow);
  const suidexecAllow = suidParts.length === 0 ? [] : suidParts.reduce((acc, list) => acc.filter((path) => list.includes(path)));

  const sshClients = [...new Set(profiles.filter((p) => p.modes.sshlisteners !== 'off').flatMap((p) => p.sshClients))];

  const connect = mergeConnections(
    profiles
      .filter((p) => p.modes.skconnections !== 'off')
      .map((p) => ({
        deny: withNat64(p.connectDeny, p.connectNat64),
        allow: p.connectAllow === null ? null : withNat64(p.connectAllow, p.connectNat64),
      })),
  );
  return {
    modes,
    suidexecAllow: [...new Set(suidexecAllow)].sort(),
    sshClients: sshClients.sort(),
    connectDefault: connect.connectDefault,
    connectRules: connect.rules.map((r) => ({ cidr: r.cidr.text, verdict: r.verdict })),
  };
}
