/**
 * The rendezvous store: rank 0 serves the unique id over TCP (node:net), the other ranks fetch it.
 *
 * Protocol (one JSON object per line, UTF-8):
 *   client → server  {"proto":"llmk-store-1","rank":R,"worldSize":W}
 *   server → client  {"ok":true,"uniqueId":"<base64>"}   once every rank 1..W-1 has said hello
 *                    {"ok":false,"error":"..."}           bad hello, or the rendezvous failed
 *   client → server  {"ack":true}                         after it checked the id
 * The server checks the protocol, the world size and that each rank arrives once; it answers nobody
 * until all ranks are there, so a rank that never arrives fails every rank with the same clear message
 * when the timeout expires (ERR_LLMK_NCCL), never a hang.
 */
import * as net from 'net';
import { LlmkError, check } from '../errors';

export const STORE_PROTO = 'llmk-store-1';
const ID_BYTES = 128;
// Node's timers fire after 1 ms (with a TimeoutOverflowWarning) when the delay exceeds 2^31 - 1 ms, so a
// timeout above 24.8 days would expire at once; such timeouts wait 24.8 days (practically forever).
const MAX_TIMER_MS = 2 ** 31 - 1;
const timerMs = (ms: number): number => Math.min(Math.max(ms, 1), MAX_TIMER_MS);

export interface RendezvousOptions {
  rank: number;
  worldSize: number;
  /** MASTER_ADDR: where rank 0 listens (default 127.0.0.1). */
  host?: string;
  /** MASTER_PORT. */
  port: number;
  /** Bound on the whole rendezvous (default 10 minutes). */
  timeoutMs?: number;
  /** Rank 0: makes the unique id to hand out. */
  makeId: () => Uint8Array;
}

function storeError(msg: string, code: 'ERR_LLMK_NCCL' | 'ERR_LLMK_ARG' = 'ERR_LLMK_NCCL'): LlmkError {
  const e = new LlmkError(msg, code);
  if (code === 'ERR_LLMK_NCCL') e.ncclResult = 'ncclSystemError';
  return e;
}

/** Reads newline-delimited JSON objects from a socket. */
function lineReader(sock: net.Socket, onMsg: (m: any) => void, onBad: (why: string) => void): void { // eslint-disable-line @typescript-eslint/no-explicit-any
  let buf = '';
  sock.setEncoding('utf8');
  sock.on('data', (chunk: string) => {
    buf += chunk;
    if (buf.length > 1 << 16) { onBad('message too long'); sock.destroy(); return; }
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let m: unknown;
      try { m = JSON.parse(line); } catch { onBad('not JSON'); sock.destroy(); return; }
      onMsg(m);
    }
  });
}

/**
 * Rank 0's side: listens on host:port and hands `uniqueId` to ranks 1..worldSize-1.
 * `done` resolves once every rank acknowledged, and rejects (after telling the connected ranks) when
 * the timeout expires first.
 */
export class TCPStoreServer {
  readonly done: Promise<void>;
  private server: net.Server;
  private clients = new Map<number, net.Socket>();
  private acks = new Set<number>();
  private finished = false;
  private timer: NodeJS.Timeout;
  private resolveDone!: () => void;
  private rejectDone!: (e: Error) => void;

  private constructor(server: net.Server, readonly worldSize: number, readonly uniqueId: Uint8Array, readonly timeoutMs: number,
    readonly where: string) {
    this.server = server;
    this.done = new Promise<void>((res, rej) => { this.resolveDone = res; this.rejectDone = rej; });
    this.done.catch(() => { /* reported to whoever awaits it */ });
    this.timer = setTimeout(() => this.timeout(), timerMs(timeoutMs));
    server.on('connection', (s) => this.onConnection(s));
    if (worldSize === 1) this.finish();
  }

  /** Starts listening; rejects with ERR_LLMK_NCCL when the address cannot be bound. */
  static listen(opts: { host?: string; port: number; worldSize: number; uniqueId: Uint8Array; timeoutMs: number }): Promise<TCPStoreServer> {
    const host = opts.host ?? '127.0.0.1';
    const where = `${host}:${opts.port}`;
    return new Promise((resolve, reject) => {
      const server = net.createServer();
      server.once('error', (e: NodeJS.ErrnoException) =>
        reject(storeError(`dist store: rank 0 cannot listen on ${where}: ${e.code ?? e.message} (is MASTER_PORT in use by another job?)`)));
      server.listen(opts.port, host, () => {
        server.removeAllListeners('error');
        server.on('error', () => { /* after listen: reported through the clients */ });
        resolve(new TCPStoreServer(server, opts.worldSize, opts.uniqueId, opts.timeoutMs, where));
      });
    });
  }

