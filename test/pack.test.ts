// The packed tarball installs into an empty project with no install scripts and loads the prebuild; the
// symbol check (scripts/check-prebuild.js) and the prepack guard do what the release relies on.
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.join(__dirname, '..');
const script = (name: string) => path.join(root, 'scripts', name);
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { inspect, problems } = require(script('check-prebuild.js'));
const node = (args: string[]) => spawnSync(process.execPath, args, { encoding: 'utf8' });
const glibc = (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime ?? '';
const gxx = spawnSync('sh', ['-c', 'command -v g++'], { encoding: 'utf8' }).stdout.trim();

describe('npm pack', () => {
  it('installs and loads without compiling (prebuild), for require and import', () => {
    const out = execFileSync(process.execPath, [script('pack-check.js')], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 600000,
    });
    expect(out).toMatch(/check-prebuild: ok \(1 binaries, glibc floor not checked\)/);
    expect(out).toMatch(/pack-check ok: .* installed without compiling; loaded .*prebuilds\/linux-x64\//);
  }, 600000);
});

describe('prepack refuses an incomplete package', () => {
  let tmp: string;
  beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'llmk-prepack-')); });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('no lib/, then no prebuilds: fails naming what is missing', () => {
    let r = node([script('prepack-check.js'), tmp]);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/lib\/index\.js is missing/);
    fs.mkdirSync(path.join(tmp, 'lib'));
    fs.writeFileSync(path.join(tmp, 'lib', 'index.js'), '');
    r = node([script('prepack-check.js'), tmp]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/FAIL no binary for linux-x64 .*\nFAIL no binary for linux-arm64/);
    expect(r.stderr).toMatch(/refusing to pack/);
  });
});

(gxx ? describe : describe.skip)('check-prebuild', () => {
  let tmp: string;
  beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'llmk-symcheck-')); });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  // exp/pow (new versions in glibc 2.29) and a timed wait (pthread_cond_clockwait, glibc 2.30, when libstdc++ uses it)
  const src = '#include <cmath>\n#include <condition_variable>\n#include <mutex>\n' +
    'extern "C" double f(double x, double y) { return std::exp(x) + std::pow(x, y) + std::log(y); }\n' +
    'extern "C" bool g(std::condition_variable& c, std::mutex& m) { std::unique_lock<std::mutex> l(m);' +
    ' return c.wait_for(l, std::chrono::milliseconds(1)) == std::cv_status::timeout; }\n';
  const build = (name: string, flags: string[]) => {
    const cc = path.join(tmp, 'a.cc');
    fs.writeFileSync(cc, src);
    const so = path.join(tmp, name);
    execFileSync(gxx, ['-shared', '-fPIC', '-O2', '-fno-builtin', ...flags, '-o', so, cc]);
    return inspect(so);
  };

  (Number(glibc.split('.')[1]) >= 30 ? it : it.skip)('flags exp/pow/log above 2.28 without the floor header, and binds them to the old versions with it', () => {
    const plain = build('plain.so', ['-static-libstdc++', '-static-libgcc']);
    expect(plain.versions['GLIBC_2.29']).toEqual(expect.arrayContaining(['exp', 'pow', 'log']));
    expect(problems(plain, null, '2.28').join('\n')).toMatch(/needs GLIBC_2\.29 \(> glibc 2\.28\) for .*exp/);
    const pinned = build('pinned.so', ['-static-libstdc++', '-static-libgcc', `-include${script('glibc-floor.h')}`]);
    expect(pinned.versions['GLIBC_2.29']).toBeUndefined();
    expect(pinned.versions['GLIBC_2.30']).toBeUndefined();
    expect(pinned.versions['GLIBC_2.2.5'] ?? pinned.versions['GLIBC_2.17']).toEqual(expect.arrayContaining(['exp', 'pow', 'log']));
  });

  it('flags a dynamic libstdc++ and a binary in the wrong platform folder', () => {
    const dyn = build('dyn.so', []);
    const found = problems(dyn, 'linux-arm64', null).join('\n');
    expect(found).toMatch(/needs shared library libstdc\+\+\.so\.6/);
    expect(found).toMatch(/needs GLIBCXX_[\d.]+ .*libstdc\+\+\/libgcc must be linked statically/);
    if (process.arch === 'x64') expect(found).toMatch(/machine .*X86-64 in the linux-arm64 folder/);
    const dir = path.join(tmp, 'prebuilds', 'linux-arm64');
    fs.mkdirSync(dir, { recursive: true });
    fs.copyFileSync(dyn.file, path.join(dir, 'node.napi.glibc.node'));
    const r = node([script('check-prebuild.js'), path.join(tmp, 'prebuilds')]);
    expect(r.status).toBe(1);
    expect(r.stdout).toMatch(/check-prebuild: FAILED/);
  });
});
