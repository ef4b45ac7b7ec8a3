/**
 * Users and groups by name, from the system databases (getent: files, LDAP, sssd, whatever nsswitch
 * says), resolved when the agent starts.
 */
import { execFileSync } from 'node:child_process';

function getent(db: 'passwd' | 'group', name: string): string[] | null {
  try {
    const out = execFileSync('getent', [db, name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    return out.trim().split(':');
  } catch {
    return null;
  }
}

export function accountUid(name: string): number | null {
  if (/^\d+$/.test(name)) return Number(name);
  const fields = getent('passwd', name);
  return fields?.[2] === undefined ? null : Number(fields[2]);
}

export function accountGid(name: string): number | null {
  if (/^\d+$/.test(name)) return Number(name);
  const fields = getent('group', name);
  return fields?.[2] === undefined ? null : Number(fields[2]);
}
