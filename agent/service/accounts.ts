/**
 * Users and groups by name, from the system databases (getent: files, LDAP, sssd, whatever nsswitch
 * says). getent runs as a child process with a timeout: a directory server that does not answer must
 * not hang the agent (resolving in-process would block a thread for as long as nss likes).
 */
import { execFile } from 'node:child_process';

export const GETENT_TIMEOUT_MS = 5000;

export class AccountLookupError extends Error {}

/** the entry's fields; null when there is none; throws AccountLookupError when getent fails or hangs */
function getent(db: 'passwd' | 'group', name: string, timeoutMs: number): Promise<string[] | null> {
  return new Promise((resolve, reject) => {
    execFile('getent', [db, name], { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8' }, (err, stdout) => {
      if (err === null) resolve(stdout.trim().split(':'));
      // getent's exit status 2: no such entry
      else if (err.code === 2) resolve(null);
      else if (err.killed) reject(new AccountLookupError(`getent ${db} ${name} did not answer within ${timeoutMs} ms`));
      else reject(new AccountLookupError(`getent ${db} ${name} failed: ${err.message}`));
    });
  });
}

async function idOf(db: 'passwd' | 'group', name: string, timeoutMs: number): Promise<number | null> {
  if (/^\d+$/.test(name)) return Number(name);
  const fields = await getent(db, name, timeoutMs);
  return fields?.[2] === undefined ? null : Number(fields[2]);
}

export function accountUid(name: string, timeoutMs = GETENT_TIMEOUT_MS): Promise<number | null> {
  return idOf('passwd', name, timeoutMs);
}

export function accountGid(name: string, timeoutMs = GETENT_TIMEOUT_MS): Promise<number | null> {
  return idOf('group', name, timeoutMs);
}