  /** The port actually bound (useful with port 0). */
  get port(): number { return (this.server.address() as net.AddressInfo).port; }

  close(): void {
    clearTimeout(this.timer);
    for (const s of this.clients.values()) s.destroy();
    this.server.close();
  }

  private onConnection(sock: net.Socket): void {
    let rank = -1;
    const refuse = (why: string) => {
      if (sock.writable) sock.end(JSON.stringify({ ok: false, error: why }) + '\n');
      else sock.destroy();
    };
    sock.on('error', () => { /* a client that went away: its rank counts as missing */ });
    sock.on('close', () => {
      if (rank >= 0 && this.clients.get(rank) === sock && !this.acks.has(rank)) this.clients.delete(rank);
    });
    lineReader(sock, (m) => {
      if (rank < 0) {
        if (!m || m.proto !== STORE_PROTO) { refuse(`not an llm-kernels store client (expected protocol ${STORE_PROTO})`); return; }
        if (m.worldSize !== this.worldSize) {
          refuse(`WORLD_SIZE mismatch: this rank says ${m.worldSize}, rank 0 says ${this.worldSize}`);
          return;
        }
        if (!Number.isInteger(m.rank) || m.rank < 1 || m.rank >= this.worldSize) {
          refuse(`RANK ${m.rank} is out of range 1..${this.worldSize - 1} (rank 0 hosts the store)`);
          return;
        }
        if (this.clients.has(m.rank)) { refuse(`RANK ${m.rank} arrived twice (each rank must be used once)`); return; }
        if (this.finished) { refuse('the rendezvous is already over'); return; }
        rank = m.rank;
        this.clients.set(rank, sock);
        if (this.clients.size === this.worldSize - 1) {
          const msg = JSON.stringify({ ok: true, uniqueId: Buffer.from(this.uniqueId).toString('base64') }) + '\n';
          for (const s of this.clients.values()) s.write(msg);
        }
      } else if (m && m.ack === true) {
        this.acks.add(rank);
        sock.end();
        if (this.acks.size === this.worldSize - 1) this.finish();
      }
    }, (why) => refuse(`bad message: ${why}`));
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    this.server.close();
    this.resolveDone();
  }

