// A standalone NVMe/TCP target for benchmarks and manual runs: one RAM namespace (malloc-bdev
// stand-in) on one listener, pinned to one CPU. Talks to a parent over IPC: 'cpu' → CPU seconds used.
//   node target-process.js PORT CPU MIB [BLOCK_SIZE]

import { RamBackend } from '@storkit/block/testing';
import { pinThread } from '@storkit/native';
import { NvmfTarget } from '../src/target.js';

const [port, cpu, mib, bs] = process.argv.slice(2).map(Number);
pinThread(cpu);
const tgt = new NvmfTarget();
tgt.nvmf_create_transport({ trtype: 'TCP', max_queue_depth: 128, in_capsule_data_size: 4096 });
const blockSize = bs || 4096;
tgt.registerBackend(new RamBackend({ name: 'Malloc0', blockSize, numBlocks: (mib << 20) / blockSize }));
const nqn = 'nqn.2016-06.io.spdk:cnode1';
tgt.nvmf_create_subsystem({ nqn, allow_any_host: true, serial_number: 'SPDK00000000000001' });
tgt.nvmf_subsystem_add_ns({ nqn, namespace: { nsid: 1, bdev_name: 'Malloc0' } });
const listen_address = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(port) };
await tgt.nvmf_subsystem_add_listener({ nqn, listen_address });
await tgt.nvmf_subsystem_add_listener({ nqn: 'nqn.2014-08.org.nvmexpress.discovery', listen_address });
process.on('message', (m) => {
  if (m === 'cpu') {
    const u = process.cpuUsage();
    process.send?.({ cpu: (u.user + u.system) / 1e6 });
  } else if (m === 'stop') {
    void tgt.close().then(() => process.exit(0));
  }
});
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.on(sig, () => void tgt.close().then(() => process.exit(0)));
process.send?.('ready');
if (!process.send) console.log(`target listening on 127.0.0.1:${port} (subnqn ${nqn}), pinned to CPU ${cpu}`);
