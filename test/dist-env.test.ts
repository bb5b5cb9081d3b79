// dist.initFromEnv's view of the job: torchrun / `llm-kernels launch` variables, Slurm (srun) and MPI
// (Open MPI's mpirun, PMI), with explicit RANK/WORLD_SIZE winning; and a real `mpirun -np 2` through the
// rendezvous.
import { spawnSync } from 'child_process';
import * as path from 'path';
import { firstSlurmHost, jobFromEnv } from '../ts/dist/env';
import { cpuDescribe, freePort, ROOT, runProcess, scratch, TEST_TOKEN } from './dist-helpers';

const { script, cleanup } = scratch('llmk-dist-env-');
afterAll(cleanup);

describe('first host of a Slurm node list', () => {
  test.each([
    ['node01', 'node01'],
    ['node[01-04,07]', 'node01'],
    ['node[07,01-04]', 'node07'],
    ['gpu-a,gpu-b', 'gpu-a'],
    ['n[007]', 'n007'],
    ['rack[2-3]-n[5,9],login1', 'rack2-n5'],
    ['node[10-12]-ib', 'node10-ib'],
  ])('%s → %s', (list, host) => { expect(firstSlurmHost(list)).toBe(host); });

  test.each(['', 'node[', 'node[]', 'node[-3]', ',a', 'a]b'])('%j is refused', (list) => {
    expect(() => firstSlurmHost(list)).toThrow(expect.objectContaining({ code: 'ERR_LLMK_ARG', message: expect.stringMatching(/SLURM_JOB_NODELIST/) }));
  });
});

describe('jobFromEnv', () => {
  const torch = { RANK: '3', WORLD_SIZE: '8', LOCAL_RANK: '1', MASTER_ADDR: 'h0', MASTER_PORT: '1234', LLMK_STORE_TOKEN: TEST_TOKEN };
  const slurm = { SLURM_PROCID: '5', SLURM_NTASKS: '8', SLURM_LOCALID: '1', SLURM_JOB_NODELIST: 'gpu[07-08,11],cpu01', SLURM_JOB_ID: '123456' };
  const ompi = { OMPI_COMM_WORLD_RANK: '1', OMPI_COMM_WORLD_SIZE: '4', OMPI_COMM_WORLD_LOCAL_RANK: '0', MASTER_PORT: '2000' };

  test('torchrun / llm-kernels launch variables', () => {
    expect(jobFromEnv(torch)).toEqual({ source: 'torchrun', rank: 3, worldSize: 8, localRank: 1, masterAddr: 'h0', masterPort: 1234, token: TEST_TOKEN });
    expect(jobFromEnv({ RANK: '0', WORLD_SIZE: '2', MASTER_PORT: '9' })).toMatchObject({ localRank: 0, masterAddr: '127.0.0.1', token: undefined });
  });

  test('Slurm: rank, size, local id, first node as master, port from the job id', () => {
    expect(jobFromEnv(slurm)).toEqual({ source: 'slurm', rank: 5, worldSize: 8, localRank: 1, masterAddr: 'gpu07', masterPort: 20000 + (123456 % 10000), token: undefined });
    expect(jobFromEnv({ ...slurm, MASTER_ADDR: '10.1.1.1', MASTER_PORT: '7777' })).toMatchObject({ masterAddr: '10.1.1.1', masterPort: 7777 });
  });

  test('Open MPI and PMI', () => {
    expect(jobFromEnv(ompi)).toEqual({ source: 'mpi', rank: 1, worldSize: 4, localRank: 0, masterAddr: '127.0.0.1', masterPort: 2000, token: undefined });
    expect(jobFromEnv({ PMI_RANK: '2', PMI_SIZE: '3', MPI_LOCALRANKID: '0', MASTER_PORT: '2000' })).toMatchObject({ source: 'mpi', rank: 2, worldSize: 3, localRank: 0 });
    expect(jobFromEnv({ PMI_RANK: '2', PMI_SIZE: '3', MASTER_PORT: '2000' })).toMatchObject({ localRank: 2 });
    // mpirun inside a Slurm allocation: MPI's numbering (per process), the allocation's first node
    expect(jobFromEnv({ ...slurm, ...ompi, SLURM_PROCID: '0' })).toMatchObject({ source: 'mpi', rank: 1, worldSize: 4, masterAddr: 'gpu07', masterPort: 2000 });
  });

  test('explicit RANK/WORLD_SIZE win over Slurm and MPI', () => {
    expect(jobFromEnv({ ...slurm, ...ompi, ...torch })).toMatchObject({ source: 'torchrun', rank: 3, worldSize: 8, localRank: 1, masterAddr: 'h0', masterPort: 1234 });
  });

  test('missing or bad variables are coded errors naming them', () => {
    const bad = (env: Record<string, string>, re: RegExp) =>
      expect(() => jobFromEnv(env)).toThrow(expect.objectContaining({ code: 'ERR_LLMK_ARG', message: expect.stringMatching(re) }));
    bad({}, /RANK is not set.*launch.*Slurm.*mpirun/s);
    bad({ RANK: '0' }, /WORLD_SIZE is not set/);
    bad({ RANK: '2', WORLD_SIZE: '2', MASTER_PORT: '1' }, /RANK=2 is not below WORLD_SIZE=2/);
    bad({ ...slurm, SLURM_NTASKS: 'x' }, /SLURM_NTASKS=x/);
    bad({ OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '2' }, /MASTER_PORT is not set/);
    bad({ ...torch, MASTER_PORT: '70000' }, /MASTER_PORT=70000/);
    bad({ ...slurm, SLURM_JOB_NODELIST: 'n[' }, /SLURM_JOB_NODELIST/);
  });

  test('hostile arguments are coded errors', () => {
    for (const v of [null, undefined, 42, 'RANK', Symbol('s')]) expect(() => jobFromEnv(v as never)).toThrow(expect.objectContaining({ code: 'ERR_LLMK_ARG' }));
    for (const v of [null, undefined, 42, {}, Symbol('s')]) expect(() => firstSlurmHost(v as never)).toThrow(expect.objectContaining({ code: 'ERR_LLMK_ARG' }));
    expect(() => jobFromEnv({ RANK: Symbol('r') as never, WORLD_SIZE: '2' })).toThrow(expect.objectContaining({ code: 'ERR_LLMK_ARG' }));
  });

  test('an empty variable counts as unset', () => {
    expect(jobFromEnv({ ...ompi, RANK: '', WORLD_SIZE: '' })).toMatchObject({ source: 'mpi', rank: 1 });
  });
});

