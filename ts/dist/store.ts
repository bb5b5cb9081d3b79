/**
 * The rendezvous store: rank 0 serves the unique id over TCP (node:net), the other ranks fetch it.
 *
 * Protocol (one JSON object per line, UTF-8; frames and keys in ./store_auth):
 *   server → client  {"proto":"llmk-store-2","nonce":sN}                      challenge, on connect
 *   client → server  {"proto":..,"nonce":cN, frame{"rank":R,"worldSize":W}}   hello, authenticated
 *   server → client  frame{"ok":true,"uniqueId":"<encrypted>"}                 once every rank 1..W-1 is there
 *                    frame{"ok":false,"error":"..."}                           bad hello, or the rendezvous failed
 *                    {"ok":false,"code":"ERR_LLMK_AUTH","error":".."}          (plain) the hello did not authenticate
 *   client → server  frame{"ack":true}                                         after it checked the id
 * Every frame carries an HMAC under the job token and a per-connection key; a client that cannot
 * authenticate is refused before it can register, and ranks refuse a store that cannot (ERR_LLMK_AUTH).
 * The server answers nobody until all ranks are there, so a rank that never arrives fails every rank with
 * the same clear message when the timeout expires (ERR_LLMK_NCCL), never a hang. Connections that have not
 * registered are closed after a deadline and bounded in number; clients retry with backoff.
 */
import * as net from 'net';
import { LlmkError, check } from '../errors';
import { AuthFailure, MIN_TOKEN_CHARS, newNonce, StoreChannel, STORE_PROTO } from './store_auth';

export { STORE_PROTO } from './store_auth';
const ID_BYTES = 128;
// Node's timers fire after 1 ms (with a TimeoutOverflowWarning) when the delay exceeds 2^31 - 1 ms, so a
// timeout above 24.8 days would expire at once; such timeouts wait 24.8 days (practically forever).
const MAX_TIMER_MS = 2 ** 31 - 1;
const timerMs = (ms: number): number => Math.min(Math.max(ms, 1), MAX_TIMER_MS);
/** A connection must authenticate and register within this time (LLMK_STORE_HELLO_TIMEOUT_MS). */
export const DEFAULT_HELLO_TIMEOUT_MS = 10_000;
/** Unregistered connections held at once beyond the world size (LLMK_STORE_MAX_PENDING). */
export const DEFAULT_MAX_PENDING_EXTRA = 64;

export interface RendezvousOptions {
  rank: number;
  worldSize: number;
  /** MASTER_ADDR: where rank 0 listens (default 127.0.0.1); the store binds this address only. */
  host?: string;
  /** MASTER_PORT. */
  port: number;
  /** Bound on the whole rendezvous (default 10 minutes). */
  timeoutMs?: number;
  /** The job's secret (LLMK_STORE_TOKEN, 16+ characters): required when worldSize > 1. */
  token?: string;
  /** Rank 0: how long a connection may take to register (default $LLMK_STORE_HELLO_TIMEOUT_MS or 10 s). */
  helloTimeoutMs?: number;
  /** Rank 0: most unregistered connections at once (default $LLMK_STORE_MAX_PENDING or 64 + worldSize). */
  maxPending?: number;
  /** Rank 0: makes the unique id to hand out. */
  makeId: () => Uint8Array;
}

export interface StoreServerOptions {
  host?: string;
  port: number;
  worldSize: number;
  uniqueId: Uint8Array;
  timeoutMs: number;
  token: string;
  helloTimeoutMs?: number;
  maxPending?: number;
}

function storeError(msg: string, code: 'ERR_LLMK_NCCL' | 'ERR_LLMK_ARG' | 'ERR_LLMK_AUTH' = 'ERR_LLMK_NCCL'): LlmkError {
  const e = new LlmkError(msg, code);
  if (code === 'ERR_LLMK_NCCL') e.ncclResult = 'ncclSystemError';
  return e;
}

function checkToken(token: unknown, what: string): asserts token is string {
  check(token !== undefined && token !== null && token !== '', 'ERR_LLMK_ARG',
    `${what}: no job token: set LLMK_STORE_TOKEN to the same secret on every rank (\`npx llm-kernels launch\` makes one for its ranks)`);
  check(typeof token === 'string' && token.length >= MIN_TOKEN_CHARS, 'ERR_LLMK_ARG',
    `${what}: the job token (LLMK_STORE_TOKEN) must be a string of at least ${MIN_TOKEN_CHARS} characters`);
}

