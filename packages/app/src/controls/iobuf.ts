// The iobuf subsystem's control operations, declared once: iobuf-subsystem.ts (main thread) calls
// them, reactor-modules/iobuf.ts defines them in every reactor.
import type { IobufClassStats, IobufOptions } from '@storkit/block';
import { declareControl } from '@storkit/reactor';

export interface IobufStartParams {
  options: IobufOptions;
  /** Reactors sharing the counts: each reactor's pool holds 1 / reactors of them. */
  reactors: number;
}

export interface IobufModuleStats {
  module: string;
  small_pool: IobufClassStats;
  large_pool: IobufClassStats;
}

export const iobufStart = declareControl<IobufStartParams, true>('iobuf.start');
export const iobufStats = declareControl<undefined, IobufModuleStats[]>('iobuf.stats');
