// BlockLayout: which (query block, key block) pairs attention computes (docs/architecture.md §4.2).
// The builders check their own JavaScript inputs; the BSR arrays they make are checked natively
// (native.attention.checkLayout), where blockSparse's contracts live.
import { check } from '../errors';
import { native } from '../native';

/** Sequence and block sizes every builder takes. */
export interface LayoutSizeOptions {
  /** Query and key length when they are equal. */
  seqLen?: number;
  /** Query length (defaults to seqLen). */
  qLen?: number;
  /** Key length (defaults to seqLen). */
  kLen?: number;
  /** blockQ = blockK = blockSize (64 or 128; default 64). */
  blockSize?: number;
  /** Query block size, 64 or 128. */
  blockQ?: number;
  /** Key block size, 64 or 128. */
  blockK?: number;
  /** Build one layout per head (`heads` of them) instead of one shared by all heads. */
  heads?: number;
}

/** Largest number of stored blocks (and of row offsets) a builder makes: 2^28, 1 GiB of int32 indices. */
const MAX_LAYOUT_BLOCKS = 2 ** 28;

/** Raw BSR arrays of a layout. */
export interface BsrArrays {
  /**
   * Row offsets. Shared layout: `nQB + 1` entries. Per-head layout: `heads · (nQB + 1)` entries,
   * head h's rows at `[h·(nQB+1), (h+1)·(nQB+1))`, offsets absolute into the concatenated `colIdx`
   * (so head h starts where head h−1 ends). Or an array of per-head arrays, each relative to its own colIdx.
   */
  rowPtr: Int32Array | readonly number[] | ReadonlyArray<Int32Array | readonly number[]>;
  /** Column (key block) indices, sorted and unique within each row. */
  colIdx: Int32Array | readonly number[] | ReadonlyArray<Int32Array | readonly number[]>;
}

const ALLOWED_BLOCKS = [64, 128];

interface Sizes { qLen: number; kLen: number; blockQ: number; blockK: number; heads: number; perHead: boolean }

/** @internal The sizes object the native layout functions take (`heads`: the number of stacked layouts). */
export function layoutSizes(l: Pick<BlockLayout, 'heads' | 'blockQ' | 'blockK' | 'qLen' | 'kLen'>):
  { heads: number; blockQ: number; blockK: number; qLen: number; kLen: number } {
  return { heads: l.heads, blockQ: l.blockQ, blockK: l.blockK, qLen: l.qLen, kLen: l.kLen };
}

function isInt(x: unknown): x is number { return typeof x === 'number' && Number.isInteger(x); }

function resolveSizes(op: string, o: LayoutSizeOptions | undefined, need = true): Sizes {
  check(o !== null && typeof o === 'object', 'ERR_LLMK_ARG', `${op}: options object required`);
  const qLen = o.qLen ?? o.seqLen, kLen = o.kLen ?? o.seqLen;
  if (need) {
    check(qLen !== undefined && kLen !== undefined, 'ERR_LLMK_ARG', `${op}: give seqLen (or qLen and kLen)`);
  }
  check(qLen === undefined || (isInt(qLen) && qLen >= 1), 'ERR_LLMK_ARG', `${op}: qLen/seqLen must be a positive integer, got ${String(qLen)}`);
  check(kLen === undefined || (isInt(kLen) && kLen >= 1), 'ERR_LLMK_ARG', `${op}: kLen/seqLen must be a positive integer, got ${String(kLen)}`);
  const blockQ = o.blockQ ?? o.blockSize ?? 64, blockK = o.blockK ?? o.blockSize ?? 64;
  check(ALLOWED_BLOCKS.includes(blockQ), 'ERR_LLMK_ARG', `${op}: blockQ/blockSize must be 64 or 128, got ${String(blockQ)}`);
  check(ALLOWED_BLOCKS.includes(blockK), 'ERR_LLMK_ARG', `${op}: blockK/blockSize must be 64 or 128, got ${String(blockK)}`);
  const perHead = o.heads !== undefined;
  const heads = o.heads ?? 1;
  check(isInt(heads) && heads >= 1, 'ERR_LLMK_ARG', `${op}: heads must be a positive integer, got ${String(o.heads)}`);
  return { qLen: qLen ?? 0, kLen: kLen ?? 0, blockQ, blockK, heads, perHead };
}

