// Nothing may crash the process: every native entry point called with hostile arguments (wrong types,
// negative, huge, NaN, stale handles) must throw or reject, never kill the process. Runs in a child
// process so a crash is seen as a failed exit status.
import { spawnSync } from 'child_process';
import * as path from 'path';

describe('native entry points under hostile arguments', () => {
  it('throw instead of crashing', () => {
    const lib = path.join(__dirname, '..', 'lib');
    const script = `
      const { native } = require(${JSON.stringify(path.join(lib, 'native.js'))});
      const l = require(${JSON.stringify(lib)});
      const t = l.tensor(new Float32Array([1, 2, 3, 4]), { shape: [2, 2] });
      const stale = l.tensor(new Float32Array([1]));
      const staleHandle = stale._h; stale.dispose();
      const vals = [undefined, null, 0, -1, 1.5, 1e300, NaN, 'x', {}, [], [1, -2], [2, 2], t._h, staleHandle,
                    t._h + 1, 2 ** 40, new Float32Array(2), () => 0, true, new native.NativeStream(0, 0),
                    native.attention.plan(new Int32Array([0, 1]), new Int32Array([0]), { qLen: 64, kLen: 64 }, 0, 0)];
      const skip = new Set(['setErrorClass', 'deviceTime', 'NativeStream', 'ncclProbe']);
      // top-level functions and those of every namespace object (native.moe, native.int4, native.dist, native.attention, ...)
      const all = Object.entries(native).flatMap(([k, v]) => v !== null && typeof v === 'object'
        ? Object.entries(v).map(([j, f]) => [k + '.' + j, f]) : [[k, v]]);
      let calls = 0, threw = 0;
      for (const [name, fn] of all) {
        if (typeof fn !== 'function' || skip.has(name.split('.').pop())) continue;
        for (let n = 0; n < 200; n++) {
          const args = Array.from({ length: 1 + (n % 9) }, (_, i) => vals[(n * 7 + i * 13 + name.length) % vals.length]);
          calls++;
          try { const r = fn(...args); if (r && typeof r.then === 'function') r.catch(() => {}); } catch { threw++; }
        }
      }
      l.synchronizeSync('cpu');
      console.log(JSON.stringify({ calls, threw }));`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120000 });
    expect(r.signal).toBeNull();
    expect(r.status).toBe(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.calls).toBeGreaterThan(5000);
    expect(out.threw).toBeGreaterThan(out.calls / 2);
  });
});
