// Tools for tests that drive the target with libiscsi's command-line programs (this package's
// and the app's): run a tool without blocking the event loop, classify iscsi-test-cu's output,
// capture with tshark. Exported as @storkit/iscsi/testing; not used by the target itself.
import { spawn } from 'node:child_process';

export interface SuiteResult {
  total: number;
  /** Passed and not skipped: CUnit prints skipped tests as passed. */
  passed: number;
  skipped: number;
  failed: number;
  failedNames: string[];
  skippedNames: string[];
  summaryFailed: number;
}

/**
 * Classifies each test of an `iscsi-test-cu` run (normal or verbose output). A test's text runs
 * from its "Test: NAME ..." line to the next test or suite line.
 */
export function parseCunit(out: string): SuiteResult {
  const r: SuiteResult = {
    total: 0,
    passed: 0,
    skipped: 0,
    failed: 0,
    failedNames: [],
    skippedNames: [],
    summaryFailed: -1,
  };
  let suite = '';
  const chunks = out.split(/\n(?=Suite: |\s+Test: )/);
  for (const c of chunks) {
    const s = /^Suite: (\S+)/.exec(c);
    if (s) suite = s[1];
    const t = /^\s+Test: (\S+) \.\.\./.exec(c);
    if (!t) continue;
    const name = `${suite}.${t[1]}`;
    r.total++;
    if (/\.\.\.FAILED|^FAILED$/m.test(c)) {
      r.failed++;
      r.failedNames.push(name);
    } else if (c.includes('[SKIPPED]')) {
      r.skipped++;
      r.skippedNames.push(name);
    } else r.passed++;
  }
  const sum = /^\s+tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/m.exec(out);
  if (sum) r.summaryFailed = Number(sum[4]);
  return r;
}

/** Runs a command without blocking the event loop (the target lives in this process). */
export function runTool(
  cmd: string,
  args: string[],
  timeoutMs = 60_000,
): Promise<{ code: number; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b) => (out += b));
    child.stderr.on('data', (b) => (out += b));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, out });
    });
  });
}

/** Starts `tshark -w`; resolves once it is capturing. `stop` ends it (SIGINT) and waits. */
export async function startCapture(
  iface: string,
  filter: string,
  file: string,
): Promise<{ stop(): Promise<void> }> {
  const child = spawn('tshark', ['-i', iface, '-B', '64', '-f', filter, '-w', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const closed = new Promise<void>((r) => child.on('close', () => r()));
  await new Promise<void>((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error(`tshark did not start capturing: ${err}`)), 20_000);
    child.on('error', reject);
    child.stderr.on('data', (b) => {
      err += b;
      if (err.includes('Capture started') || err.includes('Capturing on')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  // "Capturing on" precedes the first packet by a moment.
  await new Promise((r) => setTimeout(r, 500));
  return {
    stop: async () => {
      child.kill('SIGINT');
      await closed;
    },
  };
}
