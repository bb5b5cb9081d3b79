// Seeded random numbers for test inputs (pure: no library code).

/** mulberry32: small seeded PRNG for test inputs. */
export function rng(seed: number): () => number {
  const imul = Math.imul;  // looked up once: a global read per call is slow under Jest (helpers.ts randnArray)
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = imul(t ^ (t >>> 15), t | 1);
    t ^= t + imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
