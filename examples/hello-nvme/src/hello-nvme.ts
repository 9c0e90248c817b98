// SPDK's hello_world for storkit's NVMe driver (@storkit/nvme), the driver alone: attach to a
// controller by its transport ID (NVMe/TCP or a local PCIe controller), identify it and its
// namespaces, then on each namespace write "Hello world!" to LBA 0 through an I/O queue pair, read it
// back, print it, and detach. The same code runs over both transports: only the transport ID differs.
import { DmaRegion } from '@storkit/native';
import { type HostQpair, NvmeController } from '@storkit/nvme';

export const HELLO = 'Hello world!\n';

/** Submit one command and poll the queue pair until it completes; resolve with its NVMe status. */
function roundTrip(
  qp: HostQpair,
  submit: (done: (ctx: null, status: number) => void) => boolean,
): Promise<number> {
  return new Promise((resolve, reject) => {
    if (!submit((_ctx, status) => resolve(status))) return reject(new Error('the queue is full'));
    // A polled driver: completions arrive only when the owner polls. SPDK's hello_world spins on
    // spdk_nvme_qpair_process_completions; here each poll also gives Node's event loop a turn.
    const poll = (): void => {
      qp.processCompletions();
      if (qp.outstanding > 0) setImmediate(poll);
    };
    setImmediate(poll);
  });
}

/** Run hello_world against `trid`; `log` gets each line. Resolves with the namespaces it greeted. */
export async function helloNvme(trid: string, log: (line: string) => void): Promise<number> {
  log(`Attaching to ${trid}`);
  const ctrlr = await NvmeController.connect(trid);
  // Buffers in DMA memory: pinned pages a PCIe controller can reach (NVMe/TCP takes any buffer).
  const region = DmaRegion.create(64 * 1024);
  let greeted = 0;
  try {
    const c = ctrlr.cdata;
    log(
      `Attached: ${c.modelNumber.trim()} (serial ${c.serialNumber.trim()}, firmware ${c.firmwareRevision.trim()}, NVMe ${ctrlr.version})`,
    );
    const qp = await ctrlr.allocIoQpair({ depth: 32 });
    try {
      for (const nsid of await ctrlr.activeNamespaces()) {
        const ns = await ctrlr.identifyNamespace(nsid);
        log(
          `  Namespace ID: ${nsid} size: ${(ns.nsze * ns.blockSize) / 2 ** 20} MiB (${ns.nsze} blocks of ${ns.blockSize} bytes)`,
        );
        // One block: the message, zero-padded (SPDK writes a whole sector too).
        const out = region.bytes.subarray(0, ns.blockSize).fill(0);
        out.set(new TextEncoder().encode(HELLO));
        let status = await roundTrip(qp, (done) => qp.write(nsid, 0, 1, out, done, null));
        if (status !== 0)
          throw new Error(`write to namespace ${nsid} failed: status 0x${status.toString(16)}`);
        const back = region.bytes.subarray(ns.blockSize, 2 * ns.blockSize).fill(0);
        status = await roundTrip(qp, (done) => qp.read(nsid, 0, 1, back, done, null));
        if (status !== 0)
          throw new Error(`read from namespace ${nsid} failed: status 0x${status.toString(16)}`);
        log(`  ${new TextDecoder().decode(back.subarray(0, back.indexOf(0))).trimEnd()}`);
        greeted++;
      }
    } finally {
      await ctrlr.freeIoQpair(qp);
    }
  } finally {
    region.close();
    await ctrlr.close();
  }
  log('Detached');
  return greeted;
}
