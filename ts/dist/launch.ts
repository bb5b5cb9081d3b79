/**
 * The process launcher behind `npx llm-kernels launch`: one process per local rank, with torchrun's
 * variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT).
 * If a rank fails (non-zero exit or a signal), the others are stopped (SIGTERM, then SIGKILL after a
 * grace period) and the launcher's exit code is non-zero: the failing rank's code, or 128+signal.
 */
import { spawn, ChildProcess } from 'child_process';
import { check } from '../errors';

export interface LaunchOptions {
  nprocPerNode: number;
  nnodes?: number;
  nodeRank?: number;
  masterAddr?: string;
  masterPort?: number;
  /** The script (run with this Node binary) and its arguments. */
  script: string;
  args?: string[];
  /** Seconds between SIGTERM and SIGKILL when tearing the group down (default 5). */
  graceSeconds?: number;
  /** Extra environment for the ranks. */
  env?: Record<string, string>;
  /** Where to report (default stderr). */
  log?: (line: string) => void;
}

export const LAUNCH_USAGE = `usage: llm-kernels launch --nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P] [--grace S] script.js [args...]`;

/** Parses the launcher's command line (the arguments after `launch`). Throws ERR_LLMK_ARG with the usage. */
export function parseLaunchArgs(argv: string[]): LaunchOptions {
  check(Array.isArray(argv) && argv.every((a) => typeof a === 'string'), 'ERR_LLMK_ARG',
    `launch: arguments must be an array of strings\n${LAUNCH_USAGE}`);
  const o: Partial<LaunchOptions> = {};
  let i = 0;
  const intArg = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    check(v !== undefined && Number.isInteger(n) && n >= min, 'ERR_LLMK_ARG', `launch: ${name} needs an integer >= ${min}, got ${v ?? 'nothing'}\n${LAUNCH_USAGE}`);
    return n;
  };
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) break;
    const eq = a.indexOf('=');
    const key = eq > 0 ? a.slice(2, eq) : a.slice(2);
    const val = (): string | undefined => (eq > 0 ? a.slice(eq + 1) : argv[++i]);
    switch (key.replace(/_/g, '-')) {
      case 'nproc-per-node': o.nprocPerNode = intArg('--nproc-per-node', val(), 1); break;
      case 'nnodes': o.nnodes = intArg('--nnodes', val(), 1); break;
      case 'node-rank': o.nodeRank = intArg('--node-rank', val(), 0); break;
      case 'master-addr': { const v = val(); check(!!v, 'ERR_LLMK_ARG', `launch: --master-addr needs a value\n${LAUNCH_USAGE}`); o.masterAddr = v; break; }
      case 'master-port': o.masterPort = intArg('--master-port', val(), 1); break;
      case 'grace': o.graceSeconds = intArg('--grace', val(), 0); break;
      case '': i++; break;
      default: check(false, 'ERR_LLMK_ARG', `launch: unknown option ${a}\n${LAUNCH_USAGE}`);
    }
    if (key === '') break;
  }
  check(o.nprocPerNode !== undefined, 'ERR_LLMK_ARG', `launch: --nproc-per-node is required\n${LAUNCH_USAGE}`);
  check(i < argv.length, 'ERR_LLMK_ARG', `launch: no script given\n${LAUNCH_USAGE}`);
  o.script = argv[i];
  o.args = argv.slice(i + 1);
  const nnodes = o.nnodes ?? 1;
  check((o.nodeRank ?? 0) < nnodes, 'ERR_LLMK_ARG', `launch: --node-rank ${o.nodeRank} must be below --nnodes ${nnodes}`);
  check(o.masterPort === undefined || o.masterPort < 65536, 'ERR_LLMK_ARG', 'launch: --master-port must be below 65536');
  return o as LaunchOptions;
}

/** Runs the ranks of this node; resolves with the exit code the launcher should return. */
export function launch(opts: LaunchOptions): Promise<number> {
  const n = opts.nprocPerNode, nnodes = opts.nnodes ?? 1, nodeRank = opts.nodeRank ?? 0;
  const world = n * nnodes;
  const log = opts.log ?? ((l: string) => process.stderr.write(l + '\n'));
  const grace = (opts.graceSeconds ?? 5) * 1000;
  const children: (ChildProcess | null)[] = [];
  let firstFailure: { rank: number; code: number } | null = null;
  let killTimer: NodeJS.Timeout | null = null;
  let running = n;
  return new Promise<number>((resolve) => {
    const teardown = (why: string) => {
      log(`[llm-kernels launch] ${why}; stopping the other ranks`);
      for (const c of children) if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
      killTimer = setTimeout(() => {
        for (const c of children) if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      }, grace);
      killTimer.unref();
    };
    const onSignal = (sig: NodeJS.Signals) => {
      if (!firstFailure) firstFailure = { rank: -1, code: sig === 'SIGINT' ? 130 : 143 };
      teardown(`received ${sig}`);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    for (let local = 0; local < n; local++) {
      const rank = nodeRank * n + local;
      const env = {
        ...process.env,
        ...opts.env,
        RANK: String(rank),
        WORLD_SIZE: String(world),
        LOCAL_RANK: String(local),
        LOCAL_WORLD_SIZE: String(n),
        GROUP_RANK: String(nodeRank),
        NODE_RANK: String(nodeRank),
        MASTER_ADDR: opts.masterAddr ?? process.env.MASTER_ADDR ?? '127.0.0.1',
        MASTER_PORT: String(opts.masterPort ?? process.env.MASTER_PORT ?? 29500),
      };
      const c = spawn(process.execPath, [opts.script, ...(opts.args ?? [])], { env, stdio: 'inherit' });
      children.push(c);
      c.on('error', (e) => {
        log(`[llm-kernels launch] rank ${rank} could not start: ${e.message}`);
      });
      c.on('exit', (code, signal) => {
        running--;
        const status = code ?? (signal ? 128 + (require('os').constants.signals[signal] ?? 1) : 1); // eslint-disable-line @typescript-eslint/no-require-imports
        if (status !== 0 && !firstFailure) {
          firstFailure = { rank, code: status };
          teardown(`rank ${rank} ${code !== null ? `exited with code ${code}` : `was killed by ${signal}`}`);
        }
        if (running === 0) {
          if (killTimer) clearTimeout(killTimer);
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
          const f = firstFailure as { rank: number; code: number } | null;
          if (f) log(`[llm-kernels launch] failed: ${f.rank >= 0 ? `rank ${f.rank} exited with ${f.code}` : 'interrupted'}`);
          resolve(f ? (f.code === 0 ? 1 : f.code) : 0);
        }
      });
    }
  });
}
