/**
 * Kernel events to their three destinations: one key=value line in the event log file and either on
 * stdout or, under systemd, into the journal with fields of their own (agent/log/journal.ts), and a
 * bounded in-memory window for GET /v1/events. Each event gets a sequence number; the
 * agent counts what it logged per policy and decision, and the folded repeats its lines reported, so that
 * logged + folded + dropped can be checked against the kernel's own decision counters.
 *
 * This runs once per kernel event, at tens of thousands of events per second under a flood, so nothing
 * made for one event outlives it by much. The window keeps each event as its raw ring-buffer record (in one
 * preallocated buffer) with its time and job, and rebuilds the record and its line only when GET
 * /v1/events asks; the lines go out in chunks of a few hundred with synchronous writes. Per-event objects
 * kept for longer (an object and a line per event in the window, or strings queued in a write stream)
 * survive the young-generation collections and get copied into the old generation, and collecting them
 * there was half of the agent's time under a flood.
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import { DECISIONS, LAYOUT, POLICIES, decodeEvent, type KrsiEvent, type PolicyName } from '../enforcement/layout.js';
import { FdSink, stdoutSink } from '../log/sink.js';
import type { EventRecord, EventsPage } from '../service/types.js';
import type { BootClock } from './clock.js';
import { formatEvent, journalFields } from './format.js';
import { journalEntry } from '../log/journal.js';

export interface EventPipelineOptions {
  clock: BootClock;
  /** job id(s) to attribute an event of this uid to */
  jobOf: (event: KrsiEvent) => string;
  windowSize: number;
  /** event log file, null for none */
  logPath: string | null;
  /** where stdout lines go (default: file descriptor 1, agent/log/sink.ts) */
  writeStdout?: (line: string) => void;
  /**
   * the journal (JournalSocket), when stdout is journald's stream: each event goes there as an entry
   * with its fields, and not to stdout, so that no event is in the journal twice
   */
  journal?: { send(entry: Buffer): boolean } | null;
  /** told once when the log file cannot be written (the lines still go to stdout) */
  onLogFileError?: (err: Error) => void;
  /** told of the first record that cannot be read after a good one (it is counted and skipped) */
  onBadRecord?: (err: Error) => void;
}

/** lines written together: small enough that they die young, large enough that writes are few */
const LINES_PER_WRITE = 256;
const RECORD_SIZE = LAYOUT.krsi_event.size;

export class EventPipeline {
  /** the window: the raw records of the most recent events, slot = seq % windowSize; seqs are contiguous */
  private readonly windowRecords: Buffer;
  /** wall-clock ms of each window slot's event */
  private readonly windowMs: Float64Array;
  /** job id(s) of each window slot's event (strings shared between events of a uid, not one per event) */
  private readonly windowJobs: string[];
  /** the uid of each window slot's event, so that a user's view of the window decodes only its own */
  private readonly windowUids: Uint32Array;
  private seq = 0;
  private fd: number | null = null;
  private file: FdSink | null = null;
  private readonly writeStdout: (lines: string[]) => void;
  /** lines not written yet: written together once the current batch of events is handled */
  private pending: string[] = [];
  private flushScheduled: NodeJS.Immediate | null = null;
  /** events logged by this agent process, [policy index * 2 + decision index] */
  private readonly loggedCounts = new Float64Array(POLICIES.length * DECISIONS.length);
  /** folded decisions the logged lines reported (repeats=), per policy index */
  private readonly repeatCounts = new Float64Array(POLICIES.length);
  /** the ISO text of the last event's millisecond: a flood has many events per millisecond */
  private lastMs = NaN;
  private lastIso = '';
  private malformed = 0;
  private lastWasBad = false;

  constructor(private opts: EventPipelineOptions) {
    const perLine = opts.writeStdout;
    this.writeStdout = opts.journal ? () => undefined
      : perLine ? (lines) => lines.forEach((l) => perLine(l)) : (lines) => void stdoutSink.put(`${lines.join('\n')}\n`);
    this.windowRecords = Buffer.alloc(opts.windowSize * RECORD_SIZE);
    this.windowMs = new Float64Array(opts.windowSize);
    this.windowJobs = new Array<string>(opts.windowSize).fill('');
    this.windowUids = new Uint32Array(opts.windowSize);
    this.openFile();
  }

  private openFile(): void {
    if (!this.opts.logPath) return;
    mkdirSync(dirname(this.opts.logPath), { recursive: true, mode: 0o750 });
    this.fd = openSync(this.opts.logPath, 'a', 0o640);
    // synchronous writes: they go to the page cache, and a slow disk slows the reader instead of queueing
    // lines in memory without bound (the ring buffer then holds them, or counts them dropped). A full or
    // failing disk must stop neither enforcement nor the lines to stdout: said once per failure spell
    this.file = new FdSink(this.fd, (err) => this.opts.onLogFileError?.(err));
  }

  /**
   * Reopen the log file (after logrotate moved it), or open another one (event_log changed on reload);
   * a failure is reported, and lines go on to stdout.
   */
  reopen(logPath: string | null = this.opts.logPath): void {
    this.flush();
    this.opts = { ...this.opts, logPath };
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    this.file = null;
    try {
      this.openFile();
    } catch (err) {
      this.opts.onLogFileError?.(err as Error);
    }
  }

