import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};
const [major, minor, patch] = pkg.version.split('.').map((x) => Number.parseInt(x, 10));

/** storkit's version in spdk_get_version's shape. */
export const VERSION = {
  version: `storkit v${pkg.version}`,
  fields: { major, minor, patch, suffix: '', commit: '' },
};
