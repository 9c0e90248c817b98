// @storkit/bench: what a benchmark suite imports. `micro` for tinybench cases (per operation),
// `report` for whole-run figures (IOPS, messages/s); both feed `npm run bench`'s one summary.
export { type MicroCase, type MicroOptions, micro } from './micro.js';
export { type BenchRecord, type Figure, quick, report, runSeconds } from './record.js';
export type { BenchDoc } from './summary.js';
