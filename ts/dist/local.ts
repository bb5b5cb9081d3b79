/**
 * runLocal: the launcher of the `local` backend. Starts `worldSize` worker threads of this process,
 * one rank each, all in one local group, and collects what each rank returns. If a rank fails, it
 * aborts the group (so the others fail fast instead of waiting for it), the remaining workers are
 * stopped, and runLocal rejects with the first rank's error.
 */
import * as path from 'path';
import { Worker } from 'worker_threads';
import { check, LlmkError, type LlmkErrorCode } from '../errors';

/* eslint-disable @typescript-eslint/no-explicit-any */

/** What a rank's function receives. */
export interface LocalContext<A = unknown> {
  rank: number;
  worldSize: number;
  /** The rank's communicator, already initialised (destroyed after the function returns). */
  comm: import('../dist').Communicator;
  /** The llm-kernels module, loaded in the worker. */
  lib: typeof import('../index');
  /** The dist module (the same as lib.dist). */
  dist: typeof import('../dist');
  /** The worker's require (resolves .ts sources when running from them). */
  require: NodeRequire;
  /** `opts.args`, structured-cloned into the worker. */
  args: A;
}

export interface RunLocalOptions<A = unknown> {
  /** Passed to every rank (structured clone). */
  args?: A;
  /** Bound on the group's rendezvous and collectives (default 10 minutes). */
  timeoutMs?: number;
  /** Extra resourceLimits / env for the workers. */
  env?: Record<string, string>;
}

// Runs in each worker: loads the library (transpiling ts/ on the fly when running from sources, as
// under jest), initialises the rank, runs the function or the script, reports the result.
const BOOTSTRAP = `
const { parentPort, workerData } = require('worker_threads');
const path = require('path');
const run = workerData.llmkRun;
function hookTs() {
  if (require.extensions['.ts']) return;
  // Transpiled files are cached in the temp folder (keyed by path, size and mtime), so that ranks
  // and later runs skip loading TypeScript.
  const fs = require('fs'), os = require('os'), crypto = require('crypto');
  const cacheDir = path.join(os.tmpdir(), 'llmk-ts-cache');
  try { fs.mkdirSync(cacheDir, { recursive: true }); } catch (_) {}
  let ts = null;
  require.extensions['.ts'] = (m, filename) => {
    const st = fs.statSync(filename);
    const key = crypto.createHash('sha1').update(filename + ':' + st.size + ':' + st.mtimeMs).digest('hex');
    const cached = path.join(cacheDir, key + '.js');
    let code;
    try { code = fs.readFileSync(cached, 'utf8'); } catch (_) {
      ts = ts || require(require.resolve('typescript', { paths: [path.dirname(run.entry)] }));
      code = ts.transpileModule(fs.readFileSync(filename, 'utf8'), {
        compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
        fileName: filename,
      }).outputText;
      try { const tmp = cached + '.' + process.pid + '.' + Math.random().toString(36).slice(2); fs.writeFileSync(tmp, code); fs.renameSync(tmp, cached); } catch (_) {}
    }
    m._compile(code, filename);
  };
}
(async () => {
  let comm = null;
  try {
    if (run.entry.endsWith('.ts')) hookTs();
    if (run.script) {
      if (run.script.endsWith('.ts')) hookTs();
      process.argv = [process.argv[0], run.script, ...run.argv];
      require(run.script);
      return;  // the script reports through its own exit; errors become worker 'error' events
    }
    const lib = require(run.entry);
    const dist = require(run.distEntry);
    const d = workerData.llmkDist;
    comm = await dist.init({ backend: 'local', rank: d.rank, worldSize: d.worldSize, uniqueId: d.uniqueId, timeoutMs: d.timeoutMs });
    const fn = (0, eval)('(' + run.fnSrc + ')');
    const result = await fn({ rank: d.rank, worldSize: d.worldSize, comm, lib, dist, require, args: run.args });
    await comm.destroy();
    parentPort.postMessage({ ok: true, result });
  } catch (e) {
    const reason = (e && e.message) || String(e);
    try { if (comm) comm.abort('rank ' + workerData.llmkDist.rank + ' failed: ' + reason); } catch (_) {}
    // A failure caused by another rank (it aborted or left) is secondary: runLocal reports the cause.
    const secondary = !!(e && e.ncclResult === 'ncclRemoteError');
    parentPort.postMessage({ ok: false, error: { message: reason, code: e && e.code, ncclResult: e && e.ncclResult, stack: e && e.stack, secondary } });
  }
})();
`;