const MPIRUN = spawnSync('sh', ['-c', 'command -v mpirun'], { encoding: 'utf8' }).stdout.trim();
const mpiTest = MPIRUN ? test : test.skip;
if (!MPIRUN) console.warn('dist-env: skipping the mpirun test: mpirun is not installed (apt-get install openmpi-bin; CI installs it)');

cpuDescribe('a job started by mpirun', () => {
  mpiTest('mpirun -np 2: both ranks find each other through the rendezvous and agree on the unique id', async () => {
    const port = await freePort();
    const s = script('mpi-rank.js', `
      const { joinJob } = require(${JSON.stringify(path.join(ROOT, 'ts/dist/env.ts'))});
      const crypto = require('crypto');
      joinJob(process.env, () => new Uint8Array(crypto.randomBytes(128)), 20000).then(({ job, uniqueId }) => {
        console.log('JOB ' + [job.source, job.rank, job.worldSize, job.localRank, Buffer.from(uniqueId).toString('hex')].join(' '));
      }, (e) => { console.log('ERR ' + e.code + ' ' + e.message); process.exitCode = 3; });
    `);
    // No torchrun variables: the job is described by mpirun's alone.
    const env = { RANK: '', WORLD_SIZE: '', LOCAL_RANK: '', MASTER_ADDR: '', MASTER_PORT: String(port), LLMK_STORE_TOKEN: TEST_TOKEN };
    const r = await runProcess(['--allow-run-as-root', '--oversubscribe', '-np', '2', '-x', 'MASTER_PORT', '-x', 'LLMK_STORE_TOKEN', process.execPath, s],
      env, 60000, MPIRUN);
    // (Open MPI may print harmless notices on stderr; the ranks' own failures show in stdout as ERR.)
    expect({ code: r.code, errors: r.stdout.split('\n').filter((l) => l.startsWith('ERR ')) }).toEqual({ code: 0, errors: [] });
    const jobs = r.stdout.split('\n').filter((l) => l.startsWith('JOB ')).map((l) => l.split(' ')).sort((a, b) => +a[2] - +b[2]);
    expect(jobs.map((j) => j.slice(1, 5))).toEqual([['mpi', '0', '2', '0'], ['mpi', '1', '2', '1']]);
    expect(jobs[0][5]).toMatch(/^[0-9a-f]{256}$/);
    expect(jobs[1][5]).toBe(jobs[0][5]);
  });
});
