// Runs on the reactor's app thread: start the framework, then fill, copy, compare and CRC32C
// through this thread's accel channel, each in the callback of the one before; then the same copy
// and CRC as one sequence. Every callback runs later, on this thread, never inside a submit.
import {
  ACCEL_ENOMEM,
  type AccelChannel,
  accelFinish,
  accelGetIoChannel,
  accelGetOpcAssignments,
  accelInitialize,
  accelIoatScan,
  accelIoatSetDevices,
} from '@storkit/accel';
import { crc32c, DmaRegion, type PciDeviceShare } from '@storkit/native';
import { appReport, appStop, getThread, type IoChannel } from '@storkit/reactor';

const MiB = 1 << 20;
const say = (step: string, extra: Record<string, unknown> = {}) => appReport({ step, ...extra });

export default async function main(arg: { ioat: PciDeviceShare | null }): Promise<void> {
  const thread = getThread();
  if (arg.ioat !== null) {
    accelIoatSetDevices([arg.ioat]);
    accelIoatScan(); // ioat_scan_accel_module: copy and fill go to the engine
  }
  await accelInitialize();
  // An await resumes outside the thread: run the rest on it, as a message.
  thread?.sendMsg(() => run());
}

function run(): void {
  const io = accelGetIoChannel();
  const ch = io.ctx;
  // DMA memory: the engine reaches it (the CPU would copy any memory).
  const mem = DmaRegion.create(2 * MiB);
  const b = mem.bytes;
  say('start', { assignments: accelGetOpcAssignments() });
  check(
    ch.submitFill(b, 0, MiB, 0x5a, (_a, st) => {
      say('fill', { status: st, first: b[0], last: b[MiB - 1] });
      b[12345] = 7; // so the copy is not all one byte
      check(
        ch.submitCopy(b, MiB, b, 0, MiB, (_a2, st2) => {
          say('copy', { status: st2 });
          check(
            ch.submitCompare(b, 0, b, MiB, MiB, (_a3, st3) => {
              say('compare', { status: st3, equal: st3 === 0 });
              check(
                ch.submitCrc32c(b, MiB, MiB, 0, (_a4, st4, crc) => {
                  say('crc32c', { status: st4, crc, expected: crc32c(b.subarray(0, MiB)) });
                  sequence(ch, b, () => finish(io, mem));
                }),
              );
            }),
          );
        }),
      );
    }),
  );
}

/** The copy back and its CRC as one sequence: one callback, in order. */
function sequence(ch: AccelChannel, b: Uint8Array, then: () => void): void {
  const seq = ch.sequence();
  if (seq === null) throw new Error('no free sequence');
  b.fill(0, 0, MiB);
  check(seq.appendCopy(b, 0, b, MiB, MiB));
  check(seq.appendCrc32c(b, 0, MiB, 0));
  check(
    seq.finish((_a, st, crc) => {
      say('sequence', { status: st, crc, expected: crc32c(b.subarray(MiB, 2 * MiB)) });
      then();
    }),
  );
}

function finish(io: IoChannel<AccelChannel>, mem: DmaRegion): void {
  say('stats', { stats: io.ctx.moduleStats(), executed: [...io.ctx.stats.executed] });
  io.put();
  mem.close();
  accelFinish().then(() => appStop(0));
}

/** A submit returns 0, or ACCEL_ENOMEM when every task is in flight (not here: one at a time). */
function check(rc: number): void {
  if (rc === ACCEL_ENOMEM) throw new Error('accel: no free task');
  if (rc !== 0) throw new Error(`accel: submit refused (${rc})`);
}
