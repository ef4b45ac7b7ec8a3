import { expect } from 'chai';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JobFile } from '../../../agent/service/job-store.js';
import { JobTable } from '../../../agent/service/job-table.js';
import type { JobRecord } from '../../../agent/service/types.js';

const job = (jobId: string, uid: number): JobRecord => ({
  jobId, uid, user: null, requested: null, profiles: ['default'], unknownProfile: null, addedAt: '2026-11-30T10:00:00.000Z', registration: `r-${jobId}`, bootId: 'b', node: null,
});

describe('job table on disk (JobFile) and in memory (JobTable)', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'krsi-jobs-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('persists and reloads the same jobs', () => {
    const t = new JobTable(new JobFile(join(dir, 'state')));
    t.load();
    expect(t.size).to.equal(0);
    t.commit({ set: [job('42', 1000), job('43_1', 1000)] });
    const again = new JobTable(new JobFile(join(dir, 'state')));
    again.load();
    expect(again.all()).to.deep.equal(t.all());
  });

  it('a short write is never renamed into place: the old table stays, the temporary file goes', () => {
    const good = new JobFile(dir);
    good.save([job('1', 1000)]);
    const before = readFileSync(good.path, 'utf8');
    // write(2) taking 10 bytes, then nothing (a full disk)
    let calls = 0;
    const short = new JobFile(dir, { writeSync: () => (calls++ === 0 ? 10 : 0) });
    expect(() => short.save([job('1', 1000), job('2', 1001)])).to.throw(/the write stopped after 10 of \d+ bytes/);
    expect(readFileSync(good.path, 'utf8')).to.equal(before);
    expect(existsSync(`${good.path}.tmp`)).to.equal(false);
  });

  it('a write in several pieces is complete', () => {
    const pieces = new JobFile(dir, { writeSync: (fd, buf, off) => writeAtMost(fd, buf, off, 7) });
    pieces.save([job('1', 1000), job('2', 1001)]);
    expect(new JobFile(dir).load().map((j) => j.jobId)).to.deep.equal(['1', '2']);
  });

  it('a failed save leaves the table in memory as it was (no phantom job)', () => {
    let fail = false;
    const file = new JobFile(dir);
    const t = new JobTable({ path: file.path, load: () => file.load(), save: (jobs) => { if (fail) throw new Error('EIO'); file.save(jobs); } });
    t.commit({ set: [job('1', 1000)] });
    fail = true;
    expect(() => t.commit({ set: [job('2', 1000)], remove: ['1'] })).to.throw('EIO');
    expect(t.all().map((j) => j.jobId)).to.deep.equal(['1']);
    expect(t.jobIdsOfUid(1000)).to.equal('1');
  });

  it('reads a version-1 table, giving every job a registration and no boot', () => {
    writeFileSync(join(dir, 'jobs.json'), JSON.stringify({ version: 1, jobs: [{ jobId: '5', uid: 1000, user: null, requested: null, profiles: ['default'], unknownProfile: null, addedAt: 'x' }] }));
    const [j] = new JobFile(dir).load();
    expect(j).to.deep.include({ jobId: '5', bootId: null });
    expect(j!.registration).to.match(/^[0-9a-f-]{36}$/);
  });

  it('refuses a corrupt table with an error naming the file', () => {
    const f = new JobFile(dir);
    writeFileSync(f.path, '{"version":2,"jobs":[');
    expect(() => f.load()).to.throw(f.path);
  });
});

/** write at most `max` bytes, as write(2) may */
function writeAtMost(fd: number, buf: Buffer, off: number, max: number): number {
  return writeSync(fd, buf, off, Math.min(max, buf.length - off));
}
