/**
 * The grammar of config values. Each parser takes the value as scanned (trimmed, comment removed) and
 * returns the typed value or throws BadValue with one message per thing wrong. Words (modes, on_error,
 * "off") are lower case and case-sensitive: "Enforce" is an error whose message suggests "enforce".
 */
import { isIPv4, isIPv6 } from 'node:net';
import { CidrError, parseCidr, type Cidr } from '../enforcement/cidr.js';
import { MODES, type Mode } from '../enforcement/layout.js';

export class BadValue extends Error {
  readonly messages: string[];
  constructor(messages: string | string[]) {
    const list = typeof messages === 'string' ? [messages] : messages;
    super(list.join('; '));
    this.name = 'BadValue';
    this.messages = list;
  }
}

/** profile names, as in `[profile NAME]` and `--comment=policy:NAME`; dots are allowed (see scan.ts) */
export const PROFILE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

export function checkProfileName(name: string): string | null {
  if (name === '') return 'a profile needs a name: [profile NAME]';
  if (!PROFILE_NAME.test(name)) {
    return `invalid profile name ${JSON.stringify(name)}: 1-64 characters of A-Z a-z 0-9 _ . -`;
  }
  return null;
}

function quoted(value: string): string {
  return JSON.stringify(value);
}

export function parseChoice<T extends string>(value: string, allowed: readonly T[]): T {
  const found = allowed.find((a) => a === value);
  if (found !== undefined) return found;
  const folded = allowed.find((a) => a === value.toLowerCase());
  const hint = folded !== undefined ? ` (values are lower case: ${quoted(folded)})` : '';
  const shown = value === '' ? 'empty value' : quoted(value);
  throw new BadValue(`${shown} is not one of ${allowed.join(' | ')}${hint}`);
}

export function parseMode(value: string): Mode {
  return parseChoice(value, MODES);
}

/** comma-separated list; items trimmed, empty items dropped */
export function splitList(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

function pathProblem(path: string): string | null {
  if (!path.startsWith('/')) return `${quoted(path)} is not an absolute path`;
  if (CONTROL.test(path)) return `${quoted(path)} contains control characters`;
  return null;
}

export function parseAbsolutePath(value: string): string {
  if (value === '') throw new BadValue('empty value: expected an absolute path');
  const problem = pathProblem(value);
  if (problem !== null) throw new BadValue(problem);
  return value;
}

/** comma-separated absolute paths, duplicates dropped; every bad item reported */
export function parsePathList(value: string): string[] {
  const items = [...new Set(splitList(value))];
  const problems = items.map(pathProblem).filter((p): p is string => p !== null);
  if (problems.length > 0) throw new BadValue(problems);
  return items;
}

/** comma-separated CIDRs (IPv4 and IPv6; a bare address is a host route); every bad item reported */
export function parseCidrList(value: string): Cidr[] {
  const cidrs: Cidr[] = [];
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const item of splitList(value)) {
    try {
      const cidr = parseCidr(item);
      if (!seen.has(cidr.text)) cidrs.push(cidr);
      seen.add(cidr.text);
    } catch (err) {
      if (!(err instanceof CidrError)) throw err;
      problems.push(err.message);
    }
  }
  if (problems.length > 0) throw new BadValue(problems);
  return cidrs;
}

/**
 * connect_nat64: the NAT64 prefixes (RFC 6052 /96, IPv6) under which every IPv4 rule of the profile is
 * added again, so that 64:ff9b::192.0.2.1 meets the rule for 192.0.2.1; "off" or empty for none.
 */
export function parseNat64Prefixes(value: string): Cidr[] {
  if (value === 'off') return [];
  const prefixes = parseCidrList(value);
  const problems = prefixes
    .filter((c) => c.family !== 6 || c.prefix !== 96)
    .map((c) => `${quoted(c.text)} is not an IPv6 /96 prefix (the IPv4 address is the last 32 bits of a NAT64 address)`);
  if (problems.length > 0) throw new BadValue(problems);
  return prefixes;
}

/** "off" or empty: disabled (null); otherwise an absolute path */
export function parseOptionalPath(value: string): string | null {
  if (value === '' || value === 'off') return null;
  return parseAbsolutePath(value);
}

export function parseInteger(value: string, min: number, max: number): number {
  if (!/^\d{1,16}$/.test(value) || Number(value) < min || Number(value) > max) {
    throw new BadValue(`${value === '' ? 'empty value' : quoted(value)} is not an integer in ${min}..${max}`);
  }
  return Number(value);
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };
export const MIN_RING_BUFFER = 4096;
export const MAX_RING_BUFFER = 1024 ** 3;

/**
 * BPF ring buffer size: bytes, or with a K, M or G suffix (powers of 1024; "8M" and "8MiB" are the same).
 * The kernel wants a power of two and a multiple of the page size; 1G is already far more than needed.
 */
export function parseRingBufferSize(value: string): number {
  const match = /^(\d{1,16})\s*([kKmMgG]?)(?:iB)?$/.exec(value);
  if (match === null) {
    throw new BadValue(`${value === '' ? 'empty value' : quoted(value)} is not a size: expected e.g. 8M (bytes, or a K, M or G suffix)`);
  }
  const bytes = Number(match[1]) * (SIZE_UNITS[(match[2] ?? '').toLowerCase()] ?? 1);
  if (bytes < MIN_RING_BUFFER || bytes > MAX_RING_BUFFER || (bytes & (bytes - 1)) !== 0) {
    throw new BadValue(`${quoted(value)} is ${bytes} bytes: must be a power of two from 4K to 1G`);
  }
  return bytes;
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export interface ListenAddress {
  /** IPv4 literal, host name, or IPv6 literal without brackets (as net.Server.listen wants it) */
  host: string;
  port: number;
}

/** "host:port", "[v6]:port", or "off"/empty (null: no metrics listener) */
export function parseListen(value: string): ListenAddress | null {
  if (value === '' || value === 'off') return null;
  const usage = 'expected host:port, [ipv6]:port or off';
  let host: string;
  let portText: string;
  const bracketed = /^\[([^\]]*)\]:(.*)$/.exec(value);
  if (bracketed !== null) {
    host = bracketed[1] ?? '';
    portText = bracketed[2] ?? '';
    if (!isIPv6(host)) throw new BadValue(`${quoted(host)} in brackets is not an IPv6 address (${usage})`);
  } else {
    const colon = value.lastIndexOf(':');
    if (colon === -1) throw new BadValue(`${quoted(value)} has no port (${usage})`);
    host = value.slice(0, colon);
    portText = value.slice(colon + 1);
    if (host.includes(':')) {
      throw new BadValue(`${quoted(value)}: an IPv6 address needs brackets, e.g. [::1]:9817`);
    }
    const numeric = /^[\d.]+$/.test(host);
    if ((numeric && !isIPv4(host)) || (!numeric && !HOSTNAME.test(host))) {
      throw new BadValue(`${quoted(host)} is not an IPv4 address or host name (${usage})`);
    }
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
    throw new BadValue(`port ${quoted(portText)} is not in 1..65535`);
  }
  return { host, port: Number(portText) };
}

/** a user or group name (or numeric id): no ':' (it separates /etc/passwd fields), no control characters */
export function parseAccount(value: string, what: 'user' | 'group'): string {
  if (value === '') throw new BadValue(`empty value: expected a ${what} name`);
  if (value.includes(':') || CONTROL.test(value)) throw new BadValue(`${quoted(value)} is not a valid ${what} name`);
  return value;
}
