/**
 * What the systemd specs ask systemd and journald: unit properties, the agent's journal, and waits on
 * units, always through the real systemctl and journalctl of the VM's PID 1.
 */
import { execa } from 'execa';
import { waitFor } from '../vm/pace.js';

/** `systemctl show UNIT -p ...` as name -> value; timestamps in microseconds since the epoch (UTC) */
export async function unitProps(unit: string, props: readonly string[]): Promise<Record<string, string>> {
  const r = await execa('systemctl', ['show', unit, '--timestamp=us+utc', ...props.flatMap((p) => ['-p', p])]);
  const out: Record<string, string> = {};
  for (const line of r.stdout.split('\n')) {
    const at = line.indexOf('=');
    if (at > 0) out[line.slice(0, at)] = line.slice(at + 1);
  }
  return out;
}

/** a systemd timestamp property ("Mon 2026-11-30 03:10:00.123456 UTC") in microseconds since the epoch */
export function timestampUs(value: string | undefined): number {
  const m = /^\w{3} (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)\.(\d{6}) UTC$/.exec(value ?? '');
  if (!m) throw new Error(`not a systemd timestamp with microseconds: ${JSON.stringify(value)}`);
  return Date.parse(`${m[1]}T${m[2]}Z`) * 1000 + Number(m[3]);
}

export async function systemctl(...args: string[]): Promise<void> {
  const r = await execa('systemctl', args, { reject: false, all: true });
  if (r.exitCode !== 0) throw new Error(`systemctl ${args.join(' ')} failed (${r.exitCode}): ${r.all}\n${await journalTail(args.at(-1) ?? '')}`);
}

/** the last lines of a unit's journal of this boot, for failure messages */
export async function journalTail(unit: string, lines = 40): Promise<string> {
  const r = await execa('journalctl', ['-b', '-u', unit, '-n', String(lines), '--no-pager', '-o', 'short-precise'], { reject: false });
  return `----- journal of ${unit} -----\n${r.stdout}`;
}

export interface JournalEntry {
  message: string;
  pid: number;
  /** microseconds since the epoch, when journald received it */
  realtimeUs: number;
}

/** a unit's journal entries of this boot */
export async function journal(unit: string): Promise<JournalEntry[]> {
  const r = await execa('journalctl', ['-b', '-u', unit, '-o', 'json', '--no-pager'], { reject: false, maxBuffer: 256 << 20 });
  return r.stdout.split('\n').filter(Boolean).map((line) => {
    const e = JSON.parse(line) as Record<string, unknown>;
    // journald gives a message with bytes outside UTF-8 as an array of numbers
    const message = Array.isArray(e.MESSAGE) ? Buffer.from(e.MESSAGE as number[]).toString('utf8') : String(e.MESSAGE ?? '');
    return { message, pid: Number(e._PID ?? 0), realtimeUs: Number(e.__REALTIME_TIMESTAMP ?? 0) };
  });
}

/** the ts= a line of the agent's own log carries (agent/log/logger.ts), in microseconds since the epoch */
export function logLineUs(message: string): number {
  const m = /^ts=(\S+) /.exec(message);
  if (!m) throw new Error(`not an agent log line: ${message}`);
  return Date.parse(m[1]!) * 1000;
}

/** wait until a unit is active (and, for a service, running its main process); the failure shows its journal */
export async function waitActive(unit: string, timeoutMs = 180_000): Promise<Record<string, string>> {
  let props: Record<string, string> = {};
  return waitFor(`${unit} to be active`, async () => {
    props = await unitProps(unit, ['ActiveState', 'SubState', 'Result', 'MainPID', 'NRestarts']);
    if (props.ActiveState === 'failed') throw new Error(`${unit} failed (${props.Result}):\n${await journalTail(unit)}`);
    return props.ActiveState === 'active' && props;
  }, { timeoutMs, intervalMs: 250, detail: async () => `${JSON.stringify(props)}\n${await journalTail(unit)}` });
}
