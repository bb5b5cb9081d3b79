/**
 * The job a process belongs to, read from the environment of the launcher that started it:
 * - `llm-kernels launch` / torchrun: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT (these win);
 * - Open MPI's mpirun: OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK; MPICH/Hydra and other PMI launchers:
 *   PMI_RANK/PMI_SIZE (MPI_LOCALRANKID);
 * - Slurm's srun: SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID; the master defaults to the first host of
 *   SLURM_JOB_NODELIST and the port to 20000 + SLURM_JOB_ID mod 10000 (the same on every rank of a job,
 *   different for jobs sharing a node).
 * MPI is read before Slurm: mpirun inside a Slurm allocation numbers its processes itself. The job token
 * is LLMK_STORE_TOKEN in every case.
 */
import { check } from '../errors';
import { rendezvous } from './store';

export interface JobEnv {
  /** Which launcher's variables described the job. */
  source: 'torchrun' | 'mpi' | 'slurm';
  rank: number;
  worldSize: number;
  localRank: number;
  masterAddr: string;
  masterPort: number;
  /** LLMK_STORE_TOKEN, when set. */
  token: string | undefined;
}

type Env = Record<string, string | undefined>;

const HINT = 'start the script with `npx llm-kernels launch`, torchrun, Slurm\'s srun or mpirun';

/** The first host name of a Slurm node list: `node[01-04,07],gpu1` → `node01`. */
export function firstSlurmHost(list: string): string {
  check(typeof list === 'string', 'ERR_LLMK_ARG', 'dist.firstSlurmHost: the node list must be a string');
  const bad = (why: string) => `dist.initFromEnv: SLURM_JOB_NODELIST=${JSON.stringify(list)} ${why}`;
  let host = '';
  for (let i = 0; i < list.length && list[i] !== ','; i++) {
    if (list[i] === ']') check(false, 'ERR_LLMK_ARG', bad('has an unmatched ]'));
    if (list[i] !== '[') { host += list[i]; continue; }
    const end = list.indexOf(']', i);
    check(end > i, 'ERR_LLMK_ARG', bad('has an unclosed ['));
    // The first item of the bracket, and of a range its low end (keeping its zero padding).
    const first = list.slice(i + 1, end).split(',')[0].split('-')[0];
    check(/^\d+$/.test(first), 'ERR_LLMK_ARG', bad(`has a bad range [${list.slice(i + 1, end)}]`));
    host += first;
    i = end;
  }
  check(host !== '', 'ERR_LLMK_ARG', bad('names no host'));
  return host;
}

/** Reads the job from `env`; throws ERR_LLMK_ARG naming the variable that is missing or bad. */
export function jobFromEnv(env: Env): JobEnv {
  check(env !== null && typeof env === 'object', 'ERR_LLMK_ARG', 'dist.jobFromEnv: env must be an object of variables (process.env)');
  const get = (k: string): string | undefined => (env[k] === '' || env[k] === undefined ? undefined : String(env[k]));
  const num = (k: string, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const raw = get(k);
    check(raw !== undefined, 'ERR_LLMK_ARG', () => `dist.initFromEnv: ${k} is not set (${HINT})`);
    const v = Number(raw);
    check(/^\d+$/.test(raw.trim()) && v >= min && v <= max, 'ERR_LLMK_ARG', () => `dist.initFromEnv: ${k}=${raw} is not an integer in [${min}, ${max}]`);
    return v;
  };
  let source: JobEnv['source'], rankVar: string, sizeVar: string;
  if (get('RANK') !== undefined || get('WORLD_SIZE') !== undefined) [source, rankVar, sizeVar] = ['torchrun', 'RANK', 'WORLD_SIZE'];
  else if (get('OMPI_COMM_WORLD_RANK') !== undefined) [source, rankVar, sizeVar] = ['mpi', 'OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE'];
  else if (get('PMI_RANK') !== undefined) [source, rankVar, sizeVar] = ['mpi', 'PMI_RANK', 'PMI_SIZE'];
  else if (get('SLURM_PROCID') !== undefined) [source, rankVar, sizeVar] = ['slurm', 'SLURM_PROCID', 'SLURM_NTASKS'];
  else [source, rankVar, sizeVar] = ['torchrun', 'RANK', 'WORLD_SIZE'];
  const rank = num(rankVar, 0);
  const worldSize = num(sizeVar, 1);
  check(rank < worldSize, 'ERR_LLMK_ARG', () => `dist.initFromEnv: ${rankVar}=${rank} is not below ${sizeVar}=${worldSize}`);
  const localVar = ['LOCAL_RANK', 'OMPI_COMM_WORLD_LOCAL_RANK', 'MPI_LOCALRANKID', 'SLURM_LOCALID'].find((k) => get(k) !== undefined);
  const localRank = localVar ? num(localVar, 0) : rank;
  const nodelist = get('SLURM_JOB_NODELIST') ?? get('SLURM_NODELIST');
  const masterAddr = get('MASTER_ADDR') ?? (nodelist !== undefined ? firstSlurmHost(nodelist) : '127.0.0.1');
  const masterPort = get('MASTER_PORT') === undefined && get('SLURM_JOB_ID') !== undefined
    ? 20000 + (num('SLURM_JOB_ID', 0) % 10000)
    : num('MASTER_PORT', 1, 65535);
  return { source, rank, worldSize, localRank, masterAddr, masterPort, token: get('LLMK_STORE_TOKEN') };
}

/**
 * Reads the job from `env` and agrees on its unique id through rank 0's store (rank 0 calls `makeId`).
 * What {@link initFromEnv} does before it joins the communicator.
 */
export async function joinJob(env: Env, makeId: () => Uint8Array, timeoutMs: number): Promise<{ job: JobEnv; uniqueId: Uint8Array }> {
  const job = jobFromEnv(env);
  const uniqueId = await rendezvous({
    rank: job.rank, worldSize: job.worldSize, host: job.masterAddr, port: job.masterPort, token: job.token, timeoutMs, makeId,
  });
  return { job, uniqueId };
}
