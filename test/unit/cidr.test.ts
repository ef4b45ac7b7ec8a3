import { expect } from 'chai';
import { CidrError, formatAddress, parseCidr } from '../../agent/enforcement/cidr.js';
import { kernelDevFromStDev } from '../../agent/enforcement/identity.js';
import { decodeEvent, encodeCidrKey, LAYOUT } from '../../agent/enforcement/layout.js';

describe('CIDR parsing for skconnections', () => {
  it('stores IPv4 networks as IPv4-mapped IPv6 with the prefix shifted by 96', () => {
    const c = parseCidr('192.0.2.0/24');
    expect(c).to.include({ family: 4, prefix: 24, mappedPrefix: 120, text: '192.0.2.0/24' });
    expect(c.mappedAddress.toString('hex')).to.equal('00000000000000000000ffffc0000200');
  });

  it('clears host bits and treats a bare address as a host route', () => {
    expect(parseCidr('192.0.2.77/24').text).to.equal('192.0.2.0/24');
    expect(parseCidr('198.51.100.7')).to.include({ prefix: 32, mappedPrefix: 128 });
    expect(parseCidr('2001:db8::1')).to.include({ prefix: 128, text: '2001:db8::1/128' });
  });

  it('parses IPv6 forms: compressed, full, trailing ::, embedded IPv4', () => {
    expect(parseCidr('2001:db8::/32').mappedAddress.toString('hex')).to.equal('20010db8000000000000000000000000');
    expect(parseCidr('2001:0db8:0000:0000:0000:0000:0000:0001/128').text).to.equal('2001:db8::1/128');
    expect(parseCidr('::/0').text).to.equal('::/0');
    expect(parseCidr('::ffff:192.0.2.1/128').mappedAddress.toString('hex')).to.equal('00000000000000000000ffffc0000201');
    expect(parseCidr('fe80::1:2/64').text).to.equal('fe80::/64');
  });

  it('rejects bad input with an error that names it', () => {
    for (const bad of ['192.0.2.0/33', '2001:db8::/129', '192.0.2/24', 'example.org', '10.0.0.0/-1', '10.0.0.0/ 8', 'fe80::1%eth0', '']) {
      expect(() => parseCidr(bad), bad).to.throw(CidrError, `"${bad}"`);
    }
  });

  it('formats addresses per RFC 5952', () => {
    const hex = (h: string) => Buffer.from(h, 'hex');
    expect(formatAddress(hex('20010db8000000000001000000000001'))).to.equal('2001:db8::1:0:0:1');
    expect(formatAddress(hex('20010db8000100000000000000000001'))).to.equal('2001:db8:1::1');
    expect(formatAddress(hex('00000000000000000000000000000001'))).to.equal('::1');
    expect(formatAddress(hex('20010db8000100010001000100010001'))).to.equal('2001:db8:1:1:1:1:1:1');
    expect(formatAddress(hex('00000000000000000000ffff7f000001'))).to.equal('127.0.0.1');
  });

  it('builds LPM keys: prefix counts the 32-bit set id, set id in network order', () => {
    const key = encodeCidrKey(0x01020304, parseCidr('192.0.2.0/24'));
    expect(key.length).to.equal(LAYOUT.krsi_cidr_key.size);
    expect(key.readUInt32LE(0)).to.equal(32 + 120);
    expect(key.subarray(4, 8).toString('hex')).to.equal('01020304');
  });
});

describe('kernel device numbers', () => {
  it('converts userspace st_dev to the kernel dev_t (major << 20 | minor)', () => {
    expect(kernelDevFromStDev(0x0801n)).to.equal((8 << 20) | 1); // sda1
    expect(kernelDevFromStDev(0x0700n)).to.equal(7 << 20); // loop0
    expect(kernelDevFromStDev(0x2dn)).to.equal(0x2d); // anonymous 0:45 (tmpfs): both encodings agree
    expect(kernelDevFromStDev(0x10300n)).to.equal((259 << 20) | 0); // nvme0n1: major 259
    expect(kernelDevFromStDev(0x110300n)).to.equal((259 << 20) | 0x100); // minor 256 uses the high bits
  });
});

describe('event decoding', () => {
  it('refuses a short record and decodes fields at their offsets', () => {
    expect(() => decodeEvent(Buffer.alloc(10))).to.throw(/10 bytes/);
    const buf = Buffer.alloc(LAYOUT.krsi_event.size);
    const f = LAYOUT.krsi_event.fields;
    buf.writeUInt32LE(9, f.type[0]);
    buf.writeUInt8(3, f.policy[0]);
    buf.writeUInt32LE(1000, f.uid[0]);
    buf.write('ssh\0garbage', f.comm[0]);
    buf.writeUInt16LE(2, f.family[0]);
    buf.writeUInt16LE(22, f.port[0]);
    Buffer.from('00000000000000000000ffffc000020a', 'hex').copy(buf, f.addr[0]);
    const e = decodeEvent(buf);
    expect(e).to.include({ type: 'skconn', policy: 'skconnections', decision: 'deny', uid: 1000, comm: 'ssh', addr: '192.0.2.10', port: 22 });
    buf.writeUInt16LE(10, f.family[0]);
    expect(decodeEvent(buf).addr).to.equal('::ffff:192.0.2.10');
  });

  it('decodes each comm, however little it differs from the one before (the decoder keeps the last one)', () => {
    const f = LAYOUT.krsi_event.fields;
    const withComm = (bytes: Buffer) => {
      const buf = Buffer.alloc(LAYOUT.krsi_event.size);
      bytes.copy(buf, f.comm[0]);
      return buf;
    };
    const comms = [
      Buffer.from('evgen'), Buffer.from('evgen'), Buffer.from('evgeN'),
      Buffer.from('0123456789abcdef'), Buffer.from('0123456789abcdeF'), // all 16 bytes, no NUL: the last byte differs
      Buffer.from('vim\0ssh'), Buffer.from('vim\0xyz'), // bytes after the NUL differ: the same comm
      Buffer.from('ünï'), Buffer.from([0x66, 0xff, 0x6f]), Buffer.alloc(0),
    ];
    expect(comms.map((c) => decodeEvent(withComm(c)).comm)).to.deep.equal([
      'evgen', 'evgen', 'evgeN', '0123456789abcdef', '0123456789abcdeF', 'vim', 'vim', 'ünï', 'f\ufffdo', '',
    ]);
  });
});