  private isoOf(ms: number): string {
    if (ms !== this.lastMs) {
      this.lastMs = ms;
      this.lastIso = new Date(ms).toISOString();
    }
    return this.lastIso;
  }

  /**
   * One raw ring-buffer record (struct krsi_event); returns its sequence number, or 0 for a record that
   * cannot be read. Such a record is counted and skipped: an exception here would stop the ring buffer's
   * reader, and every later event with it.
   */
  handle(raw: Buffer): number {
    let event: KrsiEvent;
    try {
      event = decodeEvent(raw);
      if (!POLICIES.includes(event.policy) || !DECISIONS.includes(event.decision)) throw new Error(`record with policy ${event.policy}, decision ${event.decision}`);
    } catch (err) {
      this.malformed++;
      if (!this.lastWasBad) this.opts.onBadRecord?.(err as Error);
      this.lastWasBad = true;
      return 0;
    }
    this.lastWasBad = false;
    const ms = this.opts.clock.toMs(event.bootNs);
    const job = this.opts.jobOf(event);
    const seq = ++this.seq;
    const slot = seq % this.windowMs.length;
    raw.copy(this.windowRecords, slot * RECORD_SIZE, 0, RECORD_SIZE);
    this.windowMs[slot] = ms;
    this.windowJobs[slot] = job;
    this.windowUids[slot] = event.uid;
    const policy = POLICIES.indexOf(event.policy);
    this.loggedCounts[policy * DECISIONS.length + DECISIONS.indexOf(event.decision)]! += 1;
    this.repeatCounts[policy]! += event.repeats;
    const line = formatEvent(event, { time: this.isoOf(ms), job });
    // the journal takes one datagram per event, and never makes the agent wait (unsent ones are counted)
    this.opts.journal?.send(journalEntry(journalFields(event, line, job)));
    // one write per chunk of lines, not per event: the ring buffer delivers events in batches under load
    this.pending.push(line);
    if (this.pending.length >= LINES_PER_WRITE) this.flush();
    else this.flushScheduled ??= setImmediate(() => this.flush());
    return seq;
  }

  /** write the lines of the events handled so far to stdout and the log file */
  flush(): void {
    if (this.flushScheduled) clearImmediate(this.flushScheduled);
    this.flushScheduled = null;
    if (this.pending.length === 0) return;
    const lines = this.pending;
    this.pending = [];
    this.writeStdout(lines);
    this.file?.put(`${lines.join('\n')}\n`);
  }

  /** records that could not be read and were skipped */
  malformedCount(): number {
    return this.malformed;
  }

  loggedCount(policy?: PolicyName, decision?: 'deny' | 'audit'): number {
    let n = 0;
    POLICIES.forEach((p, pi) => DECISIONS.forEach((d, di) => {
      if ((policy === undefined || p === policy) && (decision === undefined || d === decision)) n += this.loggedCounts[pi * DECISIONS.length + di]!;
    }));
    return n;
  }

  /**
   * folded decisions that the lines logged so far reported as repeats=; the kernel's folded counter minus
   * this is what waits for its action's next line (or, if the action never comes back, only the counter has)
   */
  repeatsLogged(policy?: PolicyName): number {
    let n = 0;
    POLICIES.forEach((p, pi) => {
      if (policy === undefined || p === policy) n += this.repeatCounts[pi]!;
    });
    return n;
  }

  /** the window slot of `seq`, rebuilt as the API's record with the exact line that was logged */
  private record(seq: number): EventRecord {
    const slot = seq % this.windowMs.length;
    const event = decodeEvent(this.windowRecords.subarray(slot * RECORD_SIZE, (slot + 1) * RECORD_SIZE));
    const time = new Date(this.windowMs[slot]!).toISOString();
    const job = this.windowJobs[slot]!;
    return {
      seq,
      time,
      type: event.type,
      policy: event.policy,
      decision: event.decision,
      uid: event.uid,
      gid: event.gid,
      pid: event.pid,
      comm: event.comm,
      repeats: event.repeats,
      job,
      line: formatEvent(event, { time, job }),
    };
  }

  /**
   * The events after `sinceAsked`, at most `limit`; with `uid`, only that uid's, and `next` past the
   * other uids' events looked at, so that a user's cursor moves on through them.
   */
  page(sinceAsked: number, limit: number, uid?: number): EventsPage {
    // a cursor from before an agent restart (numbers start again at 1): start from the oldest kept
    const since = sinceAsked > this.seq ? 0 : sinceAsked;
    const oldest = Math.max(1, this.seq - this.windowMs.length + 1);
    const events: EventRecord[] = [];
    let seq = Math.max(since + 1, oldest);
    for (; seq <= this.seq && events.length < limit; seq++) {
      if (uid === undefined || this.windowUids[seq % this.windowMs.length] === uid) events.push(this.record(seq));
    }
    // the last sequence number looked at: the last event returned, or the newest one
    const next = Math.max(since, seq - 1);
    return { events, next, missed: uid === undefined ? Math.max(0, oldest - since - 1) : 0 };
  }

  async close(): Promise<void> {
    this.flush();
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    this.file = null;
  }
}
