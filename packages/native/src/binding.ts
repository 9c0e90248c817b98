// The one place that loads the napi addon. napi-rs's generated loader is CommonJS;
// everything else in storkit imports the typed wrappers from index.ts instead.
import { createRequire } from 'node:module';

import type * as Binding from '@storkit/native-binding';

const require = createRequire(import.meta.url);

export const binding: typeof Binding = require('@storkit/native-binding');
