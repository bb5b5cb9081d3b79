/**
 * The process launcher behind `npx llm-kernels launch`: one process per local rank, with torchrun's
 * variables (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, GROUP_RANK, MASTER_ADDR, MASTER_PORT) and the
 * job token of the rendezvous store (LLMK_STORE_TOKEN: taken from the environment, else a fresh random one
 * on a single node). If a rank fails (non-zero exit or a signal), the others are stopped (SIGTERM, then
 * SIGKILL after a grace period) and the launcher's exit code is non-zero: the failing rank's code, or
 * 128+signal. Ranks never outlive the launcher, however it dies (./sentinel).
 */
import { spawn, ChildProcess } from 'child_process';
import { randomBytes } from 'crypto';
import { check } from '../errors';
import { startSentinel } from './sentinel';
import { MIN_TOKEN_CHARS } from './store_auth';

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
  /** The job token (default: {@link launchToken}). */
  token?: string;
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

/**
 * The job token for the ranks: LLMK_STORE_TOKEN from `env` when set (it must be, and be the same on every
 * node, with several nodes), else 32 random bytes in hex. Throws ERR_LLMK_ARG.
 */
export function launchToken(env: Record<string, string | undefined>, nnodes = 1): string {
  const given = env.LLMK_STORE_TOKEN;
  if (given === undefined || given === '') {
    check(nnodes === 1, 'ERR_LLMK_ARG',
      `launch: --nnodes ${nnodes} needs LLMK_STORE_TOKEN: the same secret on every node (e.g. export LLMK_STORE_TOKEN=$(openssl rand -hex 32))`);
    return randomBytes(32).toString('hex');
  }
  check(given.length >= MIN_TOKEN_CHARS, 'ERR_LLMK_ARG', `launch: LLMK_STORE_TOKEN must have at least ${MIN_TOKEN_CHARS} characters`);
  return given;
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
  const token = opts.token ?? launchToken({ ...process.env, ...opts.env }, nnodes);
  const sentinel = startSentinel(grace);
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
        LLMK_STORE_TOKEN: token,
      };
      const c = spawn(process.execPath, [opts.script, ...(opts.args ?? [])], { env, stdio: 'inherit' });
      children.push(c);
      if (c.pid !== undefined) sentinel.watch(c.pid);
      c.on('error', (e) => {
        log(`[llm-kernels launch] rank ${rank} could not start: ${e.message}`);
      });
      c.on('exit', (code, signal) => {
        running--;
        if (c.pid !== undefined) sentinel.unwatch(c.pid);
        const status = code ?? (signal ? 128 + (require('os').constants.signals[signal] ?? 1) : 1); // eslint-disable-line @typescript-eslint/no-require-imports
        if (status !== 0 && !firstFailure) {
          firstFailure = { rank, code: status };
          teardown(`rank ${rank} ${code !== null ? `exited with code ${code}` : `was killed by ${signal}`}`);
        }
        if (running === 0) {
          if (killTimer) clearTimeout(killTimer);
          sentinel.close();
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
