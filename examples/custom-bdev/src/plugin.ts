// The plugin: what `storkit tgt --plugin ./dist/src/plugin.js` imports (its default export), or what
// a service passes to `new Target({ plugins: [xor] })`.
import type { TargetPlugin } from '@storkit/app/plugin';

import { xorMethods } from './methods.js';

const xor: TargetPlugin = {
  name: 'xor',
  reactorModules: [new URL('./reactor.js', import.meta.url)],
  bdevMethods: [xorMethods],
};
export default xor;
