// Prints the C++ sources of native/sources.json for binding.gyp (the CPU-only build): every list
// except CUDA files and native tests.
const path = require('path');
const s = require(path.join(__dirname, '..', 'native', 'sources.json'));
const out = [...s.core, ...s.cpu, ...s.ops, ...s.napi];
for (const fam of ['moe', 'int4', 'attention', 'dist']) {
  for (const part of ['core', 'cpu', 'ops', 'napi']) out.push(...((s[fam] && s[fam][part]) || []));
}
process.stdout.write(out.join(' '));
