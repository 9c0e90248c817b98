// Wireshark's NVMe/TCP dissector as an independent judge of our wire format. A capture on lo of a
// full session (connect, identify, in-capsule and R2T writes, reads, with and without header and
// data digests) must decode with no malformed packet and no warning-level expert info, with every
// digest verified correct. A second connection on another port sends one PDU with a bad header
// digest: the dissector must flag that one, which proves the check can fail.
// Needs tshark (Debian package; .ci/run installs it) and permission to capture on lo.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { discover, NvmeController } from '@storkit/nvme';
import {
  CH_SIZE,
  encodeIcReq,
  HLEN,
  PduFlag,
  PduType,
  putHeaderDigest,
  SglId,
  sqeInit,
  sqeSetSgl,
  writeCh,
} from '@storkit/nvme/spec';
import { expect } from 'chai';

import { freePort, pollUntil, startTarget } from './helpers.js';

// What counts as a problem: malformed, expert info of warning or worse, or a digest the dissector
// recomputed and found wrong (reported as a status field, not as expert info).
const PROBLEMS =
  '_ws.malformed || _ws.expert.severity >= warning || nvme-tcp.hdgst.status == 0 || nvme-tcp.ddgst.status == 0';

function tshark(args: string[]): string {
  return execFileSync('tshark', args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
    maxBuffer: 64 << 20,
  });
}

async function session(trid: string, digests: boolean): Promise<void> {
  const c = await NvmeController.connect(trid, { hdgst: digests, ddgst: digests });
  try {
    await c.identifyNamespace(1);
    await c.activeNamespaces();
    const qp = await c.allocIoQpair({ depth: 8 });
    let n = 0;
    const done = (): void => {
      n++;
    };
    qp.write(1, 0, 8, new Uint8Array(4096).fill(1), done, null); // in-capsule
    qp.write(1, 8, 128, new Uint8Array(65536).fill(2), done, null); // R2T, several H2CData
    qp.read(1, 0, 136, new Uint8Array(136 * 512), done, null); // several C2HData
    qp.writeZeroes(1, 200, 8, done, null);
    await pollUntil(
      () => qp.processCompletions(),
      () => n === 4,
    );
    await c.freeIoQpair(qp);
  } finally {
    await c.close();
  }
}

// One ICReq, then a capsule whose header digest is wrong.
async function badDigestSession(port: number): Promise<void> {
  const s = net.connect({ host: '127.0.0.1', port });
  s.on('error', () => {});
  await new Promise((r) => s.once('connect', r));
  const ic = new Uint8Array(HLEN.ICReq);
  encodeIcReq(new DataView(ic.buffer), 0, { hpda: 0, hdgst: true, ddgst: false, maxr2t: 1 });
  s.write(ic);
  await new Promise((r) => setTimeout(r, 50));
  const b = new Uint8Array(HLEN.CapsuleCmd + 4);
  const dv = new DataView(b.buffer);
  writeCh(dv, 0, PduType.CapsuleCmd, PduFlag.HDGSTF, HLEN.CapsuleCmd, 0, b.length);
  sqeInit(dv, CH_SIZE, 0x06, 0x40, 1, 0);
  sqeSetSgl(dv, CH_SIZE, 0, 0, SglId.TransportDataBlock);
  putHeaderDigest(b, dv, 0, HLEN.CapsuleCmd);
  b[HLEN.CapsuleCmd] ^= 0xff;
  s.write(b);
  // Read (and drop) the TermReq so the close that follows it is seen.
  s.resume();
  await new Promise((r) => s.once('close', r));
}

