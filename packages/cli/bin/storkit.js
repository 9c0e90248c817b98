#!/usr/bin/env node
// The `storkit` command. npm links a package's bin when it installs it, which in this repository
// is before `prepare` builds dist/: the link must point at a file that exists then. This one does,
// and loads the built command.
try {
  await import('../dist/src/main.js');
} catch (e) {
  if (e?.code !== 'ERR_MODULE_NOT_FOUND' || !String(e.message).includes('dist/src/main.js')) throw e;
  process.stderr.write('storkit: not built yet; run `npm run build` (npm ci does it) in the checkout\n');
  process.exitCode = 1;
}
