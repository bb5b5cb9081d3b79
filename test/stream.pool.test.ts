// Waiting for a device must not occupy libuv's thread pool: with more pending toArray()/synchronize()
// calls than the pool has threads, an unrelated fs.readFile still completes at once, and every wait
// resolves once the device work is done.
import { promises as fs } from 'fs';
import { full, synchronize } from '../ts';
import { native } from '../ts/native';

const POOL = Number(process.env.UV_THREADPOOL_SIZE) || 4;
const SLEEP_MS = 1500;

describe('device waits and the libuv pool', () => {
  it(`${2 * POOL} pending toArray() and synchronize() do not delay fs.readFile`, async () => {
    const x = full([4], 7);
    native.debugSleep(SLEEP_MS);  // the CPU stream is busy for SLEEP_MS: every wait below is pending
    const y = full([4], 3);
    const reads = Array.from({ length: 2 * POOL }, () => y.toArray());
    const syncs = Array.from({ length: POOL }, () => synchronize('cpu'));
    const t0 = Date.now();
    await fs.readFile(__filename);
    const readMs = Date.now() - t0;
    expect(readMs).toBeLessThan(SLEEP_MS / 3);
    const values = await Promise.all(reads);
    await Promise.all(syncs);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(SLEEP_MS / 2);  // they really were pending
    for (const v of values) expect(Array.from(v as Float32Array)).toEqual([3, 3, 3, 3]);
    expect(Array.from((await x.toArray()) as Float32Array)).toEqual([7, 7, 7, 7]);
    x.dispose(); y.dispose();
  });
});
