#!/usr/bin/env bash
# Proves that a refactor of CUDA sources is mechanical: compiles each given .cu file at two revisions
# with `nvcc --ptx` and compares the PTX of every kernel and device function, with names normalised.
#
#   scripts/ptx-diff.sh REV_A REV_B FILE.cu...      REV_B may be WORKTREE (the files as they are now)
#   ARCH=sm_80 scripts/ptx-diff.sh main WORKTREE native/src/cuda/int4.cu
#   KEEP=/tmp/ptx scripts/ptx-diff.sh ...          also keeps the raw PTX (<file>.a.ptx, <file>.b.ptx)
#
# Normalisation: comments, .file/.loc lines and blank lines are dropped; inside each function every
# mangled or generated name (_Z..., $str, __internal_..., __cudart_...) becomes N1, N2, ... in order of
# first use (so a renamed helper, a namespace move or an anonymous-namespace hash does not count), and
# the function's index in block labels ($L__BB<i>_<n>) and local depots is dropped;
# functions are compared as a sorted set (so a different instantiation order does not count either).
# Anything else that differs (an instruction, a register count, a label) is printed as a diff.
# Exit status: 0 when every file's PTX is the same apart from names, 1 otherwise.
set -euo pipefail

if [ $# -lt 3 ]; then
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
rev_a=$1 rev_b=$2
shift 2
arch=${ARCH:-sm_90}
root=$(git rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

checkout() {  # checkout REV DIR: the native/ tree of REV (or of the working tree) under DIR
  mkdir -p "$2"
  if [ "$1" = WORKTREE ]; then
    cp -r "$root/native" "$2/"
  else
    git -C "$root" archive "$1" native | tar -x -C "$2"
  fi
}

normalise() {  # normalise IN.ptx > OUT: one normalised function per block, blocks sorted
  python3 - "$1" <<'PY'
import re, sys
NAME = re.compile(r'(_Z\w+|\$str(\$\d+)?|__internal_\w+|__cudart_\w+|_GLOBAL__N_\w+)')
START = re.compile(r'^\s*(\.(visible|weak|extern)\s+)*\.(entry|func)\b')
def rename(text):
    seen = {}
    text = NAME.sub(lambda m: seen.setdefault(m.group(0), 'N%d' % (len(seen) + 1)), text)
    # block labels and local depots carry the function's position in the module
    return re.sub(r'__local_depot\d+', '__local_depot', re.sub(r'\$L__BB\d+_', '$L__BB_', text))
blocks, module, cur, depth = [], [], None, 0
for line in open(sys.argv[1]):
    s = line.strip()
    if not s or s.startswith('//') or s.startswith('.file') or s.startswith('.loc'):
        continue
    s = re.sub(r'\s+', ' ', s)
    if cur is None and START.match(s):
        cur, depth = [], 0
    if cur is None:
        module.append(rename(s))
        continue
    cur.append(s)
    depth += s.count('{') - s.count('}')
    if depth == 0 and '}' in s:
        blocks.append(rename('\n'.join(cur)))
        cur = None
    elif depth == 0 and s.endswith(';') and not any('{' in x for x in cur):
        blocks.append(rename('\n'.join(cur)))  # a declaration (.extern .func ...;)
        cur = None
entries = sum(1 for b in blocks if re.match(r'(\.(visible|weak)\s+)*\.entry', b))
print('# %d kernels, %d functions/declarations' % (entries, len(blocks)))
print('\n'.join(sorted(module)))
for b in sorted(blocks):
    print('\n' + b)
PY
}

checkout "$rev_a" "$work/a"
checkout "$rev_b" "$work/b"
status=0
for f in "$@"; do
  for side in a b; do
    if [ ! -f "$work/$side/$f" ]; then echo "$f: missing at ${side/a/$rev_a}"; exit 2; fi
    nvcc --ptx -arch="$arch" -std=c++17 -O3 --expt-relaxed-constexpr -DLLMK_WITH_CUDA=1 \
      "$work/$side/$f" -o "$work/$side.ptx"
    normalise "$work/$side.ptx" > "$work/$side.norm"
    if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp "$work/$side.ptx" "$KEEP/$(basename "$f").$side.ptx"; fi
  done
  summary=$(head -1 "$work/b.norm")
  if diff -u "$work/a.norm" "$work/b.norm" > "$work/diff"; then
    echo "$f ($arch): PTX identical apart from names ${summary#\# }"
  else
    echo "$f ($arch): PTX DIFFERS"
    cat "$work/diff"
    status=1
  fi
done
exit $status
