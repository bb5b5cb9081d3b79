/** Error codes of llm-kernels (docs/architecture.md §1 (Errors)). */
export type LlmkErrorCode =
  | 'ERR_LLMK_ARG'
  | 'ERR_LLMK_SHAPE'
  | 'ERR_LLMK_DTYPE'
  | 'ERR_LLMK_DEVICE'
  | 'ERR_LLMK_DISPOSED'
  | 'ERR_LLMK_OOM'
  | 'ERR_LLMK_INDEX'
  | 'ERR_LLMK_CUDA'
  | 'ERR_LLMK_NCCL'
  | 'ERR_LLMK_AUTH'
  | 'ERR_LLMK_UNAVAILABLE'
  | 'ERR_LLMK_INTERNAL';

/** Every error the library raises on purpose is an LlmkError with a stable `code`. */
export class LlmkError extends Error {
  readonly code: LlmkErrorCode;
  /** CUDA error name (cudaErrorXxx) for ERR_LLMK_CUDA. */
  cudaError?: string;
  /** NCCL result name for ERR_LLMK_NCCL. */
  ncclResult?: string;
  constructor(message: string, code: LlmkErrorCode) {
    super(message);
    this.name = 'LlmkError';
    this.code = code;
  }
}

/** Throws an LlmkError with `code` unless `cond` holds. */
export function check(cond: unknown, code: LlmkErrorCode, message: string | (() => string)): asserts cond {
  if (!cond) throw new LlmkError(typeof message === 'function' ? message() : message, code);
}

/** A short, never-throwing description of any value for error messages (BigInt and Symbol included). */
export function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'symbol' || typeof v === 'function') return typeof v;
  if (v === null || typeof v !== 'object') return String(v);
  return Array.isArray(v) ? 'an array' : 'an object';
}
