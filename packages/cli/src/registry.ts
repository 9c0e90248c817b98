import type { Command } from './command.js';
import { accelPerf } from './commands/accel-perf.js';
import { bdevperf } from './commands/bdevperf.js';
import { dd } from './commands/dd.js';
import { demo } from './commands/demo.js';
import { ioatPerf } from './commands/ioat-perf.js';
import { nvmeIdentify } from './commands/nvme-identify.js';
import { nvmePerf } from './commands/nvme-perf.js';
import { rpc } from './commands/rpc.js';
import { setup } from './commands/setup.js';
import { tgt } from './commands/tgt.js';

/** Every subcommand. Later packages add theirs here (tgt, rpc, bdevperf, nvme-perf, ...). */
export const commands: readonly Command[] = [
  accelPerf,
  bdevperf,
  dd,
  demo,
  ioatPerf,
  nvmeIdentify,
  nvmePerf,
  rpc,
  setup,
  tgt,
];

export function findCommand(name: string): Command | undefined {
  return commands.find((c) => c.name === name);
}