/** Reads newline-delimited JSON objects from a socket. */
function lineReader(sock: net.Socket, onMsg: (m: any) => void, onBad: (why: string) => void): void { // eslint-disable-line @typescript-eslint/no-explicit-any
  let buf = '';
  sock.setEncoding('utf8');
  sock.on('data', (chunk: string) => {
    buf += chunk;
    if (buf.length > 1 << 16) { onBad('message too long'); sock.destroy(); return; }
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0 && !sock.destroyed) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let m: unknown;
      try { m = JSON.parse(line); } catch { onBad('not JSON'); sock.destroy(); return; }
      onMsg(m);
    }
  });
}

/**
 * Rank 0's side: listens on host:port and hands `uniqueId` to ranks 1..worldSize-1 that prove the token.
 * `done` resolves once every rank acknowledged, and rejects (after telling the connected ranks) when
 * the timeout expires first.
 */
export class TCPStoreServer {
  readonly done: Promise<void>;
  private server: net.Server;
  private clients = new Map<number, { sock: net.Socket; ch: StoreChannel }>();
  private sockets = new Set<net.Socket>();
  private pending = 0;
  private acks = new Set<number>();
  private finished = false;
  private timer: NodeJS.Timeout;
  private resolveDone!: () => void;
  private rejectDone!: (e: Error) => void;
  private readonly helloTimeoutMs: number;
  private readonly maxPending: number;

  private constructor(server: net.Server, private readonly opts: StoreServerOptions, readonly where: string) {
    this.server = server;
    this.helloTimeoutMs = opts.helloTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS;
    this.maxPending = opts.maxPending ?? DEFAULT_MAX_PENDING_EXTRA + opts.worldSize;
    this.done = new Promise<void>((res, rej) => { this.resolveDone = res; this.rejectDone = rej; });
    this.done.catch(() => { /* reported to whoever awaits it */ });
    this.timer = setTimeout(() => this.timeout(), timerMs(opts.timeoutMs));
    server.on('connection', (s) => this.onConnection(s));
    if (opts.worldSize === 1) this.finish();
  }

  /** Starts listening; rejects with ERR_LLMK_NCCL when the address cannot be bound. */
  static listen(opts: StoreServerOptions): Promise<TCPStoreServer> {
    checkToken(opts.token, 'dist store');
    const host = opts.host ?? '127.0.0.1';
    const where = `${host}:${opts.port}`;
    return new Promise((resolve, reject) => {
      const server = net.createServer();
      server.once('error', (e: NodeJS.ErrnoException) => {
        const hint = e.code === 'EADDRNOTAVAIL' || e.code === 'ENOTFOUND'
          ? `MASTER_ADDR must name an address of rank 0's machine (the store listens there only)`
          : 'is MASTER_PORT in use by another job?';
        reject(storeError(`dist store: rank 0 cannot listen on ${where}: ${e.code ?? e.message} (${hint})`));
      });
      server.listen(opts.port, host, () => {
        server.removeAllListeners('error');
        server.on('error', () => { /* after listen: reported through the clients */ });
        resolve(new TCPStoreServer(server, opts, where));
      });
    });
  }

  /** The port actually bound (useful with port 0). */
  get port(): number { return (this.server.address() as net.AddressInfo).port; }

  close(): void {
    clearTimeout(this.timer);
    for (const s of this.sockets) s.destroy();
    this.server.close();
  }

