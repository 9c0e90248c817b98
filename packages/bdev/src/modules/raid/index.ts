// bdev_raid (SPDK's module/bdev/raid): raid0 (striping), raid1 (mirroring, degraded operation,
// failing a base on a write error, rebuild onto a new base) and concat.
export { type RaidLevel, raidModule } from './raid.js';
export {
  bdevRaidAddBaseBdev,
  bdevRaidCreate,
  bdevRaidDelete,
  bdevRaidGetBdevs,
  bdevRaidRemoveBaseBdev,
  type RaidCreateParams,
} from './rpc.js';
