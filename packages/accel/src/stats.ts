// accel_get_stats: per-channel counters, summed over every channel of every reactor, in SPDK's
// JSON shape (v24.01): operations that ran at least once, by opcode with their module.
import type { AccelChannel } from './channel.js';
import { ACCEL_OPC_COUNT, ACCEL_OPC_NAMES } from './opcodes.js';

/** Plain-data counters (postable between workers, summable). */
export interface AccelStats {
  executed: number[];
  failed: number[];
  bytes: number[];
  sequenceExecuted: number;
  sequenceFailed: number;
  retryTask: number;
  retrySequence: number;
  /** Module counters by module name. */
  modules: Record<string, Record<string, number>>;
}

export function accelStatsOf(ch: AccelChannel): AccelStats {
  const s = ch.stats;
  return {
    executed: [...s.executed],
    failed: [...s.failed],
    bytes: [...s.bytes],
    sequenceExecuted: s.sequenceExecuted,
    sequenceFailed: s.sequenceFailed,
    retryTask: s.retryTask,
    retrySequence: s.retrySequence,
    modules: ch.moduleStats(),
  };
}

export function accelStatsSum(all: readonly AccelStats[]): AccelStats {
  const out: AccelStats = {
    executed: new Array(ACCEL_OPC_COUNT).fill(0),
    failed: new Array(ACCEL_OPC_COUNT).fill(0),
    bytes: new Array(ACCEL_OPC_COUNT).fill(0),
    sequenceExecuted: 0,
    sequenceFailed: 0,
    retryTask: 0,
    retrySequence: 0,
    modules: {},
  };
  for (const s of all) {
    for (let op = 0; op < ACCEL_OPC_COUNT; op++) {
      out.executed[op] += s.executed[op];
      out.failed[op] += s.failed[op];
      out.bytes[op] += s.bytes[op];
    }
    out.sequenceExecuted += s.sequenceExecuted;
    out.sequenceFailed += s.sequenceFailed;
    out.retryTask += s.retryTask;
    out.retrySequence += s.retrySequence;
    for (const [m, c] of Object.entries(s.modules)) {
      const to = (out.modules[m] ??= {});
      for (const [k, v] of Object.entries(c)) to[k] = (to[k] ?? 0) + v;
    }
  }
  return out;
}

/** SPDK's accel_get_stats result for summed counters and the current assignments. */
export function accelStatsJson(s: AccelStats, assignments: Record<string, string>): Record<string, unknown> {
  const operations: Record<string, unknown>[] = [];
  for (let op = 0; op < ACCEL_OPC_COUNT; op++) {
    if (s.executed[op] + s.failed[op] === 0) continue;
    const name = ACCEL_OPC_NAMES[op];
    operations.push({
      opcode: name,
      module_name: assignments[name],
      executed: s.executed[op],
      failed: s.failed[op],
      num_bytes: s.bytes[op],
    });
  }
  return {
    sequence_executed: s.sequenceExecuted,
    sequence_failed: s.sequenceFailed,
    operations,
    retry_task: s.retryTask,
    retry_sequence: s.retrySequence,
    retry_iobuf: 0,
    retry_bufdesc: 0,
    modules: s.modules,
  };
}