describe('nvmf: Wireshark decodes a captured session cleanly', function () {
  this.timeout(60000);
  let dir: string;
  let cap: ChildProcess | undefined;

  before(() => {
    try {
      execFileSync('tshark', ['--version'], { stdio: 'ignore' });
    } catch {
      throw new Error('tshark is required for this test: apt-get install -y tshark (.ci/run installs it)');
    }
    dir = mkdtempSync(join(tmpdir(), 'storkit-ws-'));
  });

  after(() => {
    cap?.kill('SIGKILL');
    if (process.env.KEEP_CAPTURE) console.error('capture kept in', dir);
    else rmSync(dir, { recursive: true, force: true });
  });

  it('has no malformed PDUs or warnings, verifies every digest, and flags a bad one', async () => {
    const f = await startTarget({ in_capsule_data_size: 4096, io_unit_size: 16384 }, { blocks: 4096 });
    const bad = await startTarget({}, { port: await freePort() });
    const file = join(dir, 'nvme-tcp.pcapng');
    cap = spawn('tshark', ['-i', 'lo', '-f', `tcp port ${f.port} or tcp port ${bad.port}`, '-w', file], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    cap.stderr!.on('data', (d) => {
      err += d;
    });
    await pollUntil(
      () => {},
      () => err.includes('Capturing on') || cap!.exitCode !== null,
      15000,
    );
    expect(err, err).to.include('Capturing on');
    // tshark says "Capturing on" before dumpcap really captures: probe the other port with bare
    // TCP connections until packets show up in the file, so the sessions below are captured whole.
    const empty = existsSync(file) ? statSync(file).size : 0;
    for (let i = 0; !(existsSync(file) && statSync(file).size > empty + 200); i++) {
      if (i > 300) throw new Error('tshark captured nothing on lo');
      net.connect({ host: '127.0.0.1', port: bad.port }).on('connect', function (this: net.Socket) {
        this.destroy();
      });
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 200));
    try {
      await session(f.trid, false);
      await session(f.trid, true);
      expect(await discover(f.trid, { hdgst: true })).to.have.length(2);
      await badDigestSession(bad.port);
      await new Promise((r) => setTimeout(r, 500));
    } finally {
      cap.kill('SIGINT');
      await new Promise((r) => cap!.once('exit', r));
      cap = undefined;
      await f.tgt.close();
      await bad.tgt.close();
    }
    // One decode-as rule per run: with two `-d tcp.port==` rules tshark 3.6/4.0 drops the first
    // for some streams, so each port is decoded in its own pass.
    const decodeFor = (port: number) => [
      '-r',
      file,
      '-d',
      `tcp.port==${port},nvme-tcp`,
      '-o',
      'nvme-tcp.check_hdgst:TRUE',
      '-o',
      'nvme-tcp.check_ddgst:TRUE',
    ];
    const decode = decodeFor(f.port);
    const flagged = (port: number) =>
      tshark([
        ...decodeFor(port),
        '-Y',
        `tcp.port==${port} && (${PROBLEMS})`,
        '-T',
        'fields',
        '-e',
        'frame.number',
      ])
        .split('\n')
        .filter(Boolean);
    const bad1 = flagged(f.port);
    const why = bad1.length ? tshark([...decode, '-Y', `frame.number==${bad1[0]}`, '-V']) : '';
    expect(bad1, `frames Wireshark flags in the good sessions:\n${why}`).to.deep.equal([]);
    expect(flagged(bad.port).length, 'the bad header digest is flagged').to.be.greaterThan(0);

    // The dissector really decoded NVMe/TCP: count PDUs by type in the good sessions.
    const types = tshark([
      ...decode,
      '-Y',
      `tcp.port==${f.port} && nvme-tcp`,
      '-T',
      'fields',
      '-e',
      'nvme-tcp.type',
    ])
      .split(/[\n,]/)
      .filter(Boolean)
      .map(Number);
    const count = (t: number) => types.filter((x) => x === t).length;
    expect(count(PduType.ICReq), types.join(' ')).to.equal(5); // two sessions (admin + I/O queue) and a discovery
    expect(count(PduType.ICResp)).to.equal(count(PduType.ICReq));
    expect(count(PduType.CapsuleCmd)).to.be.greaterThan(20);
    expect(count(PduType.CapsuleResp)).to.be.greaterThan(15);
    expect(count(PduType.R2T)).to.equal(2);
    expect(count(PduType.H2CData)).to.equal(8); // 64 KiB in 16 KiB PDUs, twice
    expect(count(PduType.C2HData)).to.be.greaterThan(8);
    // Digest verdicts (1 = good, 0 = bad): many checked, all good (bad ones are in PROBLEMS above).
    const verdicts = tshark([
      ...decode,
      '-Y',
      `tcp.port==${f.port}`,
      '-T',
      'fields',
      '-e',
      'nvme-tcp.hdgst.status',
      '-e',
      'nvme-tcp.ddgst.status',
    ])
      .split(/[\n\t,]/)
      .filter(Boolean);
    expect(verdicts.length).to.be.greaterThan(20);
    expect(verdicts.every((v) => v === '1')).to.equal(true);
  });
});