function entryPath(name: string): string {
  const ts = __filename.endsWith('.ts');
  return path.join(__dirname, '..', name + (ts ? '.ts' : '.js'));
}

/**
 * Runs `target` on `worldSize` ranks (worker threads of this process) of one local-backend group.
 * `target` is a function `(ctx: LocalContext) => result` (serialised: it may use only `ctx`, not
 * variables of the enclosing scope) or the path of a script that calls `dist.initFromEnv()`.
 * Resolves with each rank's result (rank order; undefined for scripts).
 */
export async function runLocal<A = unknown, R = unknown>(
  worldSize: number,
  target: string | ((ctx: LocalContext<A>) => R | Promise<R>),
  opts: RunLocalOptions<A> & { argv?: string[] } = {},
): Promise<Awaited<R>[]> {
  opts = opts ?? {};
  check(Number.isInteger(worldSize) && worldSize >= 1 && worldSize <= 256, 'ERR_LLMK_ARG', 'dist.runLocal: worldSize must be an integer in [1, 256]');
  check(typeof target === 'function' || (typeof target === 'string' && target.length > 0), 'ERR_LLMK_ARG',
    'dist.runLocal: target must be a function or a script path');
  const { uniqueId } = await import('../dist');
  const id = uniqueId({ backend: 'local' });
  const timeoutMs = opts.timeoutMs ?? 600_000;
  const entry = entryPath('index');
  const distEntry = entryPath('dist');
  const workers: Worker[] = [];
  const results: any[] = new Array(worldSize);
  let failure: { rank: number; error: any } | null = null;
  const failures: { rank: number; error: any }[] = [];
  const exits: Promise<void>[] = [];
  for (let rank = 0; rank < worldSize; rank++) {
    const w = new Worker(BOOTSTRAP, {
      eval: true,
      workerData: {
        llmkDist: { rank, worldSize, uniqueId: id, timeoutMs },
        llmkRun: {
          entry,
          distEntry,
          fnSrc: typeof target === 'function' ? target.toString() : null,
          script: typeof target === 'string' ? path.resolve(target) : null,
          argv: opts.argv ?? [],
          args: opts.args,
        },
      },
      env: opts.env ? { ...process.env, ...opts.env } : undefined,
    });
    workers.push(w);
    exits.push(new Promise<void>((resolve) => {
      const fail = (error: any) => {
        failures.push({ rank, error });
        if (!failure) {
          failure = { rank, error };
          // Stop the others after a grace period that lets them report the abort themselves.
          setTimeout(() => { for (const o of workers) void o.terminate(); }, 2000).unref();
        }
      };
      w.on('message', (m: any) => {
        if (m && m.ok === true) results[rank] = m.result;
        else if (m && m.ok === false) fail(m.error);
      });
      w.on('error', (e) => fail({ message: e.message, code: (e as any).code, stack: e.stack }));
      w.on('exit', (code) => {
        if (code !== 0 && !failure) fail({ message: `rank ${rank} exited with code ${code}` });
        resolve();
      });
    }));
  }
  await Promise.all(exits);
  if (failure) {
    const f = failures.find((x) => !x.error?.secondary) ?? (failure as { rank: number; error: any });
    const code: LlmkErrorCode = (f.error?.code && String(f.error.code).startsWith('ERR_LLMK_') ? f.error.code : 'ERR_LLMK_INTERNAL') as LlmkErrorCode;
    const err = new LlmkError(`dist.runLocal: rank ${f.rank} failed: ${f.error?.message ?? String(f.error)}`, code);
    if (f.error?.ncclResult) err.ncclResult = f.error.ncclResult;
    (err as any).rank = f.rank;
    throw err;
  }
  return results;
}