function nonNegInt(op: string, name: string, x: unknown, def?: number): number {
  const v = x === undefined ? def : x;
  check(isInt(v) && v >= 0, 'ERR_LLMK_ARG', `${op}: ${name} must be a non-negative integer, got ${String(x)}`);
  return v;
}

/** mulberry32: the seeded generator of globalLocal's random blocks. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function toInt32(name: string, a: Int32Array | readonly number[]): Int32Array {
  if (a instanceof Int32Array) return a;
  check(Array.isArray(a), 'ERR_LLMK_ARG', `fromBsr: ${name} must be an Int32Array or an array of integers`);
  const out = new Int32Array(a.length);
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    check(isInt(x) && x >= -(2 ** 31) && x < 2 ** 31, 'ERR_LLMK_INDEX', () => `fromBsr: ${name}[${i}] = ${String(x)} is not an int32`);
    out[i] = x;
  }
  return out;
}

/**
 * A block-sparse attention layout in BSR form: query block row r attends the key blocks
 * `colIdx[rowPtr[r] .. rowPtr[r+1])`. Blocks are `blockQ × blockK` tokens (64 or 128 each); the
 * last block row / column may be partial (qLen, kLen need not be multiples of the block size).
 * One layout shared by all heads (`heads === 1`, `perHead === false`) or one per query head.
 * Every layout is validated when built (natively); it is immutable. Used on a device, it is planned
 * there once (checked and copied, see attention/plan.ts) and later calls reuse that plan.
 */
export class BlockLayout {
  /** Query block size (64 or 128). */
  readonly blockQ: number;
  /** Key block size (64 or 128). */
  readonly blockK: number;
  /** Query sequence length the layout is for. */
  readonly qLen: number;
  /** Key sequence length the layout is for. */
  readonly kLen: number;
  /** Number of layouts: 1 when shared by all heads, else the number of query heads. */
  readonly heads: number;
  /** True when the layout was built per head (then `heads` must equal the query head count). */
  readonly perHead: boolean;
  /** Query block rows: ceil(qLen / blockQ). */
  readonly nQB: number;
  /** Key block columns: ceil(kLen / blockK). */
  readonly nKB: number;
  /** Row offsets, `heads · (nQB + 1)` entries, absolute into colIdx (see BsrArrays). */
  readonly rowPtr: Int32Array;
  /** Key block indices, sorted and unique within each row. */
  readonly colIdx: Int32Array;

  /** @internal Use the static builders. The arrays are checked natively (ERR_LLMK_SHAPE / ERR_LLMK_INDEX). */
  constructor(s: Sizes, rowPtr: Int32Array, colIdx: Int32Array, op = 'BlockLayout') {
    this.blockQ = s.blockQ; this.blockK = s.blockK; this.qLen = s.qLen; this.kLen = s.kLen;
    this.heads = s.heads; this.perHead = s.perHead;
    this.nQB = Math.ceil(s.qLen / s.blockQ); this.nKB = Math.ceil(s.kLen / s.blockK);
    native.attention.checkLayout(rowPtr, colIdx, layoutSizes(this), op);
    this.rowPtr = rowPtr; this.colIdx = colIdx;
    Object.freeze(this);
  }

  /** Stored blocks (all heads). */
  get nnz(): number { return this.colIdx.length; }

  /** Fraction of the block grid kept (all heads together), in [0, 1]. */
  get density(): number { return this.nnz / (this.heads * this.nQB * this.nKB); }

  /** The column indices of block row `row` of head `head` (a view). */
  row(row: number, head = 0): Int32Array {
    const base = (this.perHead ? head : 0) * (this.nQB + 1);
    return this.colIdx.subarray(this.rowPtr[base + row], this.rowPtr[base + row + 1]);
  }

  /** True when block (row, col) of `head` is kept. */
  has(row: number, col: number, head = 0): boolean {
    const r = this.row(row, head);
    let lo = 0, hi = r.length;
    while (lo < hi) { const m = (lo + hi) >> 1; if (r[m] < col) lo = m + 1; else hi = m; }
    return lo < r.length && r[lo] === col;
  }

