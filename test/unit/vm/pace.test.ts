// Deadlines of the VM tests (test/vm/pace.ts): scaled by the run's pace, failures that name their condition.
import assert from 'node:assert/strict';

import { PACE_ENV, pace, scaled, waitFor, WaitTimeout, withDeadline } from '../../vm/pace.js';

describe('VM test deadlines (pace.ts)', () => {
  const saved = process.env[PACE_ENV];
  afterEach(() => {
    if (saved === undefined) delete process.env[PACE_ENV];
    else process.env[PACE_ENV] = saved;
  });

  it('stretches base deadlines by the measured pace, never shrinks them', () => {
    process.env[PACE_ENV] = '2.5';
    assert.equal(pace(), 2.5);
    assert.equal(scaled(1000), 2500);
    for (const value of ['0.4', 'fast', '', '-3']) {
      process.env[PACE_ENV] = value;
      assert.equal(scaled(1000), 1000, value);
    }
    delete process.env[PACE_ENV];
    assert.equal(scaled(1000), 1000);
  });

  it('waitFor returns the first value that is not undefined or false', async () => {
    let calls = 0;
    const value = await waitFor('the third call', () => (++calls === 3 ? `call ${calls}` : false), { intervalMs: 1 });
    assert.equal(value, 'call 3');
  });

  it('waitFor fails naming what it waited for, with the detail', async () => {
    await assert.rejects(
      waitFor('the moon to turn blue', () => false, { timeoutMs: 30, intervalMs: 5, detail: () => 'still grey' }),
      (err: Error) => err instanceof WaitTimeout && /waiting for: the moon to turn blue\nstill grey$/.test(err.message),
    );
  });

  it('waitFor passes on an error thrown by the check (a condition that can no longer hold)', async () => {
    await assert.rejects(waitFor('never', () => { throw new Error('the agent exited'); }), /the agent exited/);
  });

  it('withDeadline fails naming the work and how far it got, and lets work that finishes in time through', async () => {
    assert.equal(await withDeadline('quick work', 1000, Promise.resolve(7)), 7);
    await assert.rejects(
      withDeadline('64 prologs', 20, new Promise(() => undefined), () => '10 of 64 done'),
      /timed out after 0 s waiting for: 64 prologs \(10 of 64 done\)/,
    );
  });
});
