/**
 * mirrorCounter: a Prometheus counter that follows a value the kernel or the process keeps (program runs
 * and run time, CPU seconds). What a scrape exposes must never go down, even when the source is reset.
 */
import { expect } from 'chai';
import { Registry } from 'prom-client';
import { mirrorCounter } from '../../../agent/metrics/mirror.js';

describe('mirrorCounter', () => {
  /** registers one counter on `source` and returns a scrape: label value → exposed value */
  function mirrored(source: Map<string, number>): () => Promise<Map<string, number>> {
    const registry = new Registry();
    mirrorCounter(registry, 'test_runs_total', 'Runs.', ['program'] as const,
      () => [...source].map(([program, value]) => ({ labels: { program }, value })));
    return async () => {
      const out = new Map<string, number>();
      for (const m of (await registry.metrics()).matchAll(/^test_runs_total\{program="([^"]+)"\} (\S+)$/gm)) out.set(m[1]!, Number(m[2]));
      return out;
    };
  }

  it('exposes the source\'s value, each label on its own', async () => {
    const source = new Map([['a', 5], ['b', 0]]);
    const scrape = mirrored(source);
    expect(await scrape()).to.deep.equal(new Map([['a', 5], ['b', 0]]));
    source.set('a', 8).set('b', 2);
    expect(await scrape()).to.deep.equal(new Map([['a', 8], ['b', 2]]));
    // an unchanged source adds nothing
    expect(await scrape()).to.deep.equal(new Map([['a', 8], ['b', 2]]));
  });

  it('keeps growing when the source is reset (programs re-pinned): the new value counts from zero', async () => {
    const source = new Map([['a', 8]]);
    const scrape = mirrored(source);
    await scrape();
    source.set('a', 3); // reset, then 3 more runs
    expect((await scrape()).get('a')).to.equal(11);
    source.set('a', 4);
    expect((await scrape()).get('a')).to.equal(12);
  });
});