  /** The boolean block mask `[nQB][nKB]` of one head. */
  toBlockMask(head = 0): boolean[][] {
    const m: boolean[][] = [];
    for (let r = 0; r < this.nQB; r++) {
      const row = new Array<boolean>(this.nKB).fill(false);
      for (const c of this.row(r, head)) row[c] = true;
      m.push(row);
    }
    return m;
  }

  /** A small ASCII picture: '#' kept block, '.' skipped (first 48 rows and 96 columns of head `head`). */
  toString(head = 0): string {
    const maxR = 48, maxC = 96;
    const lines = [
      `BlockLayout ${this.nQB}×${this.nKB} blocks of ${this.blockQ}×${this.blockK} (qLen ${this.qLen}, kLen ${this.kLen}), ` +
        `${this.perHead ? `per head (${this.heads}), head ${head}` : 'shared by all heads'}, density ${this.density.toFixed(3)}`,
    ];
    for (let r = 0; r < Math.min(this.nQB, maxR); r++) {
      const row = new Array<string>(Math.min(this.nKB, maxC)).fill('.');
      for (const c of this.row(r, head)) if (c < maxC) row[c] = '#';
      lines.push(row.join('') + (this.nKB > maxC ? ' …' : ''));
    }
    if (this.nQB > maxR) lines.push(`… (${this.nQB - maxR} more rows)`);
    return lines.join('\n');
  }

  // ------------------------------------------------------------------------------------------
  // Builders
  // ------------------------------------------------------------------------------------------

  /**
   * Builds from a predicate keep(head, row, col) over the block grid (time ∝ grid), into typed arrays
   * that grow as blocks are kept; refuses layouts of MAX_LAYOUT_BLOCKS or more with ERR_LLMK_SHAPE.
   */
  private static build(op: string, s: Sizes, keep: (h: number, r: number, c: number) => boolean): BlockLayout {
    const nQB = Math.ceil(s.qLen / s.blockQ), nKB = Math.ceil(s.kLen / s.blockK);
    const rowPtr = BlockLayout.rowPtrArray(op, s, nQB);
    let cols = new Int32Array(Math.min(1024, nQB * nKB * s.heads)), n = 0;
    for (let h = 0; h < s.heads; h++) {
      const base = h * (nQB + 1);
      rowPtr[base] = n;
      for (let r = 0; r < nQB; r++) {
        for (let c = 0; c < nKB; c++) {
          if (!keep(h, r, c)) continue;
          if (n === cols.length) {
            BlockLayout.checkCount(op, n + 1);
            const grown = new Int32Array(Math.min(2 * n, MAX_LAYOUT_BLOCKS));
            grown.set(cols);
            cols = grown;
          }
          cols[n++] = c;
        }
        rowPtr[base + r + 1] = n;
      }
    }
    return new BlockLayout(s, rowPtr, cols.slice(0, n), op);
  }

  /**
   * Builds a layout whose rows keep one interval of key blocks, range(row) = [c0, c1] (empty when c1 < c0),
   * shared by all heads: the count first, so time and memory are ∝ kept blocks and an oversized layout
   * fails before anything large is allocated.
   */
  private static buildIntervals(op: string, s: Sizes, range: (r: number) => [number, number]): BlockLayout {
    const nQB = Math.ceil(s.qLen / s.blockQ), nKB = Math.ceil(s.kLen / s.blockK);
    const lo = new Int32Array(nQB), len = new Int32Array(nQB);
    let perHead = 0;
    for (let r = 0; r < nQB; r++) {
      const [a, b] = range(r);
      const c0 = Math.max(0, a), c1 = Math.min(nKB - 1, b);
      lo[r] = c0;
      len[r] = Math.max(0, c1 - c0 + 1);
      perHead += len[r];
    }
    BlockLayout.checkCount(op, perHead * s.heads);
    const rowPtr = BlockLayout.rowPtrArray(op, s, nQB), cols = new Int32Array(perHead * s.heads);
    let n = 0;
    for (let h = 0; h < s.heads; h++) {
      rowPtr[h * (nQB + 1)] = n;
      for (let r = 0; r < nQB; r++) {
        for (let i = 0; i < len[r]; i++) cols[n++] = lo[r] + i;
        rowPtr[h * (nQB + 1) + r + 1] = n;
      }
    }
    return new BlockLayout(s, rowPtr, cols, op);
  }

