// Prints the C++ sources of native/sources.json for binding.gyp (the CPU-only build): every list
// except CUDA files and native tests. Kernel families are the object members of sources.json (as in
// CMakeLists.txt), so a new family needs no edit here.
const path = require('path');
const s = require(path.join(__dirname, '..', 'native', 'sources.json'));
const parts = ['core', 'cpu', 'ops', 'napi'];
const families = Object.keys(s).filter((k) => s[k] !== null && typeof s[k] === 'object' && !Array.isArray(s[k]));
const out = parts.flatMap((part) => s[part] || []);
for (const fam of families) {
  for (const part of parts) out.push(...(s[fam][part] || []));
}
process.stdout.write(out.join(' '));