  private onConnection(sock: net.Socket): void {
    sock.on('error', () => { /* a client that went away: its rank counts as missing */ });
    if (this.finished || this.pending >= this.maxPending) { sock.destroy(); return; }
    this.pending++;
    this.sockets.add(sock);
    let rank = -1;
    let ch: StoreChannel | null = null;
    const serverNonce = newNonce();
    const helloTimer = setTimeout(() => sock.destroy(), timerMs(this.helloTimeoutMs));
    let refused = false; // nothing more is read from a refused connection
    const refuse = (why: string) => {
      refused = true;
      if (ch && sock.writable) sock.end(ch.seal({ ok: false, error: why }));
      else sock.destroy();
    };
    const refuseAuth = (why: string) => {
      refused = true;
      if (sock.writable) sock.end(JSON.stringify({ ok: false, code: 'ERR_LLMK_AUTH', error: `authentication failed: ${why}` }) + '\n');
      else sock.destroy();
    };
    sock.on('close', () => {
      clearTimeout(helloTimer);
      this.sockets.delete(sock);
      if (rank < 0) this.pending--;
      else if (this.clients.get(rank)?.sock === sock && !this.acks.has(rank)) this.clients.delete(rank);
    });
    sock.write(JSON.stringify({ proto: STORE_PROTO, nonce: serverNonce }) + '\n');
    lineReader(sock, (m) => {
      if (refused) return;
      let body;
      try {
        if (!ch) {
          if (!m || m.proto !== STORE_PROTO) throw new AuthFailure(`not an llm-kernels store client (expected protocol ${STORE_PROTO})`);
          ch = new StoreChannel(this.opts.token, serverNonce, m.nonce, 'server');
        }
        body = ch.open(m);
      } catch (e) {
        if (e instanceof AuthFailure) { refuseAuth(e.message); return; }
        throw e;
      }
      if (rank < 0) this.onHello(sock, ch, body, refuse, (r) => { rank = r; this.pending--; clearTimeout(helloTimer); });
      else if (body && body.ack === true) {
        this.acks.add(rank);
        sock.end();
        if (this.acks.size === this.opts.worldSize - 1) this.finish();
      }
    }, (why) => refuseAuth(`bad message: ${why}`));
  }

