// The rendezvous store admits only its own job's ranks (HMAC with the job token, per-connection nonces and
// sequence numbers), ranks refuse a store that cannot prove the token, and the store bounds its resources
// (a deadline for unregistered connections, a limit on them; clients retry with backoff).
import { spawn } from 'child_process';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { fetchUniqueId, rendezvous, TCPStoreServer } from '../ts/dist/store';
import { newNonce, StoreChannel, STORE_PROTO } from '../ts/dist/store_auth';
import { cpuDescribe, freePort, ROOT, scratch, TEST_TOKEN } from './dist-helpers';

/* eslint-disable @typescript-eslint/no-explicit-any */

const ID = new Uint8Array(128).map((_, i) => (i * 37 + 11) & 255);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A raw connection: collects the lines the server sends and tells when it closes. */
function rawConnect(port: number, host = '127.0.0.1') {
  const sock = net.connect({ port, host });
  const lines: any[] = [];
  let buf = '';
  let waiters: (() => void)[] = [];
  const closed = new Promise<void>((r) => sock.on('close', () => r()));
  sock.on('error', () => { /* seen as close */ });
  sock.setEncoding('utf8');
  sock.on('data', (d: string) => {
    buf += d;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) { lines.push(JSON.parse(buf.slice(0, i))); buf = buf.slice(i + 1); }
    waiters.forEach((w) => w());
    waiters = [];
  });
  /** The n-th line from the server, or null when the connection closes first. */
  const line = async (n: number): Promise<any> => {
    let isClosed = false;
    void closed.then(() => { isClosed = true; waiters.forEach((w) => w()); });
    while (lines.length <= n && !isClosed) await new Promise<void>((r) => waiters.push(r));
    return lines[n] ?? null;
  };
  return { sock, lines, line, closed };
}

/** Connects, answers the challenge with `token`, sends `body` as the hello; returns the socket and channel. */
async function authedHello(port: number, token: string, body: object) {
  const c = rawConnect(port);
  const challenge = await c.line(0);
  const nonce = newNonce();
  const ch = new StoreChannel(token, challenge.nonce, nonce, 'client');
  const hello = ch.seal(body, { proto: STORE_PROTO, nonce });
  c.sock.write(hello);
  return { ...c, ch, hello, challenge };
}

const refusedAuth = { ok: false, code: 'ERR_LLMK_AUTH' };