  private static rowPtrArray(op: string, s: Sizes, nQB: number): Int32Array {
    check(s.heads * (nQB + 1) < MAX_LAYOUT_BLOCKS, 'ERR_LLMK_SHAPE',
      () => `${op}: ${s.heads} head(s) × ${nQB + 1} row offsets are too many (limit ${MAX_LAYOUT_BLOCKS})`);
    return new Int32Array(s.heads * (nQB + 1));
  }

  private static checkCount(op: string, n: number): void {
    check(n < MAX_LAYOUT_BLOCKS, 'ERR_LLMK_SHAPE',
      () => `${op}: the layout would keep ${n} blocks; at most ${MAX_LAYOUT_BLOCKS - 1} (1 GiB of column indices) are allowed — ` +
        'use larger blocks, a sparser layout, or split the sequence');
  }

  // Token geometry: block row r holds queries [r·bQ, min(qLen, (r+1)·bQ)); the query i aligns with key
  // i + kLen − qLen (bottom-right, as FlashAttention with a KV cache).
  private static diagRange(s: Sizes, r: number): [number, number] {
    const off = s.kLen - s.qLen;
    return [r * s.blockQ + off, Math.min(s.qLen, (r + 1) * s.blockQ) - 1 + off];
  }

  /** Every block. */
  static dense(opts: LayoutSizeOptions): BlockLayout {
    const s = resolveSizes('BlockLayout.dense', opts);
    return BlockLayout.buildIntervals('BlockLayout.dense', s, () => [0, Infinity]);
  }

  /** Blocks holding at least one key ≤ the query's diagonal (bottom-right aligned causal mask). */
  static causal(opts: LayoutSizeOptions): BlockLayout {
    const s = resolveSizes('BlockLayout.causal', opts);
    // keep c with c·blockK <= the row's last diagonal
    return BlockLayout.buildIntervals('BlockLayout.causal', s, (r) => [0, Math.floor(BlockLayout.diagRange(s, r)[1] / s.blockK)]);
  }

  /**
   * Blocks meeting the token band [i' − left, i' + right] (i' = i + kLen − qLen): `window` is the
   * left extent in tokens (right = 0, causal sliding window) or `{ left, right }`. Pair it with the
   * kernel's `window` (and `causal`) options for the exact token mask.
   */
  static slidingWindow(opts: LayoutSizeOptions & { window: number | { left: number; right: number } }): BlockLayout {
    const op = 'BlockLayout.slidingWindow';
    const s = resolveSizes(op, opts);
    const w = opts.window;
    check(typeof w === 'number' || (w !== null && typeof w === 'object'), 'ERR_LLMK_ARG',
      () => `${op}: window must be a number of tokens or { left, right }, got ${String(w)}`);
    const left = nonNegInt(op, 'window.left', typeof w === 'number' ? w : w.left);
    const right = nonNegInt(op, 'window.right', typeof w === 'number' ? 0 : w.right);
    // keep c with c·blockK <= d1 + right and (c+1)·blockK − 1 >= d0 − left
    return BlockLayout.buildIntervals(op, s, (r) => {
      const [d0, d1] = BlockLayout.diagRange(s, r);
      return [Math.ceil((d0 - left + 1) / s.blockK) - 1, Math.floor((d1 + right) / s.blockK)];
    });
  }

