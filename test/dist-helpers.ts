// Shared by the dist process tests: scripts run by a plain `node` that requires the TypeScript sources,
// free ports, and child processes with captured output.
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';

// CPU / local-backend suites: gpu-check's CUDA-only jest run (LLMK_TEST_DEVICES=cuda) leaves them to CI.
export const CPU_RUN = !process.env.LLMK_TEST_DEVICES || process.env.LLMK_TEST_DEVICES === 'cpu';
export const cpuDescribe = (CPU_RUN ? describe : describe.skip) as typeof describe;

export const ROOT = path.join(__dirname, '..');

// Code that lets a plain `node` process require the TypeScript sources (transpiled on the fly).
export const TS_HOOK = `
const __ts = require(${JSON.stringify(require.resolve('typescript'))});
const __fs = require('fs');
require.extensions['.ts'] = (m, f) => m._compile(__ts.transpileModule(__fs.readFileSync(f, 'utf8'),
  { compilerOptions: { module: __ts.ModuleKind.CommonJS, target: __ts.ScriptTarget.ES2022, esModuleInterop: true }, fileName: f }).outputText, f);
`;

/** A temporary folder for one suite's scripts; `script(name, body)` writes one with the TS hook. */
export function scratch(prefix: string): { dir: string; script: (name: string, body: string) => string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return {
    dir,
    script: (name, body) => {
      const p = path.join(dir, name);
      fs.writeFileSync(p, TS_HOOK + body);
      return p;
    },
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Run { code: number | null; stdout: string; stderr: string; ms: number }
/** Runs `cmd args` (default: this Node binary) in the repository root; killed after timeoutMs. */
export function runProcess(args: string[], env: Record<string, string>, timeoutMs = 60000, cmd = process.execPath): Promise<Run> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const c = spawn(cmd, args, { env: { ...process.env, ...env }, cwd: ROOT });
    let stdout = '', stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('error', (e) => { stderr += String(e); });
    c.on('close', (code) => { clearTimeout(t); resolve({ code, stdout, stderr, ms: Date.now() - t0 }); });
  });
}

/** Code for `node -e` that runs the CLI (ts/cli.ts) with `args` and exits with its code. */
export function cliCode(args: string[]): string {
  return `${TS_HOOK}require(${JSON.stringify(path.join(ROOT, 'ts/cli.ts'))}).main(${JSON.stringify(args)}).then((c) => { process.exitCode = c; })`;
}

/** A job token for tests (any string of 16+ characters). */
export const TEST_TOKEN = 'test-token-0123456789abcdef';
