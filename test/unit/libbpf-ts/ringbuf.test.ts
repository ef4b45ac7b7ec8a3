import { expect } from 'chai';
import { BpfMap, RingBuffer } from '../../../libbpf-ts/index.js';
import {
  decodeEvent,
  FIXTURE_EVENT_SIZE,
  FIXTURE_MAGIC,
  fixtureConfig,
  getppid,
  loadFixture,
  removeBuildDir,
  sleep,
  u32,
  u64,
  waitFor,
  type LoadedFixture,
} from './helpers.js';

describe('libbpf-ts RingBuffer', function () {
  this.timeout(20000);
  let fx: LoadedFixture;
  let events: BpfMap;
  let rb: RingBuffer | null = null;

  before(function () {
    fx = loadFixture();
    events = fx.obj.map('events');
  });

  after(function () {
    fx?.close();
    removeBuildDir();
  });

  // each test starts from an empty ring, seq 1, and zeroed counters
  beforeEach(function () {
    const drain = new RingBuffer(events, () => undefined);
    while (drain.consume() > 0);
    void drain.close();
    fx.obj.map('config').update(u32(0), fixtureConfig(process.pid, 0n));
    const zeros = Array.from({ length: fx.obj.map('hits').lookupPerCpu(u32(0))?.length ?? 0 }, () => u64(0));
    fx.obj.map('hits').updatePerCpu(u32(0), zeros);
    fx.obj.map('drops').updatePerCpu(u32(0), zeros);
  });

  afterEach(async function () {
    await rb?.close();
    rb = null;
  });

  it('delivers exactly the records triggered, with their contents', async function () {
    const got: Buffer[] = [];
    rb = new RingBuffer(events, (data) => got.push(data));
    rb.start();
    getppid(50);
    await waitFor(() => got.length >= 50, 5000, '50 records');
    await sleep(100); // and nothing more arrives
    expect(got).to.have.length(50);
    expect(rb.records).to.equal(50);
    got.forEach((b, i) => {
      expect(b.length).to.equal(FIXTURE_EVENT_SIZE);
      const e = decodeEvent(b);
      expect(e.magic).to.equal(FIXTURE_MAGIC);
      expect(e.tgid).to.equal(process.pid);
      expect(e.pid).to.equal(process.pid); // the main thread
      expect(e.seq).to.equal(BigInt(i + 1));
    });
  });

  it('copies records: the Buffers survive later records reusing the ring', async function () {
    const got: Buffer[] = [];
    rb = new RingBuffer(events, (data) => got.push(data), { budget: 3 });
    rb.start();
    for (let round = 0; round < 5; round++) {
      getppid(3);
      await waitFor(() => got.length >= (round + 1) * 3, 5000, `round ${round}`);
    }
    expect(got.map((b) => decodeEvent(b).seq)).to.deep.equal(Array.from({ length: 15 }, (_, i) => BigInt(i + 1)));
  });

  it('borrow: each record is a view read during the call, wrapped ones included, with the same contents as a copy', function () {
    const odd = fx.obj.map('odd_events');
    const drain = new RingBuffer(odd, () => undefined);
    while (drain.consume() > 0);
    void drain.close();
    const seqs: bigint[] = [];
    const backing = new Set<ArrayBufferLike>();
    let bad = 0;
    const borrowed = new RingBuffer(odd, (b) => {
      if (b.length !== 48 || b.readUInt32LE(0) !== FIXTURE_MAGIC) bad++;
      const seq = b.readBigUInt64LE(8);
      for (let i = 0; i < 28; i++) if (b[16 + i] !== Number((seq + BigInt(i)) & 0xffn)) bad++;
      backing.add(b.buffer);
      seqs.push(seq);
    }, { borrow: true });
    for (let round = 0; round < 20; round++) {
      getppid(50); // as below: 1,000 records of 48 bytes through a one-page ring, many of them wrapped
      while (borrowed.consume() > 0);
    }
    void borrowed.close();
    expect(bad).to.equal(0);
    expect(seqs).to.have.length(1000);
    expect(seqs.every((s, i) => i === 0 || s === seqs[i - 1]! + 1n)).to.equal(true);
    // views of the ring's mapping and of the one scratch buffer, not 1,000 copies (copies come from
    // Buffer's 8 KiB pool: a new backing store every 170 records)
    expect(backing.size).to.be.at.most(2);
  });

  it('counts per-CPU hits equal to the syscalls made', function () {
    getppid(123);
    const hits = fx.obj.map('hits');
    expect(hits.sumPerCpuU64(u32(0))).to.equal(123n);
    expect(fx.obj.map('drops').sumPerCpuU64(u32(0))).to.equal(0n);
  });

  it('splits a flood into budgeted passes and keeps the event loop responsive', async function () {
    const N = 10000;
    getppid(N); // all queued before the reader starts
    let seen = 0;
    let lastSeq = 0n;
    let ordered = true;
    rb = new RingBuffer(
      events,
      (data) => {
        const seq = decodeEvent(data).seq;
        if (seq !== lastSeq + 1n) ordered = false;
        lastSeq = seq;
        seen++;
      },
      { budget: 100 },
    );
    // a ticker on the event loop records how many records had arrived at each turn
    const samples: number[] = [];
    let ticking = true;
    const tick = (): void => {
      samples.push(seen);
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const timerRan: number[] = [];
    setTimeout(() => timerRan.push(seen), 0);
    rb.start();
    await waitFor(() => seen >= N, 10000, `${N} records`);
    ticking = false;
    expect(seen).to.equal(N);
    expect(ordered).to.equal(true);
    expect(rb.records).to.equal(N);
    expect(rb.wakeups).to.be.at.least(N / 100);
    expect(samples.filter((s) => s > 0 && s < N).length, 'event loop turns during the drain').to.be.greaterThan(10);
    expect(timerRan).to.have.length(1);
    expect(fx.obj.map('drops').sumPerCpuU64(u32(0))).to.equal(0n);
  });

  it('stops and reports an exception thrown by onRecord, then resumes on start()', async function () {
    const errors: unknown[] = [];
    const got: bigint[] = [];
    rb = new RingBuffer(
      events,
      (data) => {
        const seq = decodeEvent(data).seq;
        if (seq === 3n && errors.length === 0) throw new Error('boom at 3');
        got.push(seq);
      },
      { onError: (err) => errors.push(err) },
    );
    getppid(5);
    rb.start();
    await waitFor(() => errors.length === 1, 5000, 'the error');
    expect((errors[0] as Error).message).to.equal('boom at 3');
    expect(rb.running).to.equal(false);
    expect(got).to.deep.equal([1n, 2n]);
    rb.start();
    await waitFor(() => got.length === 4, 5000, 'the rest');
    expect(got).to.deep.equal([1n, 2n, 4n, 5n]); // record 3 was consumed by the failed call
  });

  it('consume() rethrows an exception from onRecord synchronously', function () {
    let thrown = false;
    rb = new RingBuffer(events, () => {
      if (thrown) return;
      thrown = true;
      throw new Error('sync boom');
    });
    getppid(2);
    expect(() => rb?.consume()).to.throw('sync boom');
    // the pass stopped at the failing record; the next one is still in the ring
    expect(rb.consume()).to.equal(1);
    expect(rb.records).to.equal(2);
  });

  it('an idle reader sleeps until a record comes: no wakeups while the ring stays empty', async function () {
    const got: Buffer[] = [];
    rb = new RingBuffer(events, (data) => got.push(data));
    rb.start();
    await waitFor(() => rb!.waits === 1, 5000, 'the first epoll_wait');
    // the one wait stays in flight: with a 500 ms epoll timeout it came back 4 times in 2 s
    await sleep(2000);
    expect(rb.waits).to.equal(1);
    expect(got).to.have.length(0);
    getppid(1);
    await waitFor(() => got.length === 1, 5000, 'the record after the idle wait');
  });

  it('close() wakes a reader waiting without a timeout, at once, and is idempotent', async function () {
    rb = new RingBuffer(events, () => undefined);
    rb.start();
    await sleep(50); // let the epoll_wait start
    const t0 = Date.now();
    const p1 = rb.close();
    const p2 = rb.close();
    await Promise.all([p1, p2]);
    expect(Date.now() - t0).to.be.lessThan(1000);
    expect(() => rb?.start()).to.throw(/closed/);
  });

  it('close() from inside onRecord stops the pass and frees afterwards', async function () {
    let calls = 0;
    const r: RingBuffer = new RingBuffer(events, () => {
      calls++;
      void r.close();
    });
    rb = r;
    getppid(5);
    r.start();
    await r.close();
    expect(calls).to.equal(1);
  });

  it('rejects a map that is not a ring buffer', function () {
    expect(() => new RingBuffer(fx.obj.map('kv'), () => undefined)).to.throw(/'kv' is not a ring buffer/);
  });

  // the ring is read in JS through its own mapping: records must come out whole and in order across the
  // end of the data area (4 MiB here, 131,072 records of 32 bytes), and space must be given back
  it('reads across the end of the data area, lap after lap, in order and without drops', async function () {
    let expected = 1n;
    let seen = 0;
    let ordered = true;
    rb = new RingBuffer(events, (data) => {
      const e = decodeEvent(data);
      if (e.seq !== expected || e.magic !== FIXTURE_MAGIC) ordered = false;
      expected = e.seq + 1n;
      seen++;
    });
    rb.start();
    const perRound = 60000;
    for (let round = 0; round < 6; round++) {
      getppid(perRound); // less than a lap: the reader must free space for the next round
      await waitFor(() => seen >= (round + 1) * perRound, 20000, `round ${round}`);
    }
    expect(seen).to.equal(6 * perRound);
    expect(ordered).to.equal(true);
    expect(fx.obj.map('drops').sumPerCpuU64(u32(0))).to.equal(0n);
  });

  it('a full ring: what fits is delivered, the rest is dropped by the kernel, and reading goes on afterwards', async function () {
    const N = 140000; // more than the 131,072 records the 4 MiB ring holds
    getppid(N);
    const drops = Number(fx.obj.map('drops').sumPerCpuU64(u32(0)));
    expect(drops).to.be.greaterThan(0);
    let seen = 0;
    rb = new RingBuffer(events, () => seen++);
    while (rb.consume() > 0);
    expect(seen + drops).to.equal(N);
    getppid(10);
    rb.start();
    await waitFor(() => seen === N - drops + 10, 5000, 'records after the drain');
  });

  it('records that wrap around the end of the data area come out whole (odd-sized records, one-page ring)', async function () {
    const odd = fx.obj.map('odd_events');
    const drain = new RingBuffer(odd, () => undefined);
    while (drain.consume() > 0);
    await drain.close();
    const got: Buffer[] = [];
    rb = new RingBuffer(odd, (data) => got.push(data));
    for (let round = 0; round < 60; round++) {
      getppid(50); // 50 records of 56 bytes: 2,800 of the ring's 4,096 bytes
      while (rb.consume() > 0);
    }
    expect(got).to.have.length(3000); // 41 laps of the page: many records straddle its end
    let prev = -1n;
    for (const b of got) {
      expect(b.length).to.equal(48); // sizeof: 44 bytes padded to the u64 alignment
      expect(b.readUInt32LE(0)).to.equal(FIXTURE_MAGIC);
      const seq = b.readBigUInt64LE(8);
      if (prev >= 0n) expect(seq).to.equal(prev + 1n);
      prev = seq;
      for (let i = 0; i < 28; i++) expect(b[16 + i], `fill[${i}] of record ${seq}`).to.equal(Number((seq + BigInt(i)) & 0xffn));
    }
  });
});
