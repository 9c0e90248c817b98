// Run by the repository's `postinstall`: npm links the bins of a workspace only into the
// node_modules/.bin of packages that depend on it, never into the root's, so after `npm ci` in a
// checkout there would be no `storkit` for `npx storkit` or `npm exec storkit` to find. This makes
// node_modules/.bin/storkit point at bin/storkit.js, as npm would for an installed package.
import { chmodSync, mkdirSync, readlinkSync, symlinkSync, unlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const target = fileURLToPath(new URL('./storkit.js', import.meta.url));
const root = fileURLToPath(new URL('../../../', import.meta.url));
const binDir = join(root, 'node_modules', '.bin');
const link = join(binDir, 'storkit');
const to = relative(binDir, target);
mkdirSync(binDir, { recursive: true });
let current = null;
try {
  current = readlinkSync(link);
} catch {
  // no link yet
}
if (current !== to) {
  if (current !== null) unlinkSync(link);
  symlinkSync(to, link);
}
chmodSync(target, 0o755);
console.log(`storkit: ${relative(root, link)} -> ${to}`);
