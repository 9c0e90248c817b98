// hello_blob's steps, each in the callback of the one before (the blobstore's API is SPDK's:
// callbacks on the thread that asked): a RAM disk, a blobstore on it, one blob.
import { type BdevDesc, bdevClose, bdevOpenExt } from '@storkit/bdev';
import { bdevMallocCreate, bdevMallocDelete } from '@storkit/bdev/modules';
import { type Blob, type BlobError, Blobstore, blobReadv, blobWritev } from '@storkit/blob';
import { appReport, appStop } from '@storkit/reactor';

const say = (step: string, extra: Record<string, unknown> = {}) => appReport({ step, ...extra });

/** Runs once, on the app thread of reactor 0 (the blobstore's metadata thread). */
export default function helloBlob(): void {
  bdevMallocCreate({ name: 'Malloc0', num_blocks: 16384, block_size: 512 });
  const desc = bdevOpenExt('Malloc0', true, () => {});
  Blobstore.init(desc, {}, (err, bs) => {
    if (err !== null || bs === null) return fail(desc, null, err);
    say('init', { clusterSize: bs.clusterSize, freeClusters: bs.freeClusters });
    bs.createBlob({}, (err2, id) => {
      if (err2 !== null) return fail(desc, bs, err2);
      say('create', { id: `0x${id.toString(16)}` });
      bs.openBlob(id, (err3, blob) => {
        if (err3 !== null || blob === null) return fail(desc, bs, err3);
        const free = bs.freeClusters;
        bs.resizeBlob(blob, free, (err4) => {
          if (err4 !== null) return fail(desc, bs, err4);
          say('resize', { clusters: blob.numClusters, freeClusters: bs.freeClusters });
          writeAndRead(desc, bs, blob);
        });
      });
    });
  });
}

function writeAndRead(desc: BdevDesc, bs: Blobstore, blob: Blob): void {
  const ch = bs.view.getChannel();
  const view = bs.viewOf(blob);
  const blocks = 4096 / bs.view.blockSize;
  const out = new Uint8Array(4096).fill(0x5a);
  const back = new Uint8Array(4096);
  blobWritev(
    view,
    ch,
    [out],
    0,
    blocks,
    (st) => {
      if (st !== 0) return fail(desc, bs, null, `write failed: ${st}`);
      say('write');
      blobReadv(
        view,
        ch,
        [back],
        0,
        blocks,
        (st2) => {
          ch.put();
          if (st2 !== 0) return fail(desc, bs, null, `read failed: ${st2}`);
          const match = back.every((b, i) => b === out[i]);
          say('read', { match });
          bs.closeBlob(blob, (err) => {
            if (err !== null) return fail(desc, bs, err);
            bs.deleteBlob(blob.id, (err2) => {
              if (err2 !== null) return fail(desc, bs, err2);
              say('delete', { freeClusters: bs.freeClusters });
              bs.unload((err3) => {
                if (err3 !== null) return fail(desc, null, err3);
                say('unload');
                finish(desc, match ? 0 : 1);
              });
            });
          });
        },
        null,
      );
    },
    null,
  );
}

function fail(desc: BdevDesc, bs: Blobstore | null, err: BlobError | null, msg?: string): void {
  say('error', { message: err?.message ?? msg });
  if (bs !== null) bs.unload(() => finish(desc, 1));
  else finish(desc, 1);
}

function finish(desc: BdevDesc, rc: number): void {
  bdevClose(desc);
  bdevMallocDelete({ name: 'Malloc0' }, () => appStop(rc));
}