  /**
   * Longformer / BigBird: the first `globalBlocks` key blocks (seen by every query) and query block
   * rows (seeing every key), a local band of `localBlocks` blocks each side of the diagonal, and
   * optionally `randomBlocks` extra random key blocks per row, drawn with `seed` (per head when
   * `heads` is given). `causal: true` drops blocks above the diagonal.
   */
  static globalLocal(opts: LayoutSizeOptions & {
    globalBlocks?: number; localBlocks?: number; randomBlocks?: number; seed?: number; causal?: boolean;
  }): BlockLayout {
    const op = 'BlockLayout.globalLocal';
    const s = resolveSizes(op, opts);
    const g = nonNegInt(op, 'globalBlocks', opts.globalBlocks, 1);
    const loc = nonNegInt(op, 'localBlocks', opts.localBlocks, 1);
    const rnd = nonNegInt(op, 'randomBlocks', opts.randomBlocks, 0);
    const seed = opts.seed ?? 0;
    check(isInt(seed), 'ERR_LLMK_ARG', `${op}: seed must be an integer`);
    const causal = opts.causal ?? false;
    const nQB = Math.ceil(s.qLen / s.blockQ), nKB = Math.ceil(s.kLen / s.blockK);
    const masks: Uint8Array[] = [];
    for (let h = 0; h < s.heads; h++) {
      const m = new Uint8Array(nQB * nKB);
      const rand = mulberry32((seed * 0x9e3779b1 + h * 0x85ebca6b) >>> 0);
      for (let r = 0; r < nQB; r++) {
        const [d0, d1] = BlockLayout.diagRange(s, r);
        const dc = Math.floor(Math.max(0, (d0 + d1) / 2) / s.blockK);  // diagonal key block
        const lastC = causal ? Math.min(nKB - 1, Math.floor(d1 / s.blockK)) : nKB - 1;
        for (let c = 0; c <= lastC; c++) {
          if (c < g || r < g || Math.abs(c - dc) <= loc) m[r * nKB + c] = 1;
        }
        // random extra blocks among those not kept yet (and allowed by `causal`)
        const free: number[] = [];
        for (let c = 0; c <= lastC; c++) if (!m[r * nKB + c]) free.push(c);
        for (let k = 0; k < rnd && free.length > 0; k++) {
          const pick = Math.floor(rand() * free.length);
          m[r * nKB + free[pick]] = 1;
          free.splice(pick, 1);
        }
      }
      masks.push(m);
    }
    return BlockLayout.build(op, s, (h, r, c) => masks[h][r * nKB + c] === 1);
  }

  /**
   * Sparse-Transformer / Phi-3-small "blocksparse": causal over blocks, keeping the `localBlocks`
   * blocks nearest the diagonal and every key block c with (c + 1 + offset) % stride === 0, where
   * offset = head % stride for per-head layouts with `headSliding` (Phi-3's non-homogeneous heads), else 0.
   */
  static strided(opts: LayoutSizeOptions & { localBlocks: number; stride: number; headSliding?: boolean; causal?: boolean }): BlockLayout {
    const op = 'BlockLayout.strided';
    const s = resolveSizes(op, opts);
    const loc = nonNegInt(op, 'localBlocks', opts.localBlocks);
    const stride = nonNegInt(op, 'stride', opts.stride);
    check(stride >= 1, 'ERR_LLMK_ARG', `${op}: stride must be >= 1`);
    const causal = opts.causal ?? true;
    const sliding = opts.headSliding ?? false;
    return BlockLayout.build(op, s, (h, r, c) => {
      const d1 = BlockLayout.diagRange(s, r)[1];
      if (causal && (d1 < 0 || c * s.blockK > d1)) return false;
      const dc = Math.floor(Math.max(0, d1) / s.blockK);  // key block of the row's last diagonal key
      const dist = Math.abs(dc - c);
      const off = sliding ? h % stride : 0;
      return dist < loc || (c + 1 + off) % stride === 0;
    });
  }

  /**
   * Block-diagonal layout of packed documents: `lengths` are the documents' token counts (summing to
   * seqLen); a block is kept when a query and a key of it belong to the same document. `causal: true`
   * also drops blocks above the diagonal. The token-level document boundary inside a shared block is
   * not masked: align documents to the block size for an exact mask.
   */
  static document(opts: LayoutSizeOptions & { lengths: readonly number[]; causal?: boolean }): BlockLayout {
    const op = 'BlockLayout.document';
    const lengths = opts?.lengths;
    check(Array.isArray(lengths) && lengths.length > 0, 'ERR_LLMK_ARG', `${op}: lengths must be a non-empty array`);
    let total = 0;
    for (const l of lengths) {
      check(isInt(l) && l >= 1, 'ERR_LLMK_ARG', `${op}: each length must be a positive integer, got ${String(l)}`);
      total += l;
    }
    const s = resolveSizes(op, { seqLen: total, ...opts });
    check(s.qLen === total && s.kLen === total, 'ERR_LLMK_SHAPE',
      () => `${op}: the lengths sum to ${total}, but the layout is for qLen ${s.qLen}, kLen ${s.kLen}`);
    const starts: number[] = [];
    let acc = 0;
    for (const l of lengths) { starts.push(acc); acc += l; }
    const docOf = (i: number): number => {  // last start <= i
      let lo = 0, hi = starts.length - 1;
      while (lo < hi) { const m = (lo + hi + 1) >> 1; if (starts[m] <= i) lo = m; else hi = m - 1; }
      return lo;
    };
    const causal = opts.causal ?? false;
    return BlockLayout.build(op, s, (_h, r, c) => {
      const q0 = r * s.blockQ, q1 = Math.min(total, q0 + s.blockQ) - 1;
      const k0 = c * s.blockK, k1 = Math.min(total, k0 + s.blockK) - 1;
      if (causal && k0 > q1) return false;
      // documents overlapping the query range and the key range intersect?
      return docOf(q0) <= docOf(k1) && docOf(k0) <= docOf(q1);
    });
  }

