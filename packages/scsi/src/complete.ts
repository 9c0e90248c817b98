/** Finishing a SCSI task: status, fixed-format sense and data-in length (shared by every command). */
import { Asc, SenseKey, Status, writeFixedSense } from './sense.js';
import type { ScsiTask } from './task.js';

export function finish(task: ScsiTask): void {
  task.onDone(task);
}

export function check(task: ScsiTask, key: number, asc: number, info = -1): void {
  task.status = Status.CheckCondition;
  task.senseLength = writeFixedSense(task.sense, key, asc, info);
  task.dataInLength = 0;
}

export function invalidField(task: ScsiTask): void {
  check(task, SenseKey.IllegalRequest, Asc.InvalidFieldInCdb);
  finish(task);
}

export function fail(task: ScsiTask, asc: number): void {
  check(task, SenseKey.IllegalRequest, asc);
  finish(task);
}

/** Completes a data-in command that produced `n` bytes, truncated to its allocation length. */
export function dataIn(task: ScsiTask, n: number, alloc: number): void {
  const len = Math.min(n, alloc);
  task.dataInLength = len;
  task.transferLength = len;
  finish(task);
}

/** Checks that the transport delivered exactly `need` bytes of data-out. */
export function checkDataOut(task: ScsiTask, need: number): boolean {
  task.transferLength = need;
  if (task.dataOutLength === need) return true;
  fail(task, Asc.InvalidFieldInInformationUnit);
  return false;
}
