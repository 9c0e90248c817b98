// Imported by every reactor of the target (the plugin's reactorModules): registers the xor bdev
// module there (importing xor-bdev.js does) and defines what its methods do on a reactor.
import { defineBdevMethods } from '@storkit/app/plugin';

import { xorMethods } from './methods.js';
import { bdevXorCreate, bdevXorDelete } from './xor-bdev.js';

defineBdevMethods(xorMethods, { create: bdevXorCreate, delete: bdevXorDelete });
