// bdev_get_bdevs' view of a bdev (SPDK's field names), for the RPC layer.
import type { Bdev } from './bdev.js';
import { bdevGetQosLimits } from './control.js';
import { IoType } from './types.js';

/** One entry of bdev_get_bdevs. */
export function bdevInfoJson(b: Bdev): Record<string, unknown> {
  const s = (t: IoType) => b.ioTypeSupported(t) || (t === IoType.COMPARE && b.ioTypeSupported(IoType.READ));
  return {
    name: b.name,
    aliases: [...b.aliases],
    product_name: b.productName,
    block_size: b.blockSize,
    num_blocks: b.numBlocks,
    uuid: b.uuid,
    assigned_rate_limits: bdevGetQosLimits(b),
    claimed: b.claimedBy !== null,
    ...(b.claimedBy !== null ? { claim_type: 'exclusive_write' } : {}),
    zoned: false,
    write_cache: b.writeCache,
    optimal_io_boundary: b.optimalIoBoundary,
    supported_io_types: {
      read: s(IoType.READ),
      write: s(IoType.WRITE),
      unmap: s(IoType.UNMAP),
      write_zeroes: s(IoType.WRITE_ZEROES),
      flush: s(IoType.FLUSH),
      reset: s(IoType.RESET),
      compare: s(IoType.COMPARE),
      compare_and_write: b.ioTypeSupported(IoType.READ) && b.ioTypeSupported(IoType.WRITE),
      abort: b.ioTypeSupported(IoType.ABORT),
      nvme_admin: b.ioTypeSupported(IoType.NVME_ADMIN),
      nvme_io: b.ioTypeSupported(IoType.NVME_IO),
    },
    driver_specific: b.fn.dumpInfoJson?.() ?? {},
  };
}
