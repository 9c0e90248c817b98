import { RamBackend } from '@storkit/block/testing';
import { IscsiServer, IscsiTarget, type TargetNodeParams } from '../src/index.js';

export interface Served {
  target: IscsiTarget;
  server: IscsiServer;
  ram: RamBackend;
  port: number;
  /** LUN 1: a small write-protected LUN (for the ReadOnly family). */
  roUrl: string;
  iqn: string;
  url: string;
  close(): Promise<void>;
}

/** A target on 127.0.0.1 (a free port) with one RAM LUN, as SPDK's JSON config would set it up. */
export async function serveRamLun(
  blockSize: number,
  bytes: number,
  node: Partial<TargetNodeParams> = {},
): Promise<Served> {
  const ram = new RamBackend({ name: 'Malloc0', blockSize, numBlocks: bytes / blockSize });
  const ro = new RamBackend({ name: 'Ro0', blockSize, numBlocks: 2048, readOnly: true });
  const bdevs = new Map([
    ['Malloc0', ram],
    ['Ro0', ro],
  ]);
  const target = new IscsiTarget((n) => bdevs.get(n), { max_queue_depth: 128 });
  target.createPortalGroup({ tag: 1, portals: [{ host: '127.0.0.1', port: '0' }] });
  target.createInitiatorGroup({ tag: 2, initiators: ['ANY'], netmasks: ['127.0.0.1/8'] });
  const n = target.createTargetNode({
    name: 'disk1',
    alias_name: 'Data Disk1',
    pg_ig_maps: [{ pg_tag: 1, ig_tag: 2 }],
    luns: [
      { bdev_name: 'Malloc0', lun_id: 0 },
      { bdev_name: 'Ro0', lun_id: 1 },
    ],
    queue_depth: 64,
    ...node,
  });
  const server = new IscsiServer(target);
  const [p] = await server.listen(1);
  return {
    target,
    server,
    ram,
    port: p.port,
    iqn: n.name,
    url: `iscsi://127.0.0.1:${p.port}/${n.name}/0`,
    roUrl: `iscsi://127.0.0.1:${p.port}/${n.name}/1`,
    close: () => server.close(),
  };
}
