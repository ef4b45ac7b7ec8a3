/**
 * The alert rules and the dashboard (deploy/prometheus, deploy/grafana): promtool checks the rules and
 * runs their tests, every dashboard expression parses, and every metric either names is one the agent's
 * metrics module exports. (test/kernel/agent.spec.ts checks the same names against the real agent.)
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { POLICIES } from '../../../agent/enforcement/layout.js';
import { createMetrics, type MetricsSource } from '../../../agent/metrics/metrics.js';
import { DASHBOARD, RULES, RULES_TEST, dashboardExprs, exportedNames, metricNamesUsed, unknownMetrics } from '../../monitoring/names.js';

async function promtool(args: string[]): Promise<{ exitCode: number; output: string }> {
  try {
    const r = await execa('promtool', args, { reject: false, all: true });
    return { exitCode: r.exitCode ?? 1, output: r.all ?? '' };
  } catch (err) {
    throw new Error(`promtool cannot run (${(err as Error).message}): install Debian's prometheus package (npm run setup does)`);
  }
}

/** the agent's metrics as it exposes them, over a source with one job and one observation */
async function agentExposition(): Promise<string> {
  const zero = { deny: 0n, audit: 0n, dropped: 0n, folded: 0n };
  const source: MetricsSource = {
    kernelCounters: () => Object.fromEntries(POLICIES.map((p) => [p, zero])) as ReturnType<MetricsSource['kernelCounters']>,
    logged: () => 0,
    repeatsLogged: () => 0,
    jobs: () => 1,
    uidsUnderPolicy: () => 1,
    programsAttached: () => 14,
    programsExpected: () => 14,
    reconciled: () => 0,
    slurmViewUnreadable: () => false,
    jobsUnverified: () => 0,
    slurmctldUnanswered: () => false,
    malformedRecords: () => 0,
    programStats: () => [{ program: 'krsi_file_open', runs: 1n, runTimeNs: 100n }],
    lastReloadSucceeded: () => true,
    journalUnsent: () => 0,
  };
  const metrics = createMetrics(source, { version: 'test', buildId: 'test', kernel: 'test' });
  metrics.observeApply(0.0005);
  return metrics.registry.metrics();
}

describe('monitoring: alert rules and dashboard', function () {
  this.timeout(30_000);
  const dir = mkdtempSync(join(tmpdir(), 'krsi-monitoring-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('promtool check rules accepts the rules', async () => {
    const r = await promtool(['check', 'rules', RULES]);
    expect(r.exitCode, r.output).to.equal(0);
    expect(r.output).to.match(/SUCCESS: \d+ rules found/);
  });

  it('promtool test rules: every alert fires on its fault and stays quiet on a healthy node', async () => {
    const r = await promtool(['test', 'rules', RULES_TEST]);
    expect(r.exitCode, r.output).to.equal(0);
    expect(r.output).to.include('SUCCESS');
    const rules = (await promtool(['check', 'rules', RULES])).output;
    const alerts = Number(/SUCCESS: (\d+) rules found/.exec(rules)?.[1]);
    const tested = new Set([...readFileSync(RULES_TEST, 'utf8').matchAll(/alertname: (\w+)/g)].map((m) => m[1]));
    expect(tested.size, `alerts tested: ${[...tested].join(', ')}`).to.equal(alerts);
  });

  it('every dashboard expression is valid PromQL (promtool parses them as recording rules)', async () => {
    const exprs = dashboardExprs();
    expect(exprs.length).to.be.greaterThan(10);
    // Grafana's variables, as Grafana would fill them in
    const rules = exprs.map(({ expr }, i) => `      - record: dashboard:expr${i}\n        expr: ${JSON.stringify(expr.replaceAll('$__rate_interval', '5m').replaceAll('$instance', '.*'))}`);
    const file = join(dir, 'dashboard-exprs.yml');
    writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${rules.join('\n')}\n`);
    const r = await promtool(['check', 'rules', file]);
    expect(r.exitCode, r.output).to.equal(0);
  });

  it('the dashboard shows decisions, drops, jobs and uids, apply latency and agent memory', () => {
    const used = metricNamesUsed();
    for (const name of [
      'krsi_decisions_total', 'krsi_events_dropped_total', 'krsi_jobs', 'krsi_uids_under_policy',
      'krsi_policy_apply_duration_seconds_bucket', 'krsi_agent_process_resident_memory_bytes',
    ]) {
      expect(used.get(name)?.some((w) => w.startsWith('dashboard')), `${name} in ${DASHBOARD}`).to.equal(true);
    }
  });

  it('every metric the rules and the dashboard name is one the agent exports', async () => {
    const exposition = await agentExposition();
    expect(exportedNames(exposition)).to.include.members(['krsi_programs_expected', 'krsi_config_last_reload_successful', 'krsi_policy_apply_duration_seconds_bucket']);
    expect(metricNamesUsed().size).to.be.greaterThan(10);
    expect(unknownMetrics(exposition)).to.deep.equal([]);
    // and the check can fail: a name the agent does not export is reported with where it is used
    expect(unknownMetrics(exposition.replace(/^# TYPE krsi_jobs gauge$/m, ''))).to.deep.equal(
      [`krsi_jobs (${metricNamesUsed().get('krsi_jobs')!.join(', ')})`],
    );
  });
});