  private onHello(sock: net.Socket, ch: StoreChannel, m: any, refuse: (why: string) => void, registered: (rank: number) => void): void { // eslint-disable-line @typescript-eslint/no-explicit-any
    const worldSize = this.opts.worldSize;
    if (!m || m.worldSize !== worldSize) {
      refuse(`WORLD_SIZE mismatch: this rank says ${m?.worldSize}, rank 0 says ${worldSize}`);
      return;
    }
    if (!Number.isInteger(m.rank) || m.rank < 1 || m.rank >= worldSize) {
      refuse(`RANK ${m.rank} is out of range 1..${worldSize - 1} (rank 0 hosts the store)`);
      return;
    }
    if (this.clients.has(m.rank)) { refuse(`RANK ${m.rank} arrived twice (each rank must be used once)`); return; }
    if (this.finished) { refuse('the rendezvous is already over'); return; }
    registered(m.rank);
    this.clients.set(m.rank, { sock, ch });
    if (this.clients.size === worldSize - 1) {
      for (const c of this.clients.values()) c.sock.write(c.ch.seal({ ok: true, uniqueId: c.ch.encryptId(this.opts.uniqueId) }));
    }
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.timer);
    this.server.close();
    // Connections that never registered must not keep rank 0's process alive.
    for (const s of this.sockets) if (![...this.clients.values()].some((c) => c.sock === s)) s.destroy();
    this.resolveDone();
  }

  private timeout(): void {
    if (this.finished) return;
    this.finished = true;
    const worldSize = this.opts.worldSize;
    const missing: number[] = [];
    for (let r = 1; r < worldSize; r++) if (!this.clients.has(r)) missing.push(r);
    const why = missing.length
      ? `dist rendezvous timed out after ${this.opts.timeoutMs} ms: rank(s) ${missing.join(', ')} of ${worldSize} never reached the store at ${this.where}`
      : `dist rendezvous timed out after ${this.opts.timeoutMs} ms: rank(s) ${[...this.clients.keys()].filter((r) => !this.acks.has(r)).join(', ')} did not acknowledge the unique id`;
    for (const s of this.sockets) {
      const c = [...this.clients.values()].find((x) => x.sock === s);
      if (c && s.writable) s.end(c.ch.seal({ ok: false, error: why }));
      else s.destroy();
    }
    this.server.close();
    this.rejectDone(storeError(why));
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
// A connected rank waits this much past its own deadline, so that rank 0's explanation (which ranks
// never arrived) reaches it first; the timeouts of all ranks are normally the same.
const SERVER_GRACE_MS = 2000;
// Reconnection backoff: doubles from the first delay up to the cap, with jitter (many ranks, one store).
const BACKOFF_FIRST_MS = 50;
const BACKOFF_MAX_MS = 500;

type Attempt = { id?: Uint8Array; retry?: string; fail?: LlmkError };

/** One connection to the store: the id, a reason to retry (never reached an llm-kernels store), or a failure. */
function attemptFetch(opts: { host: string; port: number; rank: number; worldSize: number; timeoutMs: number; token: string }, deadline: number): Promise<Attempt> {
  const where = `${opts.host}:${opts.port}`;
  const authFail = (why: string) => storeError(`dist rendezvous: rank ${opts.rank}: ${why}`, 'ERR_LLMK_AUTH');
  return new Promise<Attempt>((resolve) => {
    const sock = net.connect({ host: opts.host, port: opts.port });
    let settled = false;
    let ch: StoreChannel | null = null;
    const settle = (v: Attempt) => {
      if (settled) return;
      settled = true;
      clearTimeout(t);
      if (!v.id) sock.destroy();
      resolve(v);
    };
    const t = setTimeout(() => {
      settle({ fail: storeError(`dist rendezvous: rank ${opts.rank} timed out after ${opts.timeoutMs} ms waiting for the unique id from the store at ${where}`) });
    }, timerMs(Math.max(1, deadline - Date.now()) + SERVER_GRACE_MS));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      // Refused, reset or out of descriptors before the store spoke: it is not up yet, or busy. Retry.
      if (!ch) settle({ retry: e.code ?? e.message });
      else settle({ fail: storeError(`dist rendezvous: lost the store at ${where}: ${e.code ?? e.message}`) });
    });
    sock.on('close', () => {
      if (ch) settle({ fail: storeError(`dist rendezvous: the store at ${where} closed the connection before handing out the unique id`) });
      else settle({ retry: 'closed before the challenge (store busy?)' });
    });
    lineReader(sock, (m) => {
      if (!ch) {
        if (!m || m.proto !== STORE_PROTO || typeof m.nonce !== 'string') {
          settle({ fail: authFail(`the server at ${where} is not an llm-kernels store speaking ${STORE_PROTO} (it sent no challenge); refused`) });
          return;
        }
        const nonce = newNonce();
        ch = new StoreChannel(opts.token, m.nonce, nonce, 'client');
        sock.write(ch.seal({ rank: opts.rank, worldSize: opts.worldSize }, { proto: STORE_PROTO, nonce }));
        return;
      }
      if (m && m.mac === undefined && m.code === 'ERR_LLMK_AUTH') {
        settle({ fail: authFail(`the store at ${where} refused this rank: ${String(m.error)} (do all ranks have the same LLMK_STORE_TOKEN?)`) });
        return;
      }
      let body;
      try { body = ch.open(m); } catch (e) {
        if (!(e instanceof AuthFailure)) throw e;
        settle({ fail: authFail(`the store at ${where} failed authentication (${e.message}): it does not hold this job's LLMK_STORE_TOKEN — another job's store or a squatter on MASTER_PORT; refused`) });
        return;
      }
      if (!body || body.ok !== true) {
        settle({ fail: storeError(`dist rendezvous failed (store at ${where}): ${String(body?.error ?? 'unknown error')}`) });
        return;
      }
      const id = typeof body.uniqueId === 'string' ? ch.decryptId(body.uniqueId) : new Uint8Array(0);
      if (id.length !== ID_BYTES) {
        settle({ fail: storeError(`dist rendezvous: the store at ${where} handed out a bad unique id (${id.length} bytes, expected ${ID_BYTES})`, 'ERR_LLMK_ARG') });
        return;
      }
      sock.end(ch.seal({ ack: true }));
      settle({ id });
    }, (why) => settle({ fail: authFail(`the store at ${where} sent a bad message (${why})`) }));
  });
}

