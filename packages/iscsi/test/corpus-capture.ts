// Regenerates the fuzz corpora that come from a foreign initiator: libiscsi (Debian's libiscsi-bin)
// logs in and runs its conformance suite against a target served from this process, which records
// what libiscsi sent: each connection's login-phase byte stream (the iSCSI login fuzzer's seeds,
// test/corpus/login-streams.json) and every distinct CDB (the SCSI CDB fuzzer's seeds,
// ../scsi/test/corpus/cdbs.txt). Not a test; run by hand when libiscsi's behaviour is worth
// re-recording:
//   npx tsc -b && node packages/iscsi/dist/test/corpus-capture.js
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { ScsiDevice } from '@storkit/scsi';

import { Connection } from '../src/connection.js';
import { PduParser, pad4 } from '../src/pdu.js';
import { runTool } from '../src/testing.js';
import { serveRamLun } from './fixtures.js';

const OUT_LOGIN = fileURLToPath(new URL('../../test/corpus/login-streams.json', import.meta.url));
const OUT_CDB = fileURLToPath(new URL('../../../scsi/test/corpus/cdbs.txt', import.meta.url));

const streams = new Map<Connection, number[]>();
const origReceive = Connection.prototype.receive;
Connection.prototype.receive = function (this: Connection, chunk: Uint8Array) {
  const s = streams.get(this) ?? [];
  if (s.length < 64 << 10) s.push(...chunk.subarray(0, (64 << 10) - s.length));
  streams.set(this, s);
  origReceive.call(this, chunk);
};
const cdbs = new Set<string>();
const origExecute = ScsiDevice.prototype.execute;
ScsiDevice.prototype.execute = function (this: ScsiDevice, t) {
  cdbs.add(Buffer.from(t.cdb).toString('hex'));
  origExecute.call(this, t);
};

/** The login (and discovery text) PDUs at the head of a recorded stream, as bytes. */
function loginPhase(bytes: number[]): Uint8Array {
  const all = Uint8Array.from(bytes);
  const p = new PduParser({ maxDataSegment: 1 << 24, headerDigest: false, dataDigest: false });
  let end = 0;
  let done = false;
  try {
    p.push(all, (pdu) => {
      if (done) return;
      // The whole stream is one chunk, so each PDU is parsed in place: its offsets are the stream's.
      if (pdu.opcode === 0x03 || pdu.opcode === 0x04) end = pdu.dataOff + pad4(pdu.dataLength);
      else done = true;
    });
  } catch {
    // a digest-negotiated stream: only its login PDUs (before digests start) are parsed
  }
  return all.subarray(0, end);
}

const s = await serveRamLun(512, 16 << 20);
s.target.createAuthGroup({
  tag: 1,
  secrets: [{ user: 'alice', secret: 'alice-secret-1', muser: 'target1', msecret: 'target-secret-1' }],
});
const chap = s.target.createTargetNode({
  name: 'chap',
  alias_name: 'CHAP disk',
  pg_ig_maps: [{ pg_tag: 1, ig_tag: 2 }],
  luns: [{ bdev_name: 'Malloc0', lun_id: 0 }],
  queue_depth: 64,
  require_chap: true,
  mutual_chap: true,
  chap_group: 1,
});
const tools: [string, string[]][] = [
  ['iscsi-ls', [`iscsi://127.0.0.1:${s.port}`]],
  ['iscsi-ls', ['-s', `iscsi://127.0.0.1:${s.port}`]],
  ['iscsi-inq', [s.url]],
  ['iscsi-inq', ['-e', '1', '-c', '0x83', s.url]],
  ['iscsi-inq', [`${s.url}?header_digest=crc32c`]],
  ['iscsi-readcapacity16', [s.url]],
  [
    'iscsi-inq',
    [
      `iscsi://alice%alice-secret-1@127.0.0.1:${s.port}/${chap.name}/0?target_user=target1&target_password=target-secret-1`,
    ],
  ],
  ['iscsi-inq', [`iscsi://alice%alice-secret-1@127.0.0.1:${s.port}/${chap.name}/0`]],
  ['iscsi-test-cu', ['--dataloss', '--test=ALL', s.url, s.url]],
];
for (const [cmd, args] of tools) {
  const r = await runTool(cmd, args, 900_000);
  console.log(`${cmd} ${args.join(' ')}: exit ${r.code}`);
}
await s.close();

// Logins differ in ISID and CHAP values every time: keep one stream per distinct key set.
const seen = new Set<string>();
const logins: { keys: string; hex: string }[] = [];
for (const bytes of streams.values()) {
  const l = loginPhase(bytes);
  if (l.length === 0) continue;
  const text = Buffer.from(l).toString('latin1');
  const keys = [...text.matchAll(/([A-Za-z_]+)=/g)].map((m) => m[1]).join(',');
  if (seen.has(keys)) continue;
  seen.add(keys);
  logins.push({ keys, hex: Buffer.from(l).toString('hex') });
}
writeFileSync(
  OUT_LOGIN,
  `${JSON.stringify({ source: 'libiscsi 1.19 (Debian libiscsi-bin), see test/corpus-capture.ts', logins }, null, 1)}\n`,
);
// Reads and writes at thousands of LBAs say nothing new after a few: keep up to 12 CDBs per
// (opcode, service action), spread evenly over that group's sorted list.
const groups = new Map<string, string[]>();
for (const c of [...cdbs].sort()) {
  const op = c.slice(0, 2);
  const key = ['7f', '9e', '9f', 'a3', 'a4', '5e', '5f', '83', '84'].includes(op) ? c.slice(0, 4) : op;
  groups.set(key, [...(groups.get(key) ?? []), c]);
}
const lines: string[] = [];
for (const g of groups.values()) {
  const n = Math.min(12, g.length);
  for (let i = 0; i < n; i++) lines.push(g[Math.floor((i * g.length) / n)]);
}
lines.sort();
writeFileSync(
  OUT_CDB,
  `# Every distinct CDB libiscsi 1.19 (iscsi-test-cu --test=ALL, iscsi-inq, ...) sent; one hex CDB per line.\n# Recorded by packages/iscsi/test/corpus-capture.ts.\n${lines.join('\n')}\n`,
);
console.log(
  `${logins.length} login streams (${logins.map((l) => l.keys).join(' | ')}), ${lines.length} of ${cdbs.size} CDBs`,
);
