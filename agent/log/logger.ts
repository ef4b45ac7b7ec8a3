/**
 * The agent's own log: one key=value line per message on stdout (journald adds the rest; written as
 * agent/log/sink.ts says, so that a stdout that fails cannot end the agent), prefixed with
 * the component that speaks. Values are quoted like event-log values, so a hostile string in a message
 * cannot forge a field or a line.
 */
import { logValue } from '../events/format.js';
import { stdoutSink } from './sink.js';

export type Level = 'debug' | 'info' | 'warn' | 'error';
export type Fields = Record<string, string | number | bigint | boolean | null | undefined>;

export interface Logger {
  debug(msg: string, fields?: Fields): void;
  info(msg: string, fields?: Fields): void;
  warn(msg: string, fields?: Fields): void;
  error(msg: string, fields?: Fields): void;
  child(component: string): Logger;
}

export function formatLogLine(level: Level, component: string, msg: string, fields: Fields = {}): string {
  const parts = [`ts=${new Date().toISOString()}`, `level=${level}`, `component=${logValue(component)}`, `msg=${logValue(msg)}`];
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined || v === null) continue;
    parts.push(`${k}=${logValue(typeof v === 'boolean' ? String(v) : v)}`);
  }
  return parts.join(' ');
}

export function createLogger(opts: { component?: string; write?: (line: string) => void; debug?: boolean } = {}): Logger {
  const write = opts.write ?? ((line: string) => void stdoutSink.put(`${line}\n`));
  const component = opts.component ?? 'krsi-agent';
  const emit = (level: Level) => (msg: string, fields?: Fields) => {
    if (level === 'debug' && !opts.debug) return;
    write(formatLogLine(level, component, msg, fields));
  };
  return {
    debug: emit('debug'),
    info: emit('info'),
    warn: emit('warn'),
    error: emit('error'),
    child: (sub) => createLogger({ ...opts, write, component: `${component}.${sub}` }),
  };
}

/** a logger that keeps lines in memory, for tests */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return Object.assign(createLogger({ write: (l) => lines.push(l), debug: true }), { lines });
}