/** Ranks 1..W-1: fetches the unique id from rank 0's store, retrying the connection with backoff until the timeout. */
export async function fetchUniqueId(opts: { host?: string; port: number; rank: number; worldSize: number; timeoutMs: number; token: string }): Promise<Uint8Array> {
  checkToken(opts.token, 'dist rendezvous');
  const host = opts.host ?? '127.0.0.1';
  const deadline = Date.now() + opts.timeoutMs;
  let lastErr = '';
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    const r = await attemptFetch({ ...opts, host }, deadline);
    if (r.id) return r.id;
    if (r.fail) throw r.fail;
    lastErr = r.retry ?? '';
    const backoff = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(attempt, 10)) * (0.5 + Math.random() / 2);
    await sleep(Math.min(backoff, Math.max(1, deadline - Date.now())));
  }
  throw storeError(`dist rendezvous: rank ${opts.rank} could not reach the store at ${host}:${opts.port} within ${opts.timeoutMs} ms (${lastErr}; is rank 0 running, and are MASTER_ADDR/MASTER_PORT right?)`);
}

/** A positive integer option, else its environment variable, else `dflt`. */
function intOption(v: number | undefined, envName: string, dflt: number, what: string): number {
  const raw = v ?? process.env[envName];
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  check(Number.isInteger(n) && n >= 1, 'ERR_LLMK_ARG', () => `dist.rendezvous: ${what} (${envName}) must be an integer >= 1, got ${String(raw)}`);
  return n;
}

/**
 * The unique id of a job, agreed through rank 0's TCP store: rank 0 makes it (`makeId`) and serves it
 * until every rank has it; the others fetch it. Rejects with ERR_LLMK_NCCL on timeout (naming the
 * ranks that never arrived), ERR_LLMK_AUTH when a peer does not prove the job token, and ERR_LLMK_ARG on
 * a bad unique id or bad arguments.
 */
export async function rendezvous(opts: RendezvousOptions): Promise<Uint8Array> {
  check(opts !== null && typeof opts === 'object', 'ERR_LLMK_ARG', 'dist.rendezvous: options object required');
  check(Number.isInteger(opts.worldSize) && opts.worldSize >= 1, 'ERR_LLMK_ARG', 'dist.rendezvous: worldSize must be an integer >= 1');
  check(Number.isInteger(opts.rank) && opts.rank >= 0 && opts.rank < opts.worldSize, 'ERR_LLMK_ARG',
    () => `dist.rendezvous: rank ${opts.rank} is out of range for worldSize ${opts.worldSize}`);
  check(Number.isInteger(opts.port) && opts.port >= 0 && opts.port < 65536, 'ERR_LLMK_ARG', () => `dist.rendezvous: bad port ${opts.port}`);
  const timeoutMs = opts.timeoutMs ?? 600_000;
  check(timeoutMs > 0, 'ERR_LLMK_ARG', 'dist.rendezvous: timeoutMs must be positive');
  const makeId = (): Uint8Array => {
    const id = opts.makeId();
    check(id instanceof Uint8Array && id.length === ID_BYTES, 'ERR_LLMK_ARG', `dist.rendezvous: makeId must return ${ID_BYTES} bytes`);
    return id;
  };
  if (opts.worldSize === 1) return makeId(); // nobody to meet
  checkToken(opts.token, 'dist.rendezvous');
  if (opts.rank > 0) return fetchUniqueId({ host: opts.host, port: opts.port, rank: opts.rank, worldSize: opts.worldSize, timeoutMs, token: opts.token });
  const helloTimeoutMs = intOption(opts.helloTimeoutMs, 'LLMK_STORE_HELLO_TIMEOUT_MS', DEFAULT_HELLO_TIMEOUT_MS, 'helloTimeoutMs');
  const maxPending = intOption(opts.maxPending, 'LLMK_STORE_MAX_PENDING', DEFAULT_MAX_PENDING_EXTRA + opts.worldSize, 'maxPending');
  const id = makeId();
  // Rank 0 listens on MASTER_ADDR only (never on every interface): the address the other ranks dial.
  const server = await TCPStoreServer.listen({ host: opts.host ?? '127.0.0.1', port: opts.port, worldSize: opts.worldSize, uniqueId: id, timeoutMs, token: opts.token, helloTimeoutMs, maxPending });
  try {
    await server.done;
  } finally {
    server.close();
  }
  return id;
}
