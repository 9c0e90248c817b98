// Where the independent peers live: `<repo root>/../shared/peers` (the checkout's sibling, in CI
// too). A missing peer fails the test that needs it, loudly; nothing is skipped.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** `<repo root>/../shared/peers`, from this file's place in packages/app/dist/test. */
export const PEERS = fileURLToPath(new URL('../../../../../shared/peers/', import.meta.url));

/** The path of one of SPDK v24.01's programs (spdk_nvme_identify, bdevperf, ...). */
export function spdkBin(name: string): string {
  const p = `${PEERS}spdk/bin/${name}`;
  if (!existsSync(p))
    throw new Error(`SPDK peer ${name} missing: expected ${p} (see ../shared/peers/README.md)`);
  return p;
}
