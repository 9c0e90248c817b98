/**
 * Exceptions caught on an I/O path, where throwing would take down every other I/O of the
 * reactor: each one fails only its I/O, and is counted, kept (the last one) and logged, never
 * swallowed. Tests assert `count` stays 0; operators see the log line. Logging is thinned to the
 * 1st, 10th, 100th... occurrence so a storm of one bug cannot flood the log or slow the reactor.
 */
export class ContainedErrors {
  /** Where these happen, for the log line (e.g. "bdev Malloc0 submit"). */
  readonly where: string;
  count = 0;
  /** The most recent exception (a bug of ours if ever set). */
  last: unknown = undefined;
  #nextLog = 1;
  /** What an exception cost, for the log line ("failed its I/O"). */
  readonly #consequence: string;

  constructor(where: string, consequence = 'failed its I/O') {
    this.where = where;
    this.#consequence = consequence;
  }

  record(e: unknown): void {
    this.count++;
    this.last = e;
    if (this.count === this.#nextLog) {
      this.#nextLog *= 10;
      containedLog(`${this.where}: exception #${this.count} ${this.#consequence}: ${describe(e)}`);
    }
  }
}

function describe(e: unknown): string {
  if (e instanceof Error) return e.stack ?? `${e.name}: ${e.message}`;
  return String(e);
}

let containedLog: (line: string) => void = (line) => process.stderr.write(`${line}\n`);

/** Send contained-exception log lines elsewhere (the app's logger, a test's array); returns the previous sink. */
export function setContainedLog(fn: (line: string) => void): (line: string) => void {
  const prev = containedLog;
  containedLog = fn;
  return prev;
}