  private timeout(): void {
    if (this.finished) return;
    this.finished = true;
    const missing: number[] = [];
    for (let r = 1; r < this.worldSize; r++) if (!this.clients.has(r)) missing.push(r);
    const why = missing.length
      ? `dist rendezvous timed out after ${this.timeoutMs} ms: rank(s) ${missing.join(', ')} of ${this.worldSize} never reached the store at ${this.where}`
      : `dist rendezvous timed out after ${this.timeoutMs} ms: rank(s) ${[...this.clients.keys()].filter((r) => !this.acks.has(r)).join(', ')} did not acknowledge the unique id`;
    for (const s of this.clients.values()) if (s.writable) s.end(JSON.stringify({ ok: false, error: why }) + '\n');
    this.server.close();
    this.rejectDone(storeError(why));
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
// A connected rank waits this much past its own deadline, so that rank 0's explanation (which ranks
// never arrived) reaches it first; the timeouts of all ranks are normally the same.
const SERVER_GRACE_MS = 2000;

/** Ranks 1..W-1: fetches the unique id from rank 0's store, retrying the connection until the timeout. */
export async function fetchUniqueId(opts: { host?: string; port: number; rank: number; worldSize: number; timeoutMs: number }): Promise<Uint8Array> {
  const host = opts.host ?? '127.0.0.1';
  const where = `${host}:${opts.port}`;
  const deadline = Date.now() + opts.timeoutMs;
  let lastErr = '';
  while (Date.now() < deadline) {
    const r = await new Promise<{ id?: Uint8Array; retry?: string; fail?: LlmkError }>((resolve) => {
      const sock = net.connect({ host, port: opts.port });
      let settled = false;
      const settle = (v: { id?: Uint8Array; retry?: string; fail?: LlmkError }) => {
        if (settled) return;
        settled = true;
        clearTimeout(t);
        resolve(v);
      };
      const t = setTimeout(() => {
        sock.destroy();
        settle({ fail: storeError(`dist rendezvous: rank ${opts.rank} timed out after ${opts.timeoutMs} ms waiting for the unique id from the store at ${where}`) });
      }, timerMs(Math.max(1, deadline - Date.now()) + SERVER_GRACE_MS));
      let connected = false;
      sock.on('connect', () => {
        connected = true;
        sock.write(JSON.stringify({ proto: STORE_PROTO, rank: opts.rank, worldSize: opts.worldSize }) + '\n');
      });
      sock.on('error', (e: NodeJS.ErrnoException) => {
        if (!connected) settle({ retry: e.code ?? e.message });
        else settle({ fail: storeError(`dist rendezvous: lost the store at ${where}: ${e.code ?? e.message}`) });
      });
      sock.on('close', () => {
        if (connected) settle({ fail: storeError(`dist rendezvous: the store at ${where} closed the connection before handing out the unique id`) });
        else settle({ retry: 'closed' });
      });
      lineReader(sock, (m) => {
        if (!m || typeof m !== 'object') { settle({ fail: storeError(`dist rendezvous: the store at ${where} sent a bad answer`) }); sock.destroy(); return; }
        if (m.ok !== true) {
          settle({ fail: storeError(`dist rendezvous failed (store at ${where}): ${String(m.error ?? 'unknown error')}`) });
          sock.destroy();
          return;
        }
        const id = typeof m.uniqueId === 'string' ? new Uint8Array(Buffer.from(m.uniqueId, 'base64')) : new Uint8Array(0);
        if (id.length !== ID_BYTES) {
          settle({ fail: storeError(`dist rendezvous: the store at ${where} handed out a bad unique id (${id.length} bytes, expected ${ID_BYTES}); is it an llm-kernels store?`, 'ERR_LLMK_ARG') });
          sock.destroy();
          return;
        }
        sock.end(JSON.stringify({ ack: true }) + '\n');
        settle({ id });
      }, (why) => settle({ fail: storeError(`dist rendezvous: the store at ${where} sent a bad message (${why})`) }));
    });
    if (r.id) return r.id;
    if (r.fail) throw r.fail;
    lastErr = r.retry ?? '';
    await sleep(Math.min(100, Math.max(1, deadline - Date.now())));
  }
  throw storeError(`dist rendezvous: rank ${opts.rank} could not reach the store at ${where} within ${opts.timeoutMs} ms (${lastErr}; is rank 0 running, and are MASTER_ADDR/MASTER_PORT right?)`);
}

/**
 * The unique id of a job, agreed through rank 0's TCP store: rank 0 makes it (`makeId`) and serves it
 * until every rank has it; the others fetch it. Rejects with ERR_LLMK_NCCL on timeout (naming the
 * ranks that never arrived) and ERR_LLMK_ARG on a bad unique id or bad arguments.
 */
export async function rendezvous(opts: RendezvousOptions): Promise<Uint8Array> {
  check(opts !== null && typeof opts === 'object', 'ERR_LLMK_ARG', 'dist.rendezvous: options object required');
  check(Number.isInteger(opts.worldSize) && opts.worldSize >= 1, 'ERR_LLMK_ARG', 'dist.rendezvous: worldSize must be an integer >= 1');
  check(Number.isInteger(opts.rank) && opts.rank >= 0 && opts.rank < opts.worldSize, 'ERR_LLMK_ARG',
    () => `dist.rendezvous: rank ${opts.rank} is out of range for worldSize ${opts.worldSize}`);
  check(Number.isInteger(opts.port) && opts.port >= 0 && opts.port < 65536, 'ERR_LLMK_ARG', () => `dist.rendezvous: bad port ${opts.port}`);
  const timeoutMs = opts.timeoutMs ?? 600_000;
  check(timeoutMs > 0, 'ERR_LLMK_ARG', 'dist.rendezvous: timeoutMs must be positive');
  if (opts.rank === 0) {
    const id = opts.makeId();
    check(id instanceof Uint8Array && id.length === ID_BYTES, 'ERR_LLMK_ARG', `dist.rendezvous: makeId must return ${ID_BYTES} bytes`);
    // Rank 0 listens on MASTER_ADDR when it is a loopback address (single node), else on every
    // interface (as torchrun's store does), since MASTER_ADDR may name another interface or a NAT'd one.
    const host = opts.host ?? '127.0.0.1';
    const loopback = host === 'localhost' || host.startsWith('127.') || host === '::1';
    const server = await TCPStoreServer.listen({ host: loopback ? host : '0.0.0.0', port: opts.port, worldSize: opts.worldSize, uniqueId: id, timeoutMs });
    try {
      await server.done;
    } finally {
      server.close();
    }
    return id;
  }
  return fetchUniqueId({ host: opts.host, port: opts.port, rank: opts.rank, worldSize: opts.worldSize, timeoutMs });
}
