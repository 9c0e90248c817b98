/**
 * Logging in SPDK's manner: levels, and per-component debug flags (`-L bdev -L rpc`). One line per
 * event. Nothing on the per-I/O path logs: components log state changes and control operations.
 */
export type LogLevel = 'error' | 'warn' | 'notice' | 'info' | 'debug';
const ORDER: Record<LogLevel, number> = { error: 0, warn: 1, notice: 2, info: 3, debug: 4 };

export class Logger {
  level: LogLevel;
  readonly #flags = new Set<string>();
  readonly #out: (line: string) => void;

  constructor(
    level: LogLevel = 'notice',
    out: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
  ) {
    this.level = level;
    this.#out = out;
  }

  /** Enable debug output for a component (`all` for every component). */
  enable(component: string): void {
    this.#flags.add(component);
  }

  enabled(component: string): boolean {
    return this.#flags.has(component) || this.#flags.has('all');
  }

  log(level: LogLevel, component: string, msg: string): void {
    if (level === 'debug' ? !this.enabled(component) : ORDER[level] > ORDER[this.level]) return;
    const ts = new Date().toISOString();
    this.#out(`[${ts}] ${level.toUpperCase().padEnd(6)} ${component}: ${msg}`);
  }

  error(c: string, m: string): void {
    this.log('error', c, m);
  }
  warn(c: string, m: string): void {
    this.log('warn', c, m);
  }
  notice(c: string, m: string): void {
    this.log('notice', c, m);
  }
  info(c: string, m: string): void {
    this.log('info', c, m);
  }
  debug(c: string, m: string): void {
    this.log('debug', c, m);
  }
}
