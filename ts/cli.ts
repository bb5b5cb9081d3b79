#!/usr/bin/env node
/**
 * `npx llm-kernels <command>`:
 *   launch --nproc-per-node N [--nnodes M --node-rank R --master-addr A --master-port P] script.js [args...]
 *       one process per local rank with torchrun's variables and the job token (LLMK_STORE_TOKEN); a
 *       failing rank stops the others and the exit code is non-zero; ranks never outlive the launcher.
 *   nccl-info
 *       where NCCL was found (version, path) or why it is unavailable.
 */
import { LAUNCH_USAGE, launch, launchToken, parseLaunchArgs } from './dist/launch';

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd === 'launch') {
    let opts;
    try {
      opts = parseLaunchArgs(rest);
      opts.token = launchToken(process.env, opts.nnodes);
    } catch (e) {
      process.stderr.write(`llm-kernels: ${(e as Error).message}\n`);
      return 2;
    }
    return launch(opts);
  }
  if (cmd === 'nccl-info') {
    // Loaded lazily: `launch` must work even where the addon cannot load.
    const { nccl } = await import('./dist');
    process.stdout.write(JSON.stringify(nccl.info(), null, 2) + '\n');
    return nccl.info().available ? 0 : 1;
  }
  process.stderr.write(`llm-kernels: unknown command ${cmd === undefined ? '(none)' : JSON.stringify(cmd)}\n` +
    `commands:\n  ${LAUNCH_USAGE.replace('usage: ', '')}\n  llm-kernels nccl-info\n`);
  return 2;
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => { process.exitCode = code; }, (e) => {
    process.stderr.write(`llm-kernels: ${(e as Error).stack ?? e}\n`);
    process.exitCode = 1;
  });
}

export { main };
