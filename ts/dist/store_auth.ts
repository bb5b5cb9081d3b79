/**
 * Authentication of the rendezvous store's messages with the job token (node:crypto).
 *
 * Each connection starts with a challenge: the store sends a fresh random nonce, the client answers with
 * its own. Both sides derive a connection key K = HMAC-SHA256(token, proto | serverNonce | clientNonce),
 * so nothing recorded on one connection is valid on another. Every later message is a frame
 *   {"seq":n,"body":"<JSON text>","mac":"<hex>"},  mac = HMAC-SHA256(K, direction | seq | body)
 * with a sequence number per direction that must be exactly the next one (no replay, reordering or
 * reflection within a connection). The body is parsed only after its MAC verified. The unique id inside
 * a body is encrypted (AES-256-CTR under a key derived from K, used for that one message only), so an
 * eavesdropper does not learn it.
 */
import { createCipheriv, createHmac, randomBytes, timingSafeEqual } from 'crypto';

export const STORE_PROTO = 'llmk-store-2';
/** Shortest token accepted: 16 characters (`llm-kernels launch` makes 64 hex digits, 256 bits). */
export const MIN_TOKEN_CHARS = 16;

export type Side = 'client' | 'server';

/** Why a frame was refused. */
export class AuthFailure extends Error {}

/** A fresh random nonce (16 bytes, base64). */
export function newNonce(): string {
  return randomBytes(16).toString('base64');
}

const hmac = (key: Buffer | string, text: string): Buffer => createHmac('sha256', key).update(text, 'utf8').digest();

/** One connection's authenticated channel, seen from `side`. */
export class StoreChannel {
  private readonly key: Buffer;
  private sendSeq = 0;
  private recvSeq = 0;
  private readonly out: string;
  private readonly in: string;

  constructor(token: string, serverNonce: string, clientNonce: string, side: Side) {
    if (typeof serverNonce !== 'string' || typeof clientNonce !== 'string' || !serverNonce || !clientNonce) {
      throw new AuthFailure('missing nonce');
    }
    this.key = hmac(token, `${STORE_PROTO}\n${serverNonce}\n${clientNonce}`);
    this.out = side === 'client' ? 'c2s' : 's2c';
    this.in = side === 'client' ? 's2c' : 'c2s';
  }

  /** The frame (one line, with its newline) carrying `body`; `extra` adds unauthenticated top-level fields. */
  seal(body: object, extra: Record<string, unknown> = {}): string {
    const text = JSON.stringify(body);
    const seq = this.sendSeq++;
    const mac = hmac(this.key, `${this.out}\n${seq}\n${text}`).toString('hex');
    return JSON.stringify({ ...extra, seq, body: text, mac }) + '\n';
  }

  /** The body of a received frame; throws AuthFailure unless it is the next authentic one. */
  open(frame: unknown): any { // eslint-disable-line @typescript-eslint/no-explicit-any
    const f = frame as { seq?: unknown; body?: unknown; mac?: unknown } | null;
    if (!f || typeof f !== 'object' || typeof f.body !== 'string' || typeof f.mac !== 'string' || !Number.isInteger(f.seq)) {
      throw new AuthFailure('the message is not authenticated');
    }
    const want = hmac(this.key, `${this.in}\n${f.seq}\n${f.body}`);
    const got = Buffer.from(f.mac, 'hex');
    if (got.length !== want.length || !timingSafeEqual(got, want)) throw new AuthFailure('bad message authentication code');
    if (f.seq !== this.recvSeq) throw new AuthFailure(`message ${String(f.seq)} out of sequence (expected ${this.recvSeq}): a replay?`);
    this.recvSeq++;
    try {
      return JSON.parse(f.body);
    } catch {
      throw new AuthFailure('the authenticated body is not JSON');
    }
  }

  /** Encrypts a unique id for this connection (one message per connection: the key stream is not reused). */
  encryptId(id: Uint8Array): string {
    return this.idCipher().update(id).toString('base64');
  }

  decryptId(text: string): Uint8Array {
    return new Uint8Array(this.idCipher().update(Buffer.from(String(text), 'base64')));
  }

  private idCipher() {
    return createCipheriv('aes-256-ctr', hmac(this.key, 'unique-id'), Buffer.alloc(16));
  }
}
