// A blob's cluster map in shared memory: one u32 per blob cluster (the blobstore cluster index, 0
// = unallocated), in a DmaRegion every reactor views by handle. The metadata thread is the only
// writer and publishes an entry only once the metadata that maps it is on disk; I/O on any reactor
// reads it with plain loads (an x86 store becomes visible in program order; the publishing
// Atomics.store orders it after the metadata write's completion).
import { DmaRegion } from '@storkit/native';

export class ClusterMap {
  readonly region: DmaRegion;
  readonly map: Uint32Array;

  private constructor(region: DmaRegion) {
    this.region = region;
    this.map = new Uint32Array(region.buffer, 0, region.size >>> 2);
  }

  /** A new, zeroed map for at least `clusters` entries. */
  static create(clusters: number): ClusterMap {
    const bytes = Math.max(4096, Math.ceil((clusters * 4) / 4096) * 4096);
    return new ClusterMap(DmaRegion.create(bytes, { hugepages: 'never' }));
  }

  /** This worker's view of the map behind `handle`. */
  static attach(handle: number): ClusterMap {
    return new ClusterMap(DmaRegion.attach(handle));
  }

  get handle(): number {
    return this.region.handle;
  }

  get capacity(): number {
    return this.map.length;
  }

  /** Publish entry `i` (metadata thread only). */
  publish(i: number, cluster: number): void {
    Atomics.store(this.map, i, cluster);
  }

  close(): void {
    this.region.close();
  }
}
