/**
 * The agent process's own metrics (CPU, memory, file descriptors, event-loop lag), all read at scrape
 * time. prom-client's default metrics are not used: their event-loop histogram samples on a timer, which
 * wakes an otherwise idle agent several times a second on every compute node, time taken from the job's
 * CPUs (HPC codes that synchronise often feel such noise). Between two events and two scrapes, the
 * agent sleeps.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { Gauge, type Registry } from 'prom-client';
import { mirrorCounter } from './mirror.js';

const PREFIX = 'krsi_agent_';

function gauge(registry: Registry, name: string, help: string, read: () => number | Promise<number> | null): void {
  new Gauge({
    name: PREFIX + name,
    help,
    registers: [registry],
    async collect() {
      const value = await read();
      if (value !== null) this.set(value);
    },
  });
}

/** The soft limit on open files, from /proc/self/limits ("Max open files  1024  4096  files"). */
function maxOpenFiles(): number | null {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'));
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
  return soft === undefined || soft === 'unlimited' ? null : Number(soft);
}

/** Virtual memory size in bytes (/proc/self/status VmSize, in kB). */
function virtualMemoryBytes(): number | null {
  const m = /^VmSize:\s+(\d+) kB$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : null;
}

/** How long a callback queued now waits for the event loop: the lag a request or an event meets. */
function eventLoopLagSeconds(): Promise<number> {
  const start = process.hrtime.bigint();
  return new Promise((resolve) => setImmediate(() => resolve(Number(process.hrtime.bigint() - start) / 1e9)));
}

export function registerProcessMetrics(registry: Registry): void {
  const startTime = Math.round((Date.now() - process.uptime() * 1000) / 1000);
  const cpu = (name: string, help: string, seconds: (usage: NodeJS.CpuUsage) => number) =>
    mirrorCounter(registry, PREFIX + name, help, [] as const, () => [{ labels: {}, value: seconds(process.cpuUsage()) }]);
  cpu('process_cpu_user_seconds_total', 'User CPU time the agent process spent, in seconds.', (u) => u.user / 1e6);
  cpu('process_cpu_system_seconds_total', 'System CPU time the agent process spent, in seconds.', (u) => u.system / 1e6);
  cpu('process_cpu_seconds_total', 'User and system CPU time the agent process spent, in seconds.', (u) => (u.user + u.system) / 1e6);
  gauge(registry, 'process_start_time_seconds', 'When the agent process started, in seconds since the Unix epoch.', () => startTime);
  gauge(registry, 'process_resident_memory_bytes', 'Resident memory of the agent process, in bytes.', () => process.memoryUsage.rss());
  gauge(registry, 'process_virtual_memory_bytes', 'Virtual memory of the agent process, in bytes.', virtualMemoryBytes);
  gauge(registry, 'process_open_fds', 'File descriptors the agent process holds open.', () => readdirSync('/proc/self/fd').length - 1);
  gauge(registry, 'process_max_fds', 'The agent process\'s limit on open file descriptors (soft).', maxOpenFiles);
  gauge(registry, 'nodejs_heap_size_total_bytes', 'V8 heap the agent process has reserved, in bytes.', () => process.memoryUsage().heapTotal);
  gauge(registry, 'nodejs_heap_size_used_bytes', 'V8 heap the agent process uses, in bytes.', () => process.memoryUsage().heapUsed);
  gauge(registry, 'nodejs_external_memory_bytes', 'Memory of the agent process\'s buffers outside the V8 heap, in bytes.', () => process.memoryUsage().external);
  gauge(registry, 'nodejs_eventloop_lag_seconds', 'At the scrape: how long a callback queued then waited for the agent\'s event loop, in seconds.', eventLoopLagSeconds);
}
