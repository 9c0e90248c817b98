// What `storkit tgt --default-config` (and `npm start`) serves.
import type { SpdkConfig } from './config.js';

/**
 * The built-in default the main job runs: RAM-backed, no hardware needed. A 256 MiB malloc bdev
 * (512-byte blocks) over NVMe/TCP (127.0.0.1:4420), iSCSI (127.0.0.1:3260) and vhost-user-blk
 * (vhost.0).
 */
export const DEFAULT_CONFIG: SpdkConfig = {
  subsystems: [
    {
      subsystem: 'bdev',
      config: [
        { method: 'bdev_malloc_create', params: { name: 'Malloc0', num_blocks: 524288, block_size: 512 } },
      ],
    },
    {
      subsystem: 'nvmf',
      config: [
        { method: 'nvmf_create_transport', params: { trtype: 'TCP', max_queue_depth: 128 } },
        {
          method: 'nvmf_create_subsystem',
          params: {
            nqn: 'nqn.2016-06.io.storkit:cnode1',
            allow_any_host: true,
            serial_number: 'STORKIT00000001',
          },
        },
        {
          method: 'nvmf_subsystem_add_ns',
          params: { nqn: 'nqn.2016-06.io.storkit:cnode1', namespace: { nsid: 1, bdev_name: 'Malloc0' } },
        },
        {
          method: 'nvmf_subsystem_add_listener',
          params: {
            nqn: 'nqn.2016-06.io.storkit:cnode1',
            listen_address: { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: '4420' },
          },
        },
      ],
    },
    {
      subsystem: 'iscsi',
      config: [
        {
          method: 'iscsi_set_options',
          params: { node_base: 'iqn.2016-06.io.storkit', max_queue_depth: 128 },
        },
        {
          method: 'iscsi_create_portal_group',
          params: { tag: 1, portals: [{ host: '127.0.0.1', port: '3260' }] },
        },
        {
          method: 'iscsi_create_initiator_group',
          params: { tag: 1, initiators: ['ANY'], netmasks: ['ANY'] },
        },
        {
          method: 'iscsi_create_target_node',
          params: {
            name: 'disk1',
            pg_ig_maps: [{ pg_tag: 1, ig_tag: 1 }],
            luns: [{ bdev_name: 'Malloc0', lun_id: 0 }],
            queue_depth: 128,
            disable_chap: true,
          },
        },
      ],
    },
    {
      subsystem: 'vhost_blk',
      config: [{ method: 'vhost_create_blk_controller', params: { ctrlr: 'vhost.0', dev_name: 'Malloc0' } }],
    },
  ],
};
