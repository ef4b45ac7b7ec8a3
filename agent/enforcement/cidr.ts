/**
 * CIDR parsing for skconnections. The kernel side keeps one LPM trie keyed by IPv6 addresses, with IPv4
 * stored as IPv4-mapped IPv6 (::ffff:0:0/96), so that an AF_INET destination, an AF_INET6 one and an
 * IPv4-mapped AF_INET6 one all meet the same entries.
 */
import { isIPv4, isIPv6 } from 'node:net';

export interface Cidr {
  /** canonical text, e.g. "192.0.2.0/24" or "2001:db8::/32" */
  text: string;
  family: 4 | 6;
  prefix: number;
  /** the network address as 16 bytes (IPv4 as ::ffff:a.b.c.d), host bits cleared */
  mappedAddress: Buffer;
  /** prefix length over the 16-byte form (IPv4: 96 + prefix) */
  mappedPrefix: number;
}

export class CidrError extends Error {
  constructor(readonly input: string, reason: string) {
    super(`invalid CIDR "${input}": ${reason}`);
    this.name = 'CidrError';
  }
}

function parseIPv4(text: string): Buffer {
  return Buffer.from(text.split('.').map((part) => Number(part)));
}

/** 16 bytes of an IPv6 literal (validated with node:net first), including an embedded IPv4 tail */
function parseIPv6(text: string): Buffer {
  const out = Buffer.alloc(16);
  let body = text;
  const tail: number[] = [];
  const lastColon = body.lastIndexOf(':');
  if (body.includes('.', lastColon)) {
    const v4 = parseIPv4(body.slice(lastColon + 1));
    tail.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    body = body.slice(0, lastColon + 1) + '0:0';
  }
  const [head, rest] = body.split('::') as [string, string | undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const restGroups = rest === undefined || rest === '' ? [] : rest.split(':');
  const groups =
    rest === undefined
      ? headGroups
      : [...headGroups, ...Array<string>(8 - headGroups.length - restGroups.length).fill('0'), ...restGroups];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  if (tail.length === 2) {
    out.writeUInt16BE(tail[0]!, 12);
    out.writeUInt16BE(tail[1]!, 14);
  }
  return out;
}

const V4_MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

export function isV4Mapped(addr16: Buffer): boolean {
  return addr16.subarray(0, 12).equals(V4_MAPPED_PREFIX);
}

function clearHostBits(addr16: Buffer, prefix: number): Buffer {
  const out = Buffer.from(addr16);
  for (let bit = prefix; bit < 128; bit++) {
    out[bit >> 3]! &= ~(0x80 >> (bit & 7));
  }
  return out;
}

/** Parse "a.b.c.d/n", "x:y::/n", or a bare address (a host route). */
export function parseCidr(input: string): Cidr {
  const text = input.trim();
  const slash = text.indexOf('/');
  const addrText = slash === -1 ? text : text.slice(0, slash);
  const prefixText = slash === -1 ? undefined : text.slice(slash + 1);
  let family: 4 | 6;
  let addr16: Buffer;
  if (isIPv4(addrText)) {
    family = 4;
    addr16 = Buffer.concat([V4_MAPPED_PREFIX, parseIPv4(addrText)]);
  } else if (isIPv6(addrText) && !addrText.includes('%')) {
    family = 6;
    addr16 = parseIPv6(addrText);
  } else {
    throw new CidrError(input, 'not an IPv4 or IPv6 address');
  }
  const max = family === 4 ? 32 : 128;
  let prefix = max;
  if (prefixText !== undefined) {
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) {
      throw new CidrError(input, `prefix length must be 0-${max}`);
    }
    prefix = Number(prefixText);
  }
  const mappedPrefix = family === 4 ? 96 + prefix : prefix;
  const mappedAddress = clearHostBits(addr16, mappedPrefix);
  return {
    text: `${formatAddress(mappedAddress, family === 6)}/${prefix}`,
    family,
    prefix,
    mappedAddress,
    mappedPrefix,
  };
}

/**
 * Whether `address` (IPv4, IPv6 or IPv4-mapped IPv6, as a socket reports its peer) lies in one of
 * `cidrs`; an address that does not parse lies in none.
 */
export function inCidrs(address: string, cidrs: readonly Cidr[]): boolean {
  let host: Cidr;
  try {
    host = parseCidr(address);
  } catch (err) {
    if (err instanceof CidrError) return false;
    throw err;
  }
  return cidrs.some((c) => clearHostBits(host.mappedAddress, c.mappedPrefix).equals(c.mappedAddress));
}

/**
 * Text of a 16-byte address: dotted quad for IPv4-mapped (unless forceV6), else RFC 5952 (lower case,
 * longest run of two or more zero groups as "::").
 */
export function formatAddress(addr16: Buffer, forceV6 = false): string {
  if (!forceV6 && isV4Mapped(addr16)) {
    return Array.from(addr16.subarray(12, 16)).join('.');
  }
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(addr16.readUInt16BE(i));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart === -1) return hex.join(':');
  const left = hex.slice(0, bestStart).join(':');
  const right = hex.slice(bestStart + bestLen).join(':');
  return `${left}::${right}`;
}
