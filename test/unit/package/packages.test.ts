/**
 * The .deb and .rpm of scripts/package.sh, built from this checkout and looked at on the host: control
 * data, conffiles, the files every entry point needs, production dependencies only, the entry points
 * running on the bundled Node.js with the host's own node hidden (a mount namespace where /usr/lib has
 * the package's files over it and /usr/bin/node cannot run), the same files in both packages, and
 * rpmlint. Installing, upgrading and purging them on a node are the VM's tests.
 */
import { expect } from 'chai';
import { execa } from 'execa';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../../../agent/paths.js';
import { MAN_PAGES, manFileName } from '../../../agent/manual/pages.js';

const isRoot = process.getuid?.() === 0;

/** a name as tar lists it (dpkg-deb -c): a backslash doubled, as in the mount unit's sys-fs-bpf-slurm\x2dkrsi */
const unescapeTar = (name: string): string => name.replaceAll('\\\\', '\\');
const manifest = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as {
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

describe('the packages (scripts/package.sh)', function () {
  this.timeout(300_000);
  const dir = mkdtempSync(join(tmpdir(), 'krsi-pkg-'));
  const tree = join(dir, 'tree');
  const deb = join(dir, 'out', `slurm-krsi_${manifest.version}_amd64.deb`);
  const rpm = join(dir, 'out', `slurm-krsi-${manifest.version}-1.x86_64.rpm`);
  let files: string[] = [];

  before(async () => {
    // gzip: the same packages as the default xz, built faster
    await execa('bash', [join(PACKAGE_ROOT, 'scripts', 'package.sh'), join(dir, 'out')], { env: { KRSI_PACKAGE_COMPRESSION: 'gzip' } });
    expect(readdirSync(join(dir, 'out')).sort()).to.deep.equal([rpm, deb].map((p) => p.slice(join(dir, 'out').length + 1)).sort());
    // dpkg-deb -c: mode owner size date time ./path
    files = (await execa('dpkg-deb', ['-c', deb])).stdout.split('\n').map((l) => unescapeTar(/ \.(\/\S*)$/.exec(l)?.[1] ?? l));
    await execa('dpkg-deb', ['-x', deb, tree]);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  // the next version, for the upgrades
  const next = join(dir, 'next');
  const nextDeb = join(next, `slurm-krsi_${manifest.version}.1_amd64.deb`);
  const nextRpm = join(next, `slurm-krsi-${manifest.version}.1-1.x86_64.rpm`);
  before(async () => {
    await execa('bash', [join(PACKAGE_ROOT, 'scripts', 'package.sh'), next], { env: { KRSI_PACKAGE_COMPRESSION: 'gzip', KRSI_PACKAGE_VERSION: `${manifest.version}.1` } });
  });

  const WANTS = '/etc/systemd/system/multi-user.target.wants/krsi-agent.service';
  /**
   * Shell lines that make this host an image being built, for the rest of a script run in a mount
   * namespace of its own: /etc, /usr and /var as overlays whose writes land in `up`, no running systemd
   * (as on this host), a bpffs of its own, the host's node hidden; and fact NAME VALUE to report.
   */
  const inImage = (up: string): string => `
      set -e
      for d in etc usr var; do
        mkdir -p ${up}/$d ${up}-work/$d
        mount -t overlay overlay -o lowerdir=/$d,upperdir=${up}/$d,workdir=${up}-work/$d /$d
      done
      mount -t bpf bpf /sys/fs/bpf
      mount --bind /dev/null "$(command -v node)"
      fact() { echo "fact $1=$2"; }
      # the pins as a node has them: a bpffs of their own, read-only, holding a build's folder
      pins() {
        mkdir -p /sys/fs/bpf/slurm-krsi
        mount -t bpf krsi /sys/fs/bpf/slurm-krsi
        mkdir /sys/fs/bpf/slurm-krsi/build-test
        mount -o remount,ro /sys/fs/bpf/slurm-krsi
      }
      pinsLeft() { mountpoint -q /sys/fs/bpf/slurm-krsi && echo mounted; [ -e /sys/fs/bpf/slurm-krsi ] && echo pins; }`;
  async function runInImage(script: string): Promise<{ output: string; facts: Record<string, string> }> {
    const r = await execa('unshare', ['-m', 'bash', '-c', script], { reject: false, all: true });
    expect(r.exitCode, r.all).to.equal(0);
    return { output: r.all ?? '', facts: Object.fromEntries([...r.stdout.matchAll(/^fact ([a-z-]+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!])) };
  }
  /** the files (not directories) written under the overlays' upper layer `up`, but for `ignored` */
  async function leftIn(up: string, ignored: RegExp): Promise<string[]> {
    return (await execa('find', [up, '!', '-type', 'd'])).stdout.split('\n').filter((f) => f !== '')
      .map((f) => f.slice(up.length)).filter((f) => !ignored.test(f));
  }

  const field = async (name: string): Promise<string> => (await execa('dpkg-deb', ['-f', deb, name])).stdout;

  it('is slurm-krsi of package.json\'s version for amd64, needing libbpf 1.x and libsystemd, with krsi.ini and the logrotate file as conffiles', async () => {
    expect(await field('Package')).to.equal('slurm-krsi');
    expect(await field('Version')).to.equal(manifest.version);
    expect(await field('Architecture')).to.equal('amd64');
    expect(await field('Depends')).to.include('libbpf1 (>= 1:1.0)').and.to.include('libsystemd0');
    const control = join(dir, 'control');
    await execa('dpkg-deb', ['-e', deb, control]);
    expect(readFileSync(join(control, 'conffiles'), 'utf8')).to.equal('/etc/slurm-krsi/krsi.ini\n/etc/logrotate.d/slurm-krsi\n');
    for (const script of ['postinst', 'prerm', 'postrm']) {
      const r = await execa('sh', ['-n', join(control, script)], { reject: false });
      expect(r.exitCode, `${script}: ${r.stderr}`).to.equal(0);
    }
  });

  it('holds the entry points, the BPF objects, the runtime, the unit, the config, the man pages and the controller\'s files', () => {
    for (const path of [
      '/usr/sbin/krsi-agent', '/usr/sbin/krsictl',
      '/usr/libexec/slurm-krsi/prolog', '/usr/libexec/slurm-krsi/epilog', '/usr/libexec/slurm-krsi/task-prolog',
      '/usr/lib/slurm-krsi/build/bpf/krsi.bpf.o', '/usr/lib/slurm-krsi/build/bpf/identity.bpf.o', '/usr/lib/slurm-krsi/build/bpf/preflight.bpf.o',
      '/usr/lib/slurm-krsi/dist/agent/main.js', '/usr/lib/slurm-krsi/package.json', '/usr/lib/slurm-krsi/node/bin/node',
      '/usr/lib/systemd/system/krsi-agent.service', '/usr/lib/systemd/system/sys-fs-bpf-slurm\\x2dkrsi.mount',
      '/usr/lib/systemd/system/slurmd.service.d/slurm-krsi.conf', '/usr/lib/slurm-krsi/move-earlier-pins.sh',
      '/etc/slurm-krsi/krsi.ini', '/etc/logrotate.d/slurm-krsi',
      '/usr/share/slurm-krsi/slurm/slurm_krsi.lua', '/usr/share/slurm-krsi/prometheus/slurm-krsi-rules.yml',
      '/usr/share/slurm-krsi/grafana/slurm-krsi-dashboard.json', '/usr/share/doc/slurm-krsi/copyright',
      ...MAN_PAGES.map((m) => `/usr/share/man/man${m.section}/${manFileName(m)}.gz`),
    ]) {
      expect(files, path).to.include(path);
    }
    // the checkout's tests, demo and bench stay out
    expect(files.filter((f) => /\/dist\/(test|demo|bench|scripts)\//.test(f))).to.deep.equal([]);
  });

  it('carries the production dependencies and none of the development ones', async () => {
    const top = new Set(files.map((f) => /^\/usr\/lib\/slurm-krsi\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(f)?.[1]).filter((n) => n !== undefined));
    for (const name of Object.keys(manifest.dependencies)) expect(top, name).to.include(name);
    for (const name of Object.keys(manifest.devDependencies)) expect(top, name).to.not.include(name);
    const production = (await execa('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: PACKAGE_ROOT, reject: false })).stdout
      .split('\n').filter((p) => p.startsWith(join(PACKAGE_ROOT, 'node_modules'))).map((p) => p.slice(PACKAGE_ROOT.length));
    const shipped = new Set(files.filter((f) => f.endsWith('/package.json') && f.startsWith('/usr/lib/slurm-krsi/node_modules/')).map((f) => f.slice('/usr/lib/slurm-krsi'.length, -'/package.json'.length)));
    for (const p of production) expect(shipped, p).to.include(p);
  });

  it('runs every entry point on its own Node.js 22, with the host\'s node hidden', async function () {
    if (!isRoot) this.skip(); // mount namespace
    const wrapper = readFileSync(join(tree, 'usr/sbin/krsictl'), 'utf8');
    expect(wrapper).to.include('exec /usr/lib/slurm-krsi/node/bin/node /usr/lib/slurm-krsi/dist/agent/cli/krsictl.js "$@"');
    for (const entry of ['usr/sbin/krsi-agent', 'usr/libexec/slurm-krsi/prolog', 'usr/libexec/slurm-krsi/epilog']) {
      expect(readFileSync(join(tree, entry), 'utf8'), entry).to.match(/^exec \/usr\/lib\/slurm-krsi\/node\/bin\/node /m);
    }
    // the package's /usr/lib over the host's, and the host's node made unrunnable
    const script = [
      `mount -t overlay overlay -o lowerdir=${tree}/usr/lib:/usr/lib /usr/lib`,
      'mount --bind /dev/null "$(command -v node)"',
      'if node --version >/dev/null 2>&1; then echo "the host node still runs"; exit 9; fi',
      '/usr/lib/slurm-krsi/node/bin/node --version',
      `${tree}/usr/sbin/krsictl check --config-only --config ${tree}/etc/slurm-krsi/krsi.ini`,
      `${tree}/usr/sbin/krsi-agent --version`,
      `${tree}/usr/sbin/krsi-agent --help | head -2`,
      `SLURM_JOB_ID=42 ${tree}/usr/libexec/slurm-krsi/prolog; echo "prolog exit $?"`,
    ].join(' && ');
    const r = await execa('unshare', ['-m', 'sh', '-c', script], { reject: false });
    expect(r.exitCode, `${r.stdout}\n${r.stderr}`).to.equal(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).to.match(/^v22\.\d+\.\d+$/);
    expect(lines[1]).to.match(/^slurm-krsi: config .* is valid \(profiles: default, strict; default: default\)$/);
    expect(lines[2]).to.equal(manifest.version);
    expect(lines.slice(3, 5)).to.deep.equal(['NAME', '    krsi-agent - the slurm-krsi agent of a compute node: per-job BPF LSM policies for Slurm jobs']);
    // the prolog ran (on the bundled runtime) far enough to judge its input
    expect(lines[5]).to.equal('prolog exit 1');
    expect(r.stderr).to.include('slurm-krsi: prolog: SLURM_JOB_UID "" is missing or not a uid');
  });

  /** the package's files that are not directories, each with its mode, e.g. "-rwxr-xr-x /usr/sbin/krsictl" */
  async function debFiles(): Promise<string[]> {
    return (await execa('dpkg-deb', ['-c', deb])).stdout.split('\n').filter((l) => !l.startsWith('d'))
      .map((l) => `${l.slice(0, 10)} ${unescapeTar(/ \.(\/.*?)( -> .*)?$/.exec(l)?.[1] ?? l)}`).sort();
  }
  async function rpmFiles(): Promise<string[]> {
    return (await execa('rpm', ['-qp', '--qf', '[%{FILEMODES:perms} %{FILENAMES}\n]', rpm])).stdout.split('\n')
      .filter((l) => !l.startsWith('d')).sort();
  }

  it('the .rpm holds the same files as the .deb, with the same modes', async () => {
    const [d, r] = [await debFiles(), await rpmFiles()];
    expect(d.length).to.be.greaterThan(1000);
    expect(r.filter((f) => !d.includes(f)), 'only in the .rpm').to.deep.equal([]);
    expect(d.filter((f) => !r.includes(f)), 'only in the .deb').to.deep.equal([]);
  });

  it('the .rpm: its version, libbpf 1.x, the conffiles kept on upgrade, the maintainer scripts, and rpmlint clean', async () => {
    const q = async (...args: string[]): Promise<string> => (await execa('rpm', ['-qp', ...args, rpm])).stdout;
    expect(await q('--qf', '%{NAME} %{VERSION} %{ARCH}')).to.equal(`slurm-krsi ${manifest.version} x86_64`);
    expect((await q('--requires')).split('\n')).to.include.members(['libbpf.so.1()(64bit)', 'libsystemd.so.0()(64bit)']);
    expect((await q('--configfiles')).split('\n').sort()).to.deep.equal(['/etc/logrotate.d/slurm-krsi', '/etc/slurm-krsi/krsi.ini']);
    const flags = await q('--qf', '[%{FILENAMES} %{FILEFLAGS:fflags}\n]');
    expect(flags).to.match(/^\/etc\/slurm-krsi\/krsi\.ini cn$/m); // %config(noreplace)
    const scripts = await q('--scripts');
    for (const name of ['postinst', 'prerm', 'postrm']) {
      const body = readFileSync(join(PACKAGE_ROOT, 'deploy', 'pkg', 'deb', name), 'utf8');
      expect(scripts, name).to.include(body.split('\n').slice(1, 4).join('\n'));
    }
    const lint = await execa('rpmlint', ['-r', join(PACKAGE_ROOT, 'deploy', 'pkg', 'rpm', 'slurm-krsi.rpmlintrc'), rpm], { reject: false });
    expect(lint.stdout, lint.stdout).to.match(/ 0 errors, 0 warnings/);
  });

  it('installs, upgrades, removes and purges with dpkg, inside an image (no running systemd): nothing started, nothing left', async function () {
    if (!isRoot) this.skip(); // mount namespace, dpkg
    const up = join(dir, 'up-deb');
    const script = `
      ${inImage(up)}
      dpkg -i ${deb}
      fact installed "$(dpkg-query -W -f='\${Version} \${Status}' slurm-krsi)"
      fact enabled "$([ -L ${WANTS} ] && echo yes || echo no)"
      fact profiles "$(cat /etc/slurm-krsi/profiles.lua)"
      fact statedir "$(stat -c %a /var/lib/slurm-krsi) $(stat -c %a /var/log/slurm-krsi)"
      fact version "$(krsi-agent --version)"
      echo '; a change by the admin' >> /etc/slurm-krsi/krsi.ini
      dpkg -i ${nextDeb}
      fact upgraded "$(dpkg-query -W -f='\${Version}' slurm-krsi) $(krsi-agent --version)"
      fact kept "$(tail -n 1 /etc/slurm-krsi/krsi.ini)"
      pins
      SLURM_KRSI_KEEP_PINS=yes dpkg -r slurm-krsi
      fact removed-keep "$(pinsLeft | tr '\\n' ' ')$([ -e /usr/lib/slurm-krsi ] && echo tree) $([ -f /etc/slurm-krsi/krsi.ini ] && echo config) $([ -L ${WANTS} ] && echo enabled)"
      dpkg -i ${nextDeb}
      # and pins of 0.1.0 that an unfinished upgrade moved aside
      mkdir -p /sys/fs/bpf/slurm-krsi-previous/links
      dpkg -r slurm-krsi
      fact removed "$(pinsLeft)$([ -e /sys/fs/bpf/slurm-krsi-previous ] && echo previous) $([ -f /etc/slurm-krsi/krsi.ini ] && echo config)"
      dpkg --purge slurm-krsi
      fact purged "$(dpkg-query -W -f='\${Status}' slurm-krsi 2>/dev/null || echo gone) $(ls -d /etc/slurm-krsi /var/lib/slurm-krsi /var/log/slurm-krsi 2>/dev/null | tr '\n' ' ')"
    `;
    const { output, facts } = await runInImage(script);
    expect(output).to.include('installed into an image (no running systemd, a chroot, or a kernel that is not this system\'s): krsi-agent.service enabled; nothing started, no preflight');
    expect(facts).to.deep.equal({
      installed: `${manifest.version} install ok installed`,
      enabled: 'yes',
      profiles: 'return { "default", "strict" }',
      statedir: '700 750',
      version: manifest.version,
      upgraded: `${manifest.version}.1 ${manifest.version}.1`,
      kept: '; a change by the admin',
      'removed-keep': 'mounted pins  config ',
      removed: ' config',
      purged: 'gone ',
    });
    // what dpkg left on the file system once purged: its own records, and nothing of the package
    expect(await leftIn(up, /^\/var\/(lib\/dpkg|log|cache)\//)).to.deep.equal([]);
  });

  it('installs, upgrades and erases with rpm, inside an image: the scriptlets run the same maintainer scripts', async function () {
    if (!isRoot) this.skip(); // mount namespace, rpm
    const up = join(dir, 'up-rpm');
    // --nodeps: this Debian host's rpm database knows no libbpf; the package's own needs are in its header
    const script = `
      ${inImage(up)}
      rpm -i --nodeps ${rpm}
      fact installed "$(rpm -q --qf '%{VERSION}' slurm-krsi)"
      fact enabled "$([ -L ${WANTS} ] && echo yes || echo no)"
      fact profiles "$(cat /etc/slurm-krsi/profiles.lua)"
      fact version "$(krsi-agent --version)"
      echo '; a change by the admin' >> /etc/slurm-krsi/krsi.ini
      rpm -U --nodeps ${nextRpm}
      fact upgraded "$(rpm -q --qf '%{VERSION}' slurm-krsi) $(krsi-agent --version) $([ -L ${WANTS} ] && echo enabled)"
      fact kept "$(tail -n 1 /etc/slurm-krsi/krsi.ini)"
      pins
      rpm -e slurm-krsi
      fact erased "$(pinsLeft) $([ -e /usr/lib/slurm-krsi ] && echo tree) $([ -L ${WANTS} ] && echo enabled) $(ls /etc/slurm-krsi 2>/dev/null | tr '\\n' ' ')"
    `;
    const { output, facts } = await runInImage(script);
    expect(output).to.include('installed into an image');
    expect(facts).to.deep.equal({
      installed: manifest.version,
      enabled: 'yes',
      profiles: 'return { "default", "strict" }',
      version: manifest.version,
      upgraded: `${manifest.version}.1 ${manifest.version}.1 enabled`,
      kept: '; a change by the admin',
      // rpm keeps a changed config as .rpmsave; profiles.lua is the postinst's, not the package's
      erased: '   krsi.ini.rpmsave profiles.lua ',
    });
    expect(await leftIn(up, /^\/(var\/(lib\/rpm|log|cache|tmp)|etc\/slurm-krsi)\//)).to.deep.equal([]);
  });

  it('has man pages that render without a warning', async () => {
    for (const m of MAN_PAGES) {
      const page = join(tree, `usr/share/man/man${m.section}/${manFileName(m)}.gz`);
      const r = await execa('man', ['--warnings', '-l', page], { env: { MANWIDTH: '80' }, reject: false });
      expect(r.exitCode, r.stderr).to.equal(0);
      expect(r.stderr, page).to.equal('');
      expect(r.stdout).to.include(m.name);
    }
  });
});
