// The protocol engine alone, in memory: 4 KiB READ(10)s from a RAM LUN, 32 per receive() call,
// through PDU parsing, CmdSN ordering, SCSI execution and Data-In encoding. No sockets.
import { micro } from '@storkit/bench';
import { RamBackend } from '@storkit/block/testing';
import { BHS_LENGTH, encodePdu, encodeText, IscsiTarget } from '../src/index.js';

const BATCH = 32;
const ram = new RamBackend({ name: 'Malloc0', blockSize: 4096, numBlocks: 4096 });
const target = new IscsiTarget((n) => (n === 'Malloc0' ? ram : undefined), { nop_in_interval: 0 });
target.createPortalGroup({ tag: 1, portals: [{ host: '127.0.0.1', port: '3260' }] });
target.createInitiatorGroup({ tag: 2, initiators: ['ANY'], netmasks: ['ANY'] });
const node = target.createTargetNode({
  name: 'disk1',
  pg_ig_maps: [{ pg_tag: 1, ig_tag: 2 }],
  luns: [{ bdev_name: 'Malloc0', lun_id: 0 }],
  queue_depth: 64,
});

let pdusOut = 0;
let resolveBatch: (() => void) | null = null;
const conn = target.accept(
  {
    write: (_pdu, flushed) => {
      flushed();
      if (++pdusOut === BATCH && resolveBatch) resolveBatch();
    },
    close: () => {},
  },
  {
    portalGroupTag: 1,
    localAddress: '127.0.0.1',
    localPort: 3260,
    remoteAddress: '127.0.0.1',
    remotePort: 1,
  },
);

const opts = { headerDigest: false, dataDigest: false };
const login = new Uint8Array(BHS_LENGTH);
login[0] = 0x43;
login[1] = 0x87;
login[13] = 1;
const keys = encodeText([
  ['InitiatorName', 'iqn.bench:init'],
  ['TargetName', node.name],
]);
conn.receive(encodePdu(login, keys, 0, keys.length, opts));

let cmdSn = 0;
let itt = 1;
const batch = Buffer.alloc(BATCH * BHS_LENGTH);
function fillBatch(): void {
  for (let i = 0; i < BATCH; i++) {
    const o = i * BHS_LENGTH;
    batch.fill(0, o, o + BHS_LENGTH);
    batch[o] = 0x01;
    batch[o + 1] = 0xc1;
    batch.writeUInt32BE(itt++ >>> 0, o + 16);
    batch.writeUInt32BE(4096, o + 20);
    batch.writeUInt32BE(cmdSn++ >>> 0, o + 24);
    batch[o + 32] = 0x28;
    batch.writeUInt32BE((i * 97) % 4096, o + 34);
    batch[o + 40] = 1;
  }
}

await micro(
  'iSCSI engine in memory (RAM LUN, no sockets)',
  [
    {
      name: `engine: ${BATCH} x 4 KiB READ(10) per receive (per command)`,
      batch: BATCH,
      fn: async () => {
        fillBatch();
        pdusOut = 0;
        const done = new Promise<void>((r) => {
          resolveBatch = r;
        });
        conn.receive(batch);
        await done;
      },
    },
  ],
  { time: 2000, warmupTime: 300 },
);
