// The packed tarball installs into an empty project with no install scripts and loads the prebuild.
import { execFileSync } from 'child_process';
import * as path from 'path';

describe('npm pack', () => {
  it('installs and loads without compiling (prebuild), for require and import', () => {
    const out = execFileSync(process.execPath, [path.join(__dirname, '..', 'scripts', 'pack-check.js')], {
      encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 600000,
    });
    expect(out).toMatch(/pack-check ok: .* installed without compiling; loaded .*prebuilds\/linux-x64\//);
  }, 600000);
});
