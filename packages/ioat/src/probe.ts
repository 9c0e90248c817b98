import { NativeError, openPciDevice, type PciDevice, PciSysfs } from '@storkit/native';

import { IoatChannel, type IoatChannelOptions } from './channel.js';
import { IOAT_DEVICE_IDS, IOAT_VENDOR_ID, isIoatDevice } from './spec.js';

export interface IoatProbeOptions {
  /** Attach only the functions this accepts (SPDK's probe_cb); default: every I/OAT function. */
  filter?: (address: string) => boolean;
  /** Where to look: the functions bound to vfio-pci or uio_pci_generic under this sysfs (default /sys). */
  sysfs?: PciSysfs;
  /** Functions already open (device models, or ones opened elsewhere) to consider instead of sysfs. */
  devices?: readonly PciDevice[];
  channel?: IoatChannelOptions;
}

export interface IoatProbeResult {
  channels: IoatChannel[];
  /** Functions that matched but could not be opened or started, and why. */
  failed: { address: string; error: Error }[];
}

/** The vendor:device table SPDK probes I/OAT by. */
export const IOAT_PCI_IDS = IOAT_DEVICE_IDS.map((device) => ({ vendor: IOAT_VENDOR_ID, device }));

/**
 * Find the I/OAT functions by PCI ID (the list SPDK binds), open and start each (SPDK's
 * spdk_ioat_probe). A function that fails to open or start is reported and does not stop the
 * others. Functions found through sysfs are opened here and closed again by `detach()`.
 */
export async function ioatProbe(opts: IoatProbeOptions = {}): Promise<IoatProbeResult> {
  const out: IoatProbeResult = { channels: [], failed: [] };
  const accept = opts.filter ?? (() => true);
  const candidates: (() => PciDevice)[] = [];
  const addresses: string[] = [];
  if (opts.devices !== undefined) {
    for (const d of opts.devices) {
      if (!isIoatDevice(d.vendor, d.device) || !accept(d.address)) continue;
      candidates.push(() => d);
      addresses.push(d.address);
    }
  } else {
    const sysfs = opts.sysfs ?? new PciSysfs();
    for (const f of sysfs.probe({ ids: IOAT_PCI_IDS })) {
      if (!accept(f.address)) continue;
      candidates.push(() => openPciDevice(f.address, { sysfs, what: 'an I/OAT DMA channel' }));
      addresses.push(f.address);
    }
  }
  for (let i = 0; i < candidates.length; i++) {
    let dev: PciDevice | null = null;
    try {
      dev = candidates[i]();
      out.channels.push(await IoatChannel.attach(dev, opts.channel));
    } catch (e) {
      if (dev !== null && opts.devices === undefined) dev.close();
      out.failed.push({
        address: addresses[i],
        error: e instanceof Error ? e : new NativeError(String(e), 'EIO'),
      });
    }
  }
  return out;
}