  /**
   * From a boolean block mask `[nQB][nKB]` (or per head `[heads][nQB][nKB]`). Without seqLen / qLen /
   * kLen the lengths are nQB·blockQ and nKB·blockK.
   */
  static fromBlockMask(mask: ReadonlyArray<ReadonlyArray<boolean | number>> | ReadonlyArray<ReadonlyArray<ReadonlyArray<boolean | number>>>,
    opts: LayoutSizeOptions = {}): BlockLayout {
    opts = opts ?? {};
    const op = 'BlockLayout.fromBlockMask';
    check(Array.isArray(mask) && mask.length > 0, 'ERR_LLMK_ARG', `${op}: mask must be a non-empty 2-D (or 3-D per-head) array`);
    const perHead = Array.isArray(mask[0]) && Array.isArray((mask[0] as unknown[])[0]);
    const m3 = (perHead ? mask : [mask]) as ReadonlyArray<ReadonlyArray<ReadonlyArray<boolean | number>>>;
    const nQB = m3[0].length;
    check(nQB > 0 && Array.isArray(m3[0][0]), 'ERR_LLMK_ARG', `${op}: mask rows must be arrays`);
    const nKB = m3[0][0].length;
    check(nKB > 0, 'ERR_LLMK_ARG', `${op}: mask rows must not be empty`);
    for (let h = 0; h < m3.length; h++) {
      check(Array.isArray(m3[h]) && m3[h].length === nQB, 'ERR_LLMK_SHAPE', () => `${op}: head ${h} has ${m3[h]?.length} rows, ${nQB} expected`);
      for (let r = 0; r < nQB; r++) {
        check(Array.isArray(m3[h][r]) && m3[h][r].length === nKB, 'ERR_LLMK_SHAPE',
          () => `${op}: row ${r} of head ${h} has ${m3[h][r]?.length} entries, ${nKB} expected (mask must be rectangular)`);
      }
    }
    const bq = opts.blockQ ?? opts.blockSize ?? 64, bk = opts.blockK ?? opts.blockSize ?? 64;
    const s = resolveSizes(op, {
      ...opts,
      qLen: opts.qLen ?? opts.seqLen ?? nQB * bq,
      kLen: opts.kLen ?? opts.seqLen ?? nKB * bk,
      heads: perHead ? m3.length : opts.heads,
    });
    check(Math.ceil(s.qLen / s.blockQ) === nQB && Math.ceil(s.kLen / s.blockK) === nKB, 'ERR_LLMK_SHAPE',
      () => `${op}: a ${nQB}×${nKB} block mask does not fit qLen ${s.qLen} / blockQ ${s.blockQ} and kLen ${s.kLen} / blockK ${s.blockK}`);
    const hm = perHead ? (h: number) => h : () => 0;
    return BlockLayout.build(op, s, (h, r, c) => Boolean(m3[hm(h)][r][c]));
  }

