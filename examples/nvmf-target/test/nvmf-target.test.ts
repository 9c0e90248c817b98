// The example as its README runs it (two reactors, on a free port), then the transport ID it prints,
// given to SPDK v24.01's own spdk_nvme_identify. The Linux kernel initiator runs in guest.test.ts.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import { expect } from 'chai';

import { freePort, MAIN, start } from './helpers.js';

/** SPDK's programs: `<repo root>/../shared/peers/spdk/bin` (../shared/peers/README.md). */
const IDENTIFY = fileURLToPath(
  new URL('../../../../../shared/peers/spdk/bin/spdk_nvme_identify', import.meta.url),
);

describe('examples/nvmf-target', function () {
  this.timeout(120_000);

  it("prints one poll group per reactor and a transport ID that SPDK's spdk_nvme_identify reaches", async () => {
    if (!existsSync(IDENTIFY)) throw new Error(`SPDK's spdk_nvme_identify missing: ${IDENTIFY}`);
    const port = await freePort();
    const { child, lines, exited } = await start(MAIN, ['-m', '0x3', '-p', String(port), '--mib', '64']);
    try {
      expect(lines[0]).to.equal(
        'nvmf-target: nqn.2016-06.io.storkit:cnode1, namespace 1 = Malloc0 (64 MiB, 512-byte blocks)',
      );
      expect(lines).to.include.members([
        '  core 0: poll group nvmf_tgt_poll_group_000',
        '  core 1: poll group nvmf_tgt_poll_group_001',
      ]);
      const line = lines.find((l) => l.trim().startsWith('spdk_nvme_identify -r '));
      const trid = /-r '([^']+)'/.exec(line ?? '')?.[1];
      expect(trid).to.equal(
        `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${port} subnqn:nqn.2016-06.io.storkit:cnode1`,
      );
      const out = execFileSync(IDENTIFY, ['-r', trid!], {
        encoding: 'utf8',
        timeout: 60_000,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      expect(out).to.match(/Serial Number:\s+STORKIT-EXAMPLE-01/);
      expect(out).to.match(/Model Number:\s+storkit nvmf-target example/);
      expect(out).to.match(/Namespace ID:1/);
      expect(out).to.match(/Size \(in LBAs\):\s+131072 /);
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).to.equal(0);
  });
});
