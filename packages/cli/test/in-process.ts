// The CLI run in this process (what it needs lives here: software controllers, or a controller the
// guest specs share with it), capturing what it writes to stdout.
import { runCli } from '../src/run.js';

export async function cli(...argv: string[]): Promise<{ code: number; out: string }> {
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string | Uint8Array) => {
    out += typeof s === 'string' ? s : Buffer.from(s).toString();
    return true;
  }) as typeof process.stdout.write;
  try {
    const code = await runCli(argv);
    return { code, out };
  } finally {
    process.stdout.write = write;
  }
}