cpuDescribe('dist store authentication', () => {
  test('a client without the token cannot register or get the unique id', async () => {
    const server = await TCPStoreServer.listen({ port: 0, worldSize: 2, uniqueId: ID, timeoutMs: 10000, token: TEST_TOKEN });
    try {
      // the old, unauthenticated hello
      const a = rawConnect(server.port);
      await a.line(0);
      a.sock.write(JSON.stringify({ proto: 'llmk-store-1', rank: 1, worldSize: 2 }) + '\n');
      expect(await a.line(1)).toMatchObject(refusedAuth);
      await a.closed;
      // a well-formed hello under the wrong token
      const b = await authedHello(server.port, 'wrong-token-0123456789', { rank: 1, worldSize: 2 });
      expect(await b.line(1)).toMatchObject(refusedAuth);
      await b.closed;
      expect(b.lines.some((l) => 'uniqueId' in l || (l.body && l.body.includes('uniqueId')))).toBe(false);
      await expect(fetchUniqueId({ port: server.port, rank: 1, worldSize: 2, timeoutMs: 5000, token: 'another-wrong-token-xyz' }))
        .rejects.toMatchObject({ code: 'ERR_LLMK_AUTH', message: expect.stringMatching(/LLMK_STORE_TOKEN/) });
      // none of them took rank 1's place: the real rank 1 still gets the id
      const id = await fetchUniqueId({ port: server.port, rank: 1, worldSize: 2, timeoutMs: 5000, token: TEST_TOKEN });
      expect(Array.from(id)).toEqual(Array.from(ID));
      await server.done;
    } finally {
      server.close();
    }
  });

  test('a replayed message is refused, within a connection and on another one', async () => {
    const server = await TCPStoreServer.listen({ port: 0, worldSize: 3, uniqueId: ID, timeoutMs: 10000, token: TEST_TOKEN });
    try {
      const a = await authedHello(server.port, TEST_TOKEN, { rank: 1, worldSize: 3 });
      await sleep(100);
      a.sock.write(a.hello); // the same frame again (sequence number 0 once more)
      const r = await a.line(1);
      expect(r.ok ?? a.ch.open(r).ok).toBe(false);
      await a.closed;
      // rank 1's recorded hello, replayed on a new connection (new server nonce): refused
      const b = rawConnect(server.port);
      await b.line(0);
      b.sock.write(a.hello);
      expect(await b.line(1)).toMatchObject(refusedAuth);
      await b.closed;
      const ids = await Promise.all([1, 2].map((rank) => fetchUniqueId({ port: server.port, rank, worldSize: 3, timeoutMs: 5000, token: TEST_TOKEN })));
      for (const id of ids) expect(Array.from(id)).toEqual(Array.from(ID));
    } finally {
      server.close();
    }
  });

  test('an authenticated client with a bad hello is refused: world size mismatch, rank out of range, duplicate rank', async () => {
    const server = await TCPStoreServer.listen({ port: 0, worldSize: 3, uniqueId: ID, timeoutMs: 10000, token: TEST_TOKEN });
    const answer = async (body: object) => {
      const c = await authedHello(server.port, TEST_TOKEN, body);
      const r = await c.line(1);
      return c.ch.open(r);
    };
    try {
      expect(await answer({ rank: 1, worldSize: 2 })).toMatchObject({ ok: false, error: expect.stringMatching(/WORLD_SIZE mismatch/) });
      expect(await answer({ rank: 5, worldSize: 3 })).toMatchObject({ ok: false, error: expect.stringMatching(/out of range/) });
      const first = fetchUniqueId({ port: server.port, rank: 1, worldSize: 3, timeoutMs: 10000, token: TEST_TOKEN });
      await sleep(200);
      expect(await answer({ rank: 1, worldSize: 3 })).toMatchObject({ ok: false, error: expect.stringMatching(/arrived twice/) });
      const second = fetchUniqueId({ port: server.port, rank: 2, worldSize: 3, timeoutMs: 10000, token: TEST_TOKEN });
      expect(Array.from(await first)).toEqual(Array.from(ID));
      expect(Array.from(await second)).toEqual(Array.from(ID));
      await server.done;
    } finally {
      server.close();
    }
  });

  test('nothing more is read from a refused connection', async () => {
    const server = await TCPStoreServer.listen({ port: 0, worldSize: 3, uniqueId: ID, timeoutMs: 10000, token: TEST_TOKEN });
    try {
      const first = fetchUniqueId({ port: server.port, rank: 1, worldSize: 3, timeoutMs: 10000, token: TEST_TOKEN });
      let firstDone = false;
      void first.then(() => { firstDone = true; });
      await sleep(200);
      // a duplicate hello (refused), then at once a hello for rank 2 on the same connection
      const c = rawConnect(server.port);
      const challenge = await c.line(0);
      const nonce = newNonce();
      const ch = new StoreChannel(TEST_TOKEN, challenge.nonce, nonce, 'client');
      c.sock.write(ch.seal({ rank: 1, worldSize: 3 }, { proto: STORE_PROTO, nonce }) + ch.seal({ rank: 2, worldSize: 3 }, { proto: STORE_PROTO, nonce }));
      await c.line(1);
      await sleep(200);
      expect(c.lines.length).toBe(2); // the refusal only
      expect(firstDone).toBe(false); // rank 2 was not registered on the refused connection
      expect(ch.open(c.lines[1])).toMatchObject({ ok: false, error: expect.stringMatching(/arrived twice/) });
      const second = fetchUniqueId({ port: server.port, rank: 2, worldSize: 3, timeoutMs: 10000, token: TEST_TOKEN });
      expect(Array.from(await first)).toEqual(Array.from(ID));
      expect(Array.from(await second)).toEqual(Array.from(ID));
    } finally {
      server.close();
    }
  });

  test('the unique id does not cross the wire in the clear', async () => {
    const server = await TCPStoreServer.listen({ port: 0, worldSize: 2, uniqueId: ID, timeoutMs: 10000, token: TEST_TOKEN });
    try {
      const c = await authedHello(server.port, TEST_TOKEN, { rank: 1, worldSize: 2 });
      const wire = JSON.stringify(await c.line(1));
      expect(wire).not.toContain(Buffer.from(ID).toString('base64'));
      expect(wire).not.toContain(Buffer.from(ID).toString('hex'));
      const body = c.ch.open(JSON.parse(wire));
      expect(Array.from(c.ch.decryptId(body.uniqueId))).toEqual(Array.from(ID));
    } finally {
      server.close();
    }
  });

  test('ranks refuse a squatter: a store with another token, or one that does not authenticate', async () => {
    const squatter = await TCPStoreServer.listen({ port: 0, worldSize: 2, uniqueId: new Uint8Array(128).fill(1), timeoutMs: 10000, token: 'squatter-token-0123456789' });
    try {
      await expect(fetchUniqueId({ port: squatter.port, rank: 1, worldSize: 2, timeoutMs: 5000, token: TEST_TOKEN })).rejects.toMatchObject({ code: 'ERR_LLMK_AUTH' });
    } finally {
      squatter.close();
    }
    // an old-protocol store that hands out an id straight away
    const plain = net.createServer((s) => { s.write(JSON.stringify({ ok: true, uniqueId: Buffer.alloc(128, 2).toString('base64') }) + '\n'); });
    await new Promise<void>((r) => plain.listen(0, '127.0.0.1', () => r()));
    try {
      await expect(fetchUniqueId({ port: (plain.address() as net.AddressInfo).port, rank: 1, worldSize: 2, timeoutMs: 5000, token: TEST_TOKEN }))
        .rejects.toMatchObject({ code: 'ERR_LLMK_AUTH' });
    } finally {
      plain.close();
    }
  });

  test('a token is required, and must be a string of 16+ characters', async () => {
    const port = await freePort();
    const base = { rank: 0, worldSize: 2, port, timeoutMs: 1000, makeId: () => ID };
    await expect(rendezvous({ ...base, token: undefined as any })).rejects.toMatchObject({ code: 'ERR_LLMK_ARG', message: expect.stringMatching(/LLMK_STORE_TOKEN/) });
    await expect(rendezvous({ ...base, token: 'short' })).rejects.toMatchObject({ code: 'ERR_LLMK_ARG', message: expect.stringMatching(/16/) });
    await expect(rendezvous({ ...base, rank: 1, token: 42 as any })).rejects.toMatchObject({ code: 'ERR_LLMK_ARG' });
  });

  test('rank 0 binds MASTER_ADDR only, not every interface', async () => {
    const ip = Object.values(os.networkInterfaces()).flat().find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
    if (!ip) { console.warn('skipped: this machine has no non-loopback IPv4 address'); return; }
    const port = await freePort();
    const r0 = rendezvous({ rank: 0, worldSize: 2, host: ip, port, timeoutMs: 10000, token: TEST_TOKEN, makeId: () => ID });
    await sleep(200);
    // not reachable through loopback
    const viaLoopback = await new Promise<string>((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' }, () => { s.destroy(); resolve('connected'); });
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    expect(viaLoopback).toBe('ECONNREFUSED');
    const id = await fetchUniqueId({ host: ip, port, rank: 1, worldSize: 2, timeoutMs: 5000, token: TEST_TOKEN });
    expect(Array.from(id)).toEqual(Array.from(ID));
    await r0;
  });
});

cpuDescribe('dist store resources', () => {
  test('a connection that never registers is closed after the deadline', async () => {
    const server = await TCPStoreServer.listen({ port: 0, worldSize: 2, uniqueId: ID, timeoutMs: 20000, token: TEST_TOKEN, helloTimeoutMs: 300 });
    try {
      const t0 = Date.now();
      const c = rawConnect(server.port);
      await c.closed;
      expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
      expect(Date.now() - t0).toBeLessThan(5000);
    } finally {
      server.close();
    }
  });

  test('unregistered connections beyond the limit are closed at once', async () => {
    const server = await TCPStoreServer.listen({ port: 0, worldSize: 2, uniqueId: ID, timeoutMs: 20000, token: TEST_TOKEN, maxPending: 3 });
    const conns = Array.from({ length: 8 }, () => rawConnect(server.port));
    try {
      // each one either gets the store's challenge or is closed
      const first = await Promise.all(conns.map((c) => c.line(0)));
      expect(first.filter((l) => l !== null).length).toBe(3);
      // a real rank still gets in once the squatting connections go away
      for (const c of conns) c.sock.destroy();
      const id = await fetchUniqueId({ port: server.port, rank: 1, worldSize: 2, timeoutMs: 5000, token: TEST_TOKEN });
      expect(Array.from(id)).toEqual(Array.from(ID));
    } finally {
      for (const c of conns) c.sock.destroy();
      server.close();
    }
  });

  test('a rank turned away by the limit retries with backoff and gets in after the deadline frees a slot', async () => {
    const server = await TCPStoreServer.listen({ port: 0, worldSize: 2, uniqueId: ID, timeoutMs: 20000, token: TEST_TOKEN, maxPending: 1, helloTimeoutMs: 600 });
    const squat = rawConnect(server.port);
    try {
      await squat.line(0);
      const t0 = Date.now();
      const id = await fetchUniqueId({ port: server.port, rank: 1, worldSize: 2, timeoutMs: 15000, token: TEST_TOKEN });
      expect(Array.from(id)).toEqual(Array.from(ID));
      expect(Date.now() - t0).toBeLessThan(8000);
      await server.done;
    } finally {
      squat.sock.destroy();
      server.close();
    }
  });

  test('a rank that starts before the store retries until it is up', async () => {
    const port = await freePort();
    const r1 = fetchUniqueId({ port, rank: 1, worldSize: 2, timeoutMs: 8000, token: TEST_TOKEN });
    await sleep(700);
    const r0 = rendezvous({ rank: 0, worldSize: 2, port, timeoutMs: 8000, token: TEST_TOKEN, makeId: () => ID });
    expect(Array.from(await r1)).toEqual(Array.from(ID));
    await r0;
  });

  test('when the rendezvous is over, lingering connections are closed (rank 0 is not kept alive)', async () => {
    const port = await freePort();
    const r0 = rendezvous({ rank: 0, worldSize: 2, port, timeoutMs: 10000, token: TEST_TOKEN, makeId: () => ID });
    await sleep(100);
    const idle = rawConnect(port);
    await idle.line(0);
    await fetchUniqueId({ port, rank: 1, worldSize: 2, timeoutMs: 5000, token: TEST_TOKEN });
    await r0;
    const t0 = Date.now();
    await idle.closed;
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  test('LLMK_STORE_HELLO_TIMEOUT_MS and LLMK_STORE_MAX_PENDING configure rendezvous(); bad values are refused', async () => {
    const saved = { ...process.env };
    try {
      process.env.LLMK_STORE_HELLO_TIMEOUT_MS = '300';
      process.env.LLMK_STORE_MAX_PENDING = '2';
      const port = await freePort();
      const r0 = rendezvous({ rank: 0, worldSize: 2, port, timeoutMs: 10000, token: TEST_TOKEN, makeId: () => ID });
      await sleep(100);
      const conns = Array.from({ length: 4 }, () => rawConnect(port));
      const first = await Promise.all(conns.map((c) => c.line(0)));
      expect(first.filter((l) => l !== null).length).toBe(2);
      const t0 = Date.now();
      await Promise.all(conns.map((c) => c.closed));
      expect(Date.now() - t0).toBeLessThan(5000);
      await fetchUniqueId({ port, rank: 1, worldSize: 2, timeoutMs: 5000, token: TEST_TOKEN });
      await r0;
      process.env.LLMK_STORE_MAX_PENDING = 'many';
      await expect(rendezvous({ rank: 0, worldSize: 2, port, timeoutMs: 1000, token: TEST_TOKEN, makeId: () => ID }))
        .rejects.toMatchObject({ code: 'ERR_LLMK_ARG', message: expect.stringMatching(/LLMK_STORE_MAX_PENDING/) });
    } finally {
      process.env = saved;
    }
  });
});

cpuDescribe('dist store under descriptor exhaustion', () => {
  const { script, cleanup } = scratch('llmk-dist-emfile-');
  afterAll(cleanup);

  test('rank 0 out of file descriptors: a rank is turned away, retries, and gets in once idle connections expire', async () => {
    const s = script('store.js', `
      const { TCPStoreServer } = require(${JSON.stringify(path.join(ROOT, 'ts/dist/store.ts'))});
      TCPStoreServer.listen({ port: 0, worldSize: 2, uniqueId: new Uint8Array(128).fill(5), timeoutMs: 30000,
        token: ${JSON.stringify(TEST_TOKEN)}, helloTimeoutMs: 1500, maxPending: 100000 }).then(async (server) => {
        console.log('PORT ' + server.port);
        await server.done;
        console.log('DONE');
        server.close();
      });
    `);
    // A descriptor limit a little above what Node needs at start-up.
    const store = spawn('sh', ['-c', `ulimit -n 64 && exec "${process.execPath}" "${s}"`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    store.stdout.on('data', (d) => (out += d));
    const conns: ReturnType<typeof rawConnect>[] = [];
    try {
      for (const t0 = Date.now(); !/PORT \d+/.test(out) && Date.now() - t0 < 30000;) await sleep(50);
      expect(out).toMatch(/PORT \d+/);
      const port = +/PORT (\d+)/.exec(out)![1];
      for (let i = 0; i < 80; i++) conns.push(rawConnect(port));
      // exhausted: connections beyond the descriptors are accepted and closed at once (libuv's EMFILE handling)
      const first = await Promise.race([Promise.all(conns.map((c) => c.line(0))), sleep(5000).then(() => null)]);
      expect(first).not.toBeNull();
      expect(first!.filter((l) => l === null).length).toBeGreaterThan(0);
      const t0 = Date.now();
      const id = await fetchUniqueId({ port, rank: 1, worldSize: 2, timeoutMs: 20000, token: TEST_TOKEN });
      expect(Array.from(id)).toEqual(new Array(128).fill(5));
      expect(Date.now() - t0).toBeGreaterThan(300); // it had to wait for descriptors to be freed
      const t1 = Date.now();
      while (!/DONE/.test(out) && Date.now() - t1 < 5000) await sleep(50);
      expect(out).toMatch(/DONE/);
    } finally {
      for (const c of conns) c.sock.destroy();
      store.kill('SIGKILL');
    }
  });
});
