/**
 * The metric names the Prometheus rules and the Grafana dashboard (deploy/) rely on, and the names a
 * /metrics exposition offers: the unit test checks them against the agent's metrics module, the kernel
 * spec against a scrape of the real agent.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../vm/paths.js';

export const RULES = join(repoRoot(), 'deploy', 'prometheus', 'slurm-krsi-rules.yml');
export const RULES_TEST = join(repoRoot(), 'deploy', 'prometheus', 'slurm-krsi-rules.test.yml');
export const DASHBOARD = join(repoRoot(), 'deploy', 'grafana', 'slurm-krsi-dashboard.json');

interface Panel {
  title?: string;
  targets?: { expr?: string }[];
  panels?: Panel[];
}

/** every PromQL expression of the dashboard's panels (rows included), with the panel's title */
export function dashboardExprs(): { panel: string; expr: string }[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] };
  const out: { panel: string; expr: string }[] = [];
  const walk = (panels: Panel[]): void => {
    for (const p of panels) {
      for (const t of p.targets ?? []) if (t.expr !== undefined) out.push({ panel: p.title ?? '?', expr: t.expr });
      walk(p.panels ?? []);
    }
  };
  walk(dashboard.panels);
  return out;
}

const METRIC = /\bkrsi_[a-z0-9_]+/g;

/** the krsi_ metric names in the rules file and the dashboard, each with where it is used */
export function metricNamesUsed(): Map<string, string[]> {
  const used = new Map<string, string[]>();
  const note = (name: string, where: string): void => void used.set(name, [...(used.get(name) ?? []), where]);
  readFileSync(RULES, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      for (const m of line.matchAll(METRIC)) note(m[0], `slurm-krsi-rules.yml:${i + 1}`);
    });
  for (const { panel, expr } of dashboardExprs()) for (const m of expr.matchAll(METRIC)) note(m[0], `dashboard panel "${panel}"`);
  return used;
}

/**
 * The series names a Prometheus text exposition offers, from its # TYPE lines: a histogram is scraped
 * as NAME_bucket, NAME_sum and NAME_count, a summary as NAME, NAME_sum and NAME_count.
 */
export function exportedNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const m of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    const [, name, type] = m as unknown as [string, string, string];
    if (type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
    else if (type === 'summary') for (const s of ['', '_sum', '_count']) names.add(name + s);
    else names.add(name);
  }
  return names;
}

/** names used by the rules or the dashboard that the exposition does not offer, with where each is used */
export function unknownMetrics(exposition: string): string[] {
  const offered = exportedNames(exposition);
  return [...metricNamesUsed()].filter(([name]) => !offered.has(name)).map(([name, where]) => `${name} (${where.join(', ')})`);
}
