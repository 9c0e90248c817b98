/** A storkit subcommand: `storkit <name> [args...]`. */
export interface Command {
  readonly name: string;
  /** One line for `storkit --help`. */
  readonly summary: string;
  /** Full usage text for `storkit <name> --help`. */
  readonly usage: string;
  /** The command reads `--help` itself (e.g. `storkit rpc METHOD --help`). */
  readonly handlesHelp?: boolean;
  /** Run with the arguments after the subcommand name; resolves to the process exit code. */
  run(argv: string[]): Promise<number>;
}

/** Thrown for bad command-line input: printed with the usage, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
