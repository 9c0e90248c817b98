// tshark helpers of the Wireshark checks (this package's engine test and the app-hosted target's): capture on lo, decode as NVMe/TCP with digest checking, and list
// what the dissector flags.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import net from 'node:net';

// What counts as a problem: malformed, expert info of warning or worse, or a digest the dissector
// recomputed and found wrong (reported as a status field, not as expert info). Expert info that TCP
// analysis raises on a frame (retransmission, D-SACK: the kernel resending on a loaded machine) is
// the loopback's, not our wire format's, and is left out; such frames still count when malformed.
export const PROBLEMS =
  '_ws.malformed || nvme-tcp.hdgst.status == 0 || nvme-tcp.ddgst.status == 0 || ' +
  '(_ws.expert.severity >= warning && !(tcp.analysis.flags || tcp.options.sack.dsack))';

export function tshark(args: string[]): string {
  return execFileSync('tshark', args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
    maxBuffer: 64 << 20,
  });
}

/** Throws with the install hint when tshark is missing. */
export function requireTshark(): void {
  try {
    execFileSync('tshark', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('tshark is required for this test: apt-get install -y tshark (.ci/run installs it)');
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Capture TCP on lo for `ports` into `file`; resolves once packets really reach the file (tshark
 * says "Capturing on" before dumpcap captures, so bare connections to `probePort` are made until
 * the file grows). `stop()` ends the capture and waits for tshark to exit.
 */
export async function startCapture(
  file: string,
  ports: number[],
  probePort: number,
): Promise<{ proc: ChildProcess; stop: () => Promise<void> }> {
  const filter = ports.map((p) => `tcp port ${p}`).join(' or ');
  const proc = spawn('tshark', ['-i', 'lo', '-f', filter, '-w', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  proc.stderr!.on('data', (d) => {
    err += d;
  });
  const until = Date.now() + 15000;
  while (!err.includes('Capturing on') && proc.exitCode === null && Date.now() < until) await sleep(20);
  if (!err.includes('Capturing on')) {
    proc.kill('SIGKILL');
    throw new Error(`tshark did not start capturing: ${err}`);
  }
  const empty = existsSync(file) ? statSync(file).size : 0;
  for (let i = 0; !(existsSync(file) && statSync(file).size > empty + 200); i++) {
    if (i > 300) {
      proc.kill('SIGKILL');
      throw new Error('tshark captured nothing on lo');
    }
    net
      .connect({ host: '127.0.0.1', port: probePort })
      .on('connect', function (this: net.Socket) {
        this.destroy();
      })
      .on('error', () => {});
    await sleep(50);
  }
  await sleep(200);
  return {
    proc,
    stop: async () => {
      if (proc.exitCode !== null) return;
      proc.kill('SIGINT');
      await new Promise((r) => proc.once('exit', r));
    },
  };
}

/**
 * tshark arguments decoding `port` as NVMe/TCP with digest checks. One decode-as rule per run:
 * with two `-d tcp.port==` rules tshark 3.6/4.0 drops the first for some streams.
 */
export const decodeFor = (file: string, port: number): string[] => [
  '-r',
  file,
  '-d',
  `tcp.port==${port},nvme-tcp`,
  '-o',
  'nvme-tcp.check_hdgst:TRUE',
  '-o',
  'nvme-tcp.check_ddgst:TRUE',
];

/** Frame numbers on `port` that Wireshark flags (PROBLEMS). */
export function flaggedFrames(file: string, port: number): string[] {
  return tshark([
    ...decodeFor(file, port),
    '-Y',
    `tcp.port==${port} && (${PROBLEMS})`,
    '-T',
    'fields',
    '-e',
    'frame.number',
  ])
    .split('\n')
    .filter(Boolean);
}

/** Full dissection of one frame, for failure messages. */
export const explainFrame = (file: string, port: number, frame: string): string =>
  tshark([...decodeFor(file, port), '-Y', `frame.number==${frame}`, '-V']);

/** The NVMe/TCP PDU types the dissector decoded on `port`, in order. */
export function pduTypes(file: string, port: number): number[] {
  return tshark([
    ...decodeFor(file, port),
    '-Y',
    `tcp.port==${port} && nvme-tcp`,
    '-T',
    'fields',
    '-e',
    'nvme-tcp.type',
  ])
    .split(/[\n,]/)
    .filter(Boolean)
    .map(Number);
}

/** Header and data digest verdicts (1 = good, 0 = bad) the dissector computed on `port`. */
export function digestVerdicts(file: string, port: number): string[] {
  return tshark([
    ...decodeFor(file, port),
    '-Y',
    `tcp.port==${port}`,
    '-T',
    'fields',
    '-e',
    'nvme-tcp.hdgst.status',
    '-e',
    'nvme-tcp.ddgst.status',
  ])
    .split(/[\n\t,]/)
    .filter(Boolean);
}
