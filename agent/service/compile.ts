/**
 * From a configured policy (paths, CIDR text) to what the kernel maps hold (file identities, parsed
 * CIDRs). File identities come from the kernel itself (agent/enforcement/identity.ts) and are cached per
 * path; a FileWatcher tells the agent when an allowlisted file is replaced (a package upgrade writes a
 * new inode under the old name), and the agent then re-resolves and rewrites the affected uids.
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { parseCidr } from '../enforcement/cidr.js';
import type { UidPolicy } from '../enforcement/enforcer.js';
import { BoundedOpener } from '../enforcement/bounded-open.js';
import { boundedOpenPath, resolveFileIdentities, type ResolvedFile } from '../enforcement/identity.js';
import type { Logger } from '../log/logger.js';
import type { IdentityResolver } from './ports.js';
import type { EffectivePolicy } from './types.js';

/** an allowlisted file's open() may take this long before the file counts as missing (a stuck NFS mount) */
export const OPEN_TIMEOUT_MS = 5000;

/** The kernel's identities of allowlisted files, cached per path until the file watcher says it changed. */
export class IdentityCache implements IdentityResolver {
  private readonly cache = new Map<string, ResolvedFile | null>();
  private readonly open: (path: string) => Promise<number>;

  constructor(
    private readonly identityObject: string,
    private readonly log: Logger,
    opener = new BoundedOpener(OPEN_TIMEOUT_MS),
  ) {
    this.open = boundedOpenPath(opener);
  }

  /** identities of the paths that exist; missing ones are logged once per resolution and skipped */
  async resolve(paths: readonly string[]): Promise<ResolvedFile[]> {
    const unknown = paths.filter((p) => !this.cache.has(p));
    if (unknown.length > 0) {
      const { files, missing } = await resolveFileIdentities(this.identityObject, unknown, this.open);
      for (const f of files) this.cache.set(f.path, f);
      for (const m of missing) {
        this.cache.set(m.path, null);
        this.log.warn('allowlisted file not found: entries for it are skipped until it appears', { path: m.path, reason: m.reason });
      }
    }
    return paths.map((p) => this.cache.get(p)).filter((f): f is ResolvedFile => f !== undefined && f !== null);
  }

  forget(path: string): void {
    this.cache.delete(path);
  }
}

export async function compilePolicy(policy: EffectivePolicy, identities: IdentityResolver): Promise<UidPolicy> {
  return {
    modes: policy.modes,
    suidAllow: policy.modes.suidexec === 'off' ? [] : await identities.resolve(policy.suidexecAllow),
    sshClients: policy.modes.sshlisteners === 'off' ? [] : await identities.resolve(policy.sshClients),
    connectDefault: policy.connectDefault,
    connectRules: policy.connectRules.map((r) => ({ cidr: parseCidr(r.cidr), verdict: r.verdict })),
  };
}

/**
 * Watches the directories of allowlisted files (inotify through fs.watch) and reports, debounced, the
 * paths whose directory entry changed: created, replaced by rename, or removed.
 */
export class FileWatcher {
  private readonly watchers = new Map<string, FSWatcher>();
  private readonly changed = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private watched = new Set<string>();

  constructor(
    private readonly onChange: (paths: string[]) => void,
    private readonly log: Logger,
    private readonly debounceMs = 200,
  ) {}

  watchPaths(paths: Iterable<string>): void {
    this.watched = new Set(paths);
    const dirs = new Set([...this.watched].map((p) => dirname(p)));
    for (const [dir, w] of this.watchers) {
      if (!dirs.has(dir)) {
        w.close();
        this.watchers.delete(dir);
      }
    }
    for (const dir of dirs) {
      if (this.watchers.has(dir)) continue;
      try {
        const w = watch(dir, { persistent: false }, (_event, name) => this.noteChange(dir, name));
        w.on('error', (err) => this.log.warn('cannot watch directory of allowlisted files', { dir, error: err.message }));
        this.watchers.set(dir, w);
      } catch (err) {
        this.log.warn('cannot watch directory of allowlisted files', { dir, error: (err as Error).message });
      }
    }
  }

  private noteChange(dir: string, name: string | Buffer | null): void {
    const file = name === null ? null : String(name);
    for (const path of this.watched) {
      if (dirname(path) === dir && (file === null || basename(path) === file)) this.changed.add(path);
    }
    if (this.changed.size === 0 || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const paths = [...this.changed];
      this.changed.clear();
      this.onChange(paths);
    }, this.debounceMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }
}
