// libbpf's log, captured into JS. libbpf prints through one process-wide callback (libbpf_set_print);
// every line is kept in a bounded ring of recent lines, passed to the user's handler if one is set, and
// collected in full by each operation in progress so that its error can carry the whole log (the verifier
// log of a failed load can run to thousands of lines).

export type LibbpfLogLevel = 'warn' | 'info' | 'debug';
export type LibbpfLogHandler = (level: LibbpfLogLevel, line: string) => void;

export interface LogLine {
  readonly level: LibbpfLogLevel;
  readonly line: string;
}

/** How many recent lines `recentLibbpfLog()` keeps. */
export const RECENT_LOG_LINES = 2000;

const LEVELS: readonly LibbpfLogLevel[] = ['warn', 'info', 'debug'];

let handler: LibbpfLogHandler | null = null;
const recent: (LogLine | undefined)[] = new Array<LogLine | undefined>(RECENT_LOG_LINES);
let recentNext = 0;
let recentCount = 0;
const collectors = new Set<LogLine[]>();
// libbpf sometimes prints one line in several calls; hold the unterminated tail until its newline comes
let partial: { level: LibbpfLogLevel; text: string } | null = null;

/**
 * Send every libbpf log line to `fn` (or nowhere, with `null`). Lines have no trailing newline and keep
 * libbpf's own "libbpf: " prefix. The handler runs inside a libbpf call: it must not call back into libbpf.
 * Capture for errors and `recentLibbpfLog()` happens whether or not a handler is set.
 */
export function setLibbpfLogHandler(fn: LibbpfLogHandler | null): void {
  handler = fn;
}

/** The most recent libbpf log lines (up to RECENT_LOG_LINES), oldest first. */
export function recentLibbpfLog(): LogLine[] {
  const out: LogLine[] = [];
  const start = (recentNext - recentCount + RECENT_LOG_LINES) % RECENT_LOG_LINES;
  for (let i = 0; i < recentCount; i++) {
    const entry = recent[(start + i) % RECENT_LOG_LINES];
    if (entry) out.push(entry);
  }
  return out;
}

/** Called by the libbpf_set_print callback with one formatted message. */
export function onLibbpfPrint(level: number, text: string): void {
  const lvl = LEVELS[level] ?? 'debug';
  let pending = text;
  if (partial) {
    pending = partial.text + pending;
    partial = null;
  }
  const pieces = pending.split('\n');
  const tail = pieces.pop() ?? '';
  for (const line of pieces) emit(lvl, line);
  if (tail !== '') partial = { level: lvl, text: tail };
}

function flushPartial(): void {
  if (partial) {
    const p = partial;
    partial = null;
    emit(p.level, p.text);
  }
}

function emit(level: LibbpfLogLevel, line: string): void {
  const entry: LogLine = { level, line };
  recent[recentNext] = entry;
  recentNext = (recentNext + 1) % RECENT_LOG_LINES;
  if (recentCount < RECENT_LOG_LINES) recentCount++;
  for (const c of collectors) c.push(entry);
  if (handler) {
    try {
      handler(level, line);
    } catch {
      // a throwing handler must not unwind into libbpf
    }
  }
}

/**
 * Run `fn` while collecting every libbpf log line it causes. `fn` receives the live collection (so an error
 * built inside `fn` can carry it). Nested captures each see the lines of their own span.
 */
export function withLogCapture<T>(fn: (log: LogLine[]) => T): T {
  const log: LogLine[] = [];
  collectors.add(log);
  try {
    return fn(log);
  } finally {
    collectors.delete(log);
  }
}

/** Finish a captured span: emit any unterminated line so that it is part of the capture. */
export function flushLibbpfLog(): void {
  flushPartial();
}
