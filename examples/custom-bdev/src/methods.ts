// The xor module's RPC methods, declared once: the plugin (main thread) serves them, the reactor
// module defines their work. SPDK's conventions: bdev_<module>_create / _delete, snake_case params.
import { declareBdevMethods } from '@storkit/app/plugin';
import { int, obj, opt, req, str } from '@storkit/rpc';

export const xorMethods = declareBdevMethods({
  create: 'bdev_xor_create',
  delete: 'bdev_xor_delete',
  description: 'Create a bdev that stores every byte XORed with a key on a base bdev',
  positional: ['base_bdev_name', 'name', 'key'],
  params: obj({
    name: req(str({ minLength: 1, description: 'name of the xor bdev' })),
    base_bdev_name: req(str({ minLength: 1, description: 'the bdev it stores on' })),
    key: req(int({ min: 0, max: 255, description: 'the byte every stored byte is XORed with' })),
    uuid: opt(str({ pattern: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i })),
  }),
});
