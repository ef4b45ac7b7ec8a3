/**
 * The agent process's own metrics: read at scrape time from this process, with no timer of their own
 * (an idle agent must not wake up for its metrics: on a compute node that is time taken from the job).
 */
import { expect } from 'chai';
import { readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { Registry } from 'prom-client';
import { registerProcessMetrics } from '../../../agent/metrics/process.js';
import { mainThreadWakeups } from '../wakeups.js';

/** name → value of each unlabelled sample in an exposition */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([a-z_]+) (\S+)$/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

describe('process metrics', () => {
  it('reports this process: CPU, memory, descriptors, start time and event-loop lag', async () => {
    const registry = new Registry();
    registerProcessMetrics(registry);
    const first = samples(await registry.metrics());
    const rss = process.memoryUsage.rss();
    expect(first.get('krsi_agent_process_resident_memory_bytes')).to.be.within(rss / 2, rss * 2);
    expect(first.get('krsi_agent_process_virtual_memory_bytes')).to.be.greaterThan(rss);
    expect(first.get('krsi_agent_nodejs_heap_size_used_bytes')).to.be.within(1, first.get('krsi_agent_nodejs_heap_size_total_bytes')!);
    expect(first.get('krsi_agent_nodejs_external_memory_bytes')).to.be.greaterThan(0);
    // the directory listing's own descriptor is not counted
    const fds = readdirSync('/proc/self/fd').length - 1;
    expect(first.get('krsi_agent_process_open_fds')).to.be.within(fds - 3, fds + 3);
    const softLimit = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
    if (softLimit === 'unlimited') expect(first.has('krsi_agent_process_max_fds')).to.equal(false);
    else expect(first.get('krsi_agent_process_max_fds')).to.equal(Number(softLimit));
    const started = first.get('krsi_agent_process_start_time_seconds')!;
    expect(started).to.be.within(Date.now() / 1000 - process.uptime() - 2, Date.now() / 1000);
    expect(first.get('krsi_agent_nodejs_eventloop_lag_seconds')).to.be.within(0, 5);

    // CPU time is cumulative: it grows with work, and user + system make the total
    const spin = Date.now() + 200;
    while (Date.now() < spin) Math.sqrt(Math.random());
    const second = samples(await registry.metrics());
    const cpu = (m: Map<string, number>): number => m.get('krsi_agent_process_cpu_seconds_total')!;
    expect(cpu(second) - cpu(first)).to.be.greaterThan(0.1);
    const parts = second.get('krsi_agent_process_cpu_user_seconds_total')! + second.get('krsi_agent_process_cpu_system_seconds_total')!;
    expect(Math.abs(parts - cpu(second))).to.be.lessThan(0.05);
  });

  it('make no wakeups between scrapes: an idle process sleeps through them', async function () {
    this.timeout(20_000);
    const registry = new Registry();
    registerProcessMetrics(registry);
    await registry.metrics();
    // The main thread's voluntary context switches count its wakeups: over 2 s of a single timer it wakes
    // about once. prom-client's default metrics, whose event-loop histogram samples every 250 ms even at
    // their coarsest setting here, made it 9.
    const wakeups = mainThreadWakeups();
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect(wakeups()).to.be.at.most(3);
  });
});
