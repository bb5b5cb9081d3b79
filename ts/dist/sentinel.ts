/**
 * Keeps the ranks of `llm-kernels launch` from outliving it, even when the launcher is killed with
 * SIGKILL (which it cannot catch). A small sentinel process holds the read end of a pipe from the
 * launcher and learns each rank's pid through it; when the pipe closes without a clean goodbye — the
 * kernel closes it whatever way the launcher died — the sentinel sends SIGTERM to the ranks still
 * running and SIGKILL after the grace period. It runs in its own event loop, so ranks stuck in
 * synchronous code are stopped too, and ranks need no code of ours.
 */
import { spawn, ChildProcess } from 'child_process';

// Plain JavaScript for `node -e`: argv[1] is the grace period in ms. Lines: "+pid", "-pid", "bye".
const SENTINEL_JS = `
for (const s of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(s, () => {});
const grace = Number(process.argv[1]);
const pids = new Set();
let buf = '', bye = false;
const alive = (p) => { try { process.kill(p, 0); return true; } catch { return false; } };
const signal = (p, s) => { try { process.kill(p, s); } catch {} };
process.stdin.setEncoding('utf8');
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    if (line === 'bye') bye = true;
    else if (line[0] === '+') pids.add(Number(line.slice(1)));
    else if (line[0] === '-') pids.delete(Number(line.slice(1)));
  }
});
process.stdin.on('close', () => {
  if (bye || pids.size === 0) process.exit(0);
  for (const p of pids) signal(p, 'SIGTERM');
  const t0 = Date.now();
  const tick = () => {
    const left = [...pids].filter(alive);
    if (left.length === 0) process.exit(0);
    if (Date.now() - t0 >= grace) { for (const p of left) signal(p, 'SIGKILL'); process.exit(0); }
    setTimeout(tick, 50);
  };
  tick();
});
`;

export interface Sentinel {
  /** A rank started: stop it if the launcher dies. */
  watch(pid: number): void;
  /** A rank ended: forget it (its pid may be reused). */
  unwatch(pid: number): void;
  /** The launcher is done: the sentinel exits without touching anything. */
  close(): void;
}

export function startSentinel(graceMs: number): Sentinel {
  const c: ChildProcess = spawn(process.execPath, ['-e', SENTINEL_JS, String(graceMs)], { stdio: ['pipe', 'ignore', 'inherit'] });
  c.unref();
  c.on('error', () => { /* no sentinel: the launcher still stops its ranks on every death it can see */ });
  const stdin = c.stdin!;
  stdin.on('error', () => { /* the sentinel went away */ });
  // Pipes are libuv handles: unref'd so that a finished launcher exits without waiting for them.
  (stdin as unknown as { unref?: () => void }).unref?.();
  const send = (line: string) => { if (stdin.writable) stdin.write(line + '\n'); };
  return {
    watch: (pid) => send(`+${pid}`),
    unwatch: (pid) => send(`-${pid}`),
    close: () => { send('bye'); stdin.end(); },
  };
}
