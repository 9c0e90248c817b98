export { LatencyHistogram } from './histogram.js';
export { type PerfOptions, type PerfResult, runPerf, type Workload } from './perf.js';
