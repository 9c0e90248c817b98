import type { Command } from './command.js';
import { demo } from './commands/demo.js';

/** Every subcommand. Later packages add theirs here (tgt, rpc, bdevperf, nvme-perf, ...). */
export const commands: readonly Command[] = [demo];

export function findCommand(name: string): Command | undefined {
  return commands.find((c) => c.name === name);
}