  /**
   * From raw BSR arrays (validated: lengths, rowPtr monotone, column indices in range, sorted and
   * unique). Per-head: give `heads` with stacked arrays, or arrays of per-head arrays.
   */
  static fromBsr(opts: BsrArrays & LayoutSizeOptions): BlockLayout {
    const op = 'BlockLayout.fromBsr';
    check(opts !== null && typeof opts === 'object', 'ERR_LLMK_ARG', `${op}: options object required`);
    const { rowPtr, colIdx } = opts;
    check(rowPtr !== undefined && colIdx !== undefined, 'ERR_LLMK_ARG', `${op}: rowPtr and colIdx are required`);
    const nested = Array.isArray(rowPtr) && rowPtr.length > 0 && typeof rowPtr[0] !== 'number';
    if (nested) {
      const rps = rowPtr as ReadonlyArray<Int32Array | readonly number[]>;
      const cis = colIdx as ReadonlyArray<Int32Array | readonly number[]>;
      check(Array.isArray(cis) && cis.length === rps.length, 'ERR_LLMK_SHAPE',
        `${op}: per-head rowPtr and colIdx must be arrays of the same length`);
      const s = resolveSizes(op, { ...opts, heads: rps.length });
      const nQB = Math.ceil(s.qLen / s.blockQ);
      const rp = new Int32Array(rps.length * (nQB + 1));
      const parts: Int32Array[] = [];
      let base = 0;
      for (let h = 0; h < rps.length; h++) {
        const r = toInt32(`rowPtr[${h}]`, rps[h]), c = toInt32(`colIdx[${h}]`, cis[h]);
        check(r.length === nQB + 1, 'ERR_LLMK_SHAPE',
          () => `${op}: rowPtr[${h}] has ${r.length} entries, nQB + 1 = ${nQB + 1} expected (qLen ${s.qLen}, blockQ ${s.blockQ})`);
        check(r[0] === 0 && r[nQB] === c.length, 'ERR_LLMK_INDEX',
          () => `${op}: rowPtr[${h}] must start at 0 and end at colIdx[${h}].length = ${c.length}`);
        for (let i = 0; i <= nQB; i++) rp[h * (nQB + 1) + i] = r[i] + base;
        parts.push(c);
        base += c.length;
      }
      const ci = new Int32Array(base);
      let o = 0;
      for (const p of parts) { ci.set(p, o); o += p.length; }
      return new BlockLayout(s, rp, ci, op);
    }
    const s = resolveSizes(op, opts);
    return new BlockLayout(s, Int32Array.from(toInt32('rowPtr', rowPtr as Int32Array | number[])),
      Int32Array.from(toInt32('colIdx', colIdx as Int32Array | number[])), op);
  }

  private static combine(op: string, layouts: BlockLayout[], all: boolean): BlockLayout {
    check(layouts.length > 0, 'ERR_LLMK_ARG', `${op}: give at least one layout`);
    for (const l of layouts) check(l instanceof BlockLayout, 'ERR_LLMK_ARG', `${op}: arguments must be BlockLayouts`);
    const a = layouts[0];
    let heads = 1, perHead = false;
    for (const l of layouts) {
      check(l.blockQ === a.blockQ && l.blockK === a.blockK && l.qLen === a.qLen && l.kLen === a.kLen, 'ERR_LLMK_SHAPE',
        () => `${op}: layouts differ in size (${a.qLen}×${a.kLen} blocks ${a.blockQ}×${a.blockK} vs ` +
          `${l.qLen}×${l.kLen} blocks ${l.blockQ}×${l.blockK})`);
      if (l.perHead) {
        check(!perHead || l.heads === heads, 'ERR_LLMK_SHAPE', () => `${op}: per-head layouts differ in head count (${heads} vs ${l.heads})`);
        heads = l.heads; perHead = true;
      }
    }
    const s: Sizes = { qLen: a.qLen, kLen: a.kLen, blockQ: a.blockQ, blockK: a.blockK, heads, perHead };
    return BlockLayout.build(op, s, (h, r, c) => {
      if (all) return layouts.every((l) => l.has(r, c, h));
      return layouts.some((l) => l.has(r, c, h));
    });
  }

  /** Blocks kept by any of the layouts (same sizes; shared and per-head layouts mix into per-head). */
  static union(...layouts: BlockLayout[]): BlockLayout { return BlockLayout.combine('BlockLayout.union', layouts, false); }

  /** Blocks kept by all of the layouts. */
  static intersect(...layouts: BlockLayout[]): BlockLayout { return BlockLayout.combine('BlockLayout.intersect', layouts, true); }
}

