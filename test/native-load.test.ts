// Loader failures name the binary, the cause and the fix: real dlopen failures (a damaged binary, a missing
// symbol, our addon patched to another architecture or to a glibc version no system has) and loader messages
// of systems we cannot run here (musl, old libstdc++, missing libraries).
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { diagnoseLoadError, LoadContext, loadAddon, loadFailureMessage } from '../ts/native_load';

const root = path.join(__dirname, '..');
const ctx: LoadContext = { platform: 'linux', arch: 'x64', node: '20.20.2', napi: '10', glibc: '2.27' };
const tag = `${process.platform}-${process.arch}`;

/** A package folder whose only binary is `file` at prebuilds/<platform>-<arch>/node.napi.glibc.node. */
function fakePackage(dir: string, file: string): string {
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'llm-kernels' }));
  fs.mkdirSync(path.join(dir, 'prebuilds', tag), { recursive: true });
  const bin = path.join(dir, 'prebuilds', tag, 'node.napi.glibc.node');
  fs.copyFileSync(file, bin);
  return bin;
}

describe('native loader errors', () => {
  let tmp: string;
  beforeAll(() => { tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'llmk-load-')); });
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
  /** A fake package whose prebuild is our own addon with `patch` applied to its bytes, and the load result. */
  const patchedAddon = (name: string, patch: (elf: Buffer) => void) => {
    const elf = fs.readFileSync(path.join(root, 'build', 'Release', 'llmk.node'));
    patch(elf);
    const file = path.join(tmp, `${name}.node`);
    fs.writeFileSync(file, elf);
    const pkg = path.join(tmp, name);
    fs.mkdirSync(pkg);
    const bin = fakePackage(pkg, file);
    return { pkg, bin, r: loadAddon(pkg) };
  };

  it('a damaged prebuild: the error names the file, the cause and LLMK_BUILD=cpu', () => {
    const pkg = path.join(tmp, 'damaged');
    fs.mkdirSync(pkg);
    const junk = path.join(tmp, 'junk');
    fs.writeFileSync(junk, 'not an ELF file');
    const bin = fakePackage(pkg, junk);
    const r = loadAddon(pkg);
    expect(r.addon).toBeUndefined();
    expect(r.binary).toBe(bin);
    const msg = loadFailureMessage(pkg, r.binary, r.error!.message, ctx);
    expect(msg).toContain(`Binary: ${bin}`);
    expect(msg).toMatch(/Cause: the binary is not a linux-x64 shared library \(wrong architecture, or a damaged file\)/);
    expect(msg).toMatch(/npm run build:from-source.*LLMK_BUILD=cpu/);
  });

  const cc = spawnSync('sh', ['-c', 'command -v cc'], { encoding: 'utf8' }).stdout.trim();
  (cc ? it : it.skip)('a prebuild that needs a symbol the process lacks: the symbol is named', () => {
    const src = path.join(tmp, 'undef.c');
    fs.writeFileSync(src, 'extern int llmk_absent_symbol;\nint llmk_probe(void) { return llmk_absent_symbol; }\n');
    const so = path.join(tmp, 'undef.so');
    execFileSync(cc, ['-shared', '-fPIC', '-o', so, src]);
    const pkg = path.join(tmp, 'undef');
    fs.mkdirSync(pkg);
    fakePackage(pkg, so);
    const r = loadAddon(pkg);
    expect(diagnoseLoadError(r.error!.message, r.binary, ctx)).toMatch(/refers to a symbol this process lacks \(llmk_absent_symbol\)/);
  });

  it('a prebuild for another architecture (our addon with e_machine set to AArch64/x86-64): wrong architecture', () => {
    // EM_X86_64 = 62, EM_AARCH64 = 183
    const { pkg, bin, r } = patchedAddon('foreign', (elf) => elf.writeUInt16LE(process.arch === 'arm64' ? 62 : 183, 18));
    expect(r.error).toBeDefined();
    expect(loadFailureMessage(pkg, bin, r.error!.message, ctx)).toMatch(/Cause: the binary is not a linux-x64 shared library \(wrong architecture/);
  });

  it('a prebuild that needs a newer glibc (our addon asking for GLIBC_9.x): the versions and the floor are named', () => {
    // the first version-needed name the loader looks up in libc, GLIBC_2.x → GLIBC_9.x
    const { pkg, bin, r } = patchedAddon('newer', (elf) => elf.write('9', elf.indexOf('GLIBC_2.') + 6));
    const msg = loadFailureMessage(pkg, bin, r.error!.message, { ...ctx, glibc: '2.36' });
    expect(msg).toMatch(/Loader said: .*version `GLIBC_9\.[\d.]+' not found/);
    expect(msg).toMatch(/Cause: the binary needs glibc 9\.[\d.]+ but this system has glibc 2\.36 \(the prebuilt binaries need glibc 2\.28 or newer/);
  });

  it('no binary at all: says which platforms ship prebuilt', () => {
    const pkg = path.join(tmp, 'empty');
    fs.mkdirSync(pkg);
    fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: 'llm-kernels' }));
    const r = loadAddon(pkg);
    expect(r.binary).toBeNull();
    const msg = loadFailureMessage(pkg, r.binary, r.error!.message, ctx);
    expect(msg).toContain(`Looked in: ${path.join(pkg, 'build', 'Release')}`);
    expect(msg).toMatch(/Cause: no binary for linux-x64 ships in this package.*linux-arm64/);
  });

  it.each([
    ["/x/node.napi.glibc.node: /lib64/libm.so.6: version `GLIBC_2.29' not found (required by /x/node.napi.glibc.node)",
      /needs glibc 2\.29 but this system has glibc 2\.27 \(the prebuilt binaries need glibc 2\.28 or newer/],
    ["/x/node.napi.glibc.node: /lib64/libstdc++.so.6: version `GLIBCXX_3.4.29' not found", /needs GLIBCXX_3\.4\.29/],
    ['/x/node.napi.glibc.node: cannot open shared object file: No such file or directory', /not a linux-x64 shared library/],
    ['/x/node.napi.glibc.node: wrong ELF class: ELFCLASS32', /not a linux-x64 shared library/],
    ['libfoo.so.3: cannot open shared object file: No such file or directory', /a shared library it needs is missing: libfoo\.so\.3/],
    ['Error relocating /x/node.napi.glibc.node: __memcpy_chk: symbol not found', /uses musl \(Alpine\): prebuilt binaries are glibc-only/],
  ])('loader message %s', (message, cause) => {
    expect(diagnoseLoadError(message, '/x/node.napi.glibc.node', ctx)).toMatch(cause);
  });

  it('the package itself: a damaged prebuild fails require() with ERR_LLMK_UNAVAILABLE and the cause', () => {
    const pkg = path.join(tmp, 'installed');
    fs.mkdirSync(pkg);
    fs.cpSync(path.join(root, 'lib'), path.join(pkg, 'lib'), { recursive: true });
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(pkg, 'node_modules'));
    const junk = path.join(tmp, 'junk2');
    fs.writeFileSync(junk, '\x7fELF');
    const bin = fakePackage(pkg, junk);
    const probe = "try { require('./lib'); console.log('loaded'); } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })); }";
    const out = JSON.parse(execFileSync(process.execPath, ['-e', probe], { cwd: pkg, encoding: 'utf8' }).trim());
    expect(out.code).toBe('ERR_LLMK_UNAVAILABLE');
    expect(out.message).toContain(`Binary: ${bin}`);
    expect(out.message).toMatch(/Cause: the binary is not a .* shared library/);
  });
});
