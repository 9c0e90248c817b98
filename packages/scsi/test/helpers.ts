import { RamBackend } from '@storkit/block/testing';
import { type LogicalUnit, Nexus, ScsiDevice, ScsiTask } from '../src/index.js';

export interface Done {
  status: number;
  key: number;
  asc: number;
  data: Uint8Array;
  transferLength: number;
}

/** Runs one CDB on `dev` as `nexus` and resolves with status, sense and a copy of data-in. */
export function run(
  dev: ScsiDevice,
  nexus: Nexus,
  cdb: number[],
  dataOut: Uint8Array | null = null,
  lun = 0,
): Promise<Done> {
  return new Promise((resolve) => {
    const t = new ScsiTask();
    t.cdb = Uint8Array.from([...cdb, ...new Array(Math.max(0, 16 - cdb.length)).fill(0)]);
    t.nexus = nexus;
    t.lun = lun;
    if (dataOut) {
      t.ensureDataOut(dataOut.length).set(dataOut);
      t.dataOutLength = dataOut.length;
    }
    let calls = 0;
    t.onDone = (x) => {
      calls++;
      if (calls > 1) throw new Error('onDone ran twice');
      resolve({
        status: x.status,
        key: x.senseLength ? x.sense[2] & 0x0f : 0,
        asc: x.senseLength ? (x.sense[12] << 8) | x.sense[13] : 0,
        data: x.dataIn.slice(0, x.dataInLength),
        transferLength: x.transferLength,
      });
    };
    dev.execute(t);
  });
}

export function makeDevice(
  blockSize = 512,
  numBlocks = 2048,
): { dev: ScsiDevice; ram: RamBackend; lun: LogicalUnit } {
  const ram = new RamBackend({ name: 'Malloc0', blockSize, numBlocks });
  const dev = new ScsiDevice('iqn.2016-06.io.spdk:test');
  const lun = dev.addLun(0, ram);
  return { dev, ram, lun };
}

export function nexus(n = 1): Nexus {
  return new Nexus(
    `iqn.test:init${n}`,
    `iqn.test:init${n},i,0x00023d00000${n}`,
    'iqn.2016-06.io.spdk:test',
    1,
  );
}

export function be32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}

export function rw10(op: number, lba: number, count: number, flags = 0): number[] {
  return [
    op,
    flags,
    lba >>> 24,
    (lba >>> 16) & 0xff,
    (lba >>> 8) & 0xff,
    lba & 0xff,
    0,
    count >>> 8,
    count & 0xff,
    0,
  ];
}

export function rw16(op: number, lba: number, count: number, flags = 0): number[] {
  const hi = Math.floor(lba / 0x100000000);
  return [
    op,
    flags,
    hi >>> 24,
    (hi >>> 16) & 0xff,
    (hi >>> 8) & 0xff,
    hi & 0xff,
    lba >>> 24,
    (lba >>> 16) & 0xff,
    (lba >>> 8) & 0xff,
    lba & 0xff,
    count >>> 24,
    (count >>> 16) & 0xff,
    (count >>> 8) & 0xff,
    count & 0xff,
    0,
    0,
  ];
}
