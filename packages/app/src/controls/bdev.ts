// The bdev layer's control operations, declared once: bdev-subsystem.ts (main thread) calls them,
// reactor-modules/bdev.ts defines them in every reactor. Params are the modules' own types.
import type {
  bdevInfoJson,
  bdevSetQosLimit,
  histogramSpdkJson,
  IoStatJson,
  setBdevOptions,
} from '@storkit/bdev';
import type * as m from '@storkit/bdev/modules';
import { declareControl } from '@storkit/reactor';

type Arg<F extends (...a: never[]) => unknown> = Parameters<F>[0];

/** What a create answers: the bdev name(s), the params to replay on the other reactors, file info. */
export interface Created<P> {
  names: string[];
  replay: P;
  info?: { direct: boolean; fallback: string | null };
}

const create = <F extends (p: never) => unknown>(name: string) =>
  declareControl<Arg<F>, Created<Arg<F>>>(`bdev.${name}`);
const del = <F extends (...a: never[]) => unknown>(name: string) =>
  declareControl<Arg<F>, true>(`bdev.${name}`);

/** Creates: run on reactor 0, then with its `replay` on the others. */
export const bdevCreate = {
  bdev_malloc_create: create<typeof m.bdevMallocCreate>('malloc_create'),
  bdev_null_create: create<typeof m.bdevNullCreate>('null_create'),
  bdev_passthru_create: create<typeof m.bdevPassthruCreate>('passthru_create'),
  bdev_delay_create: create<typeof m.bdevDelayCreate>('delay_create'),
  bdev_error_create: create<typeof m.bdevErrorCreate>('error_create'),
  bdev_raid_create: create<typeof m.bdevRaidCreate>('raid_create'),
  bdev_split_create: create<typeof m.bdevSplitCreate>('split_create'),
  bdev_aio_create: create<typeof m.bdevAioCreate>('aio_create'),
  bdev_uring_create: create<typeof m.bdevUringCreate>('uring_create'),
};

/** Deletes: answer once the bdev is gone on that reactor. */
export const bdevDelete = {
  bdev_malloc_delete: del<typeof m.bdevMallocDelete>('malloc_delete'),
  bdev_null_delete: del<typeof m.bdevNullDelete>('null_delete'),
  bdev_passthru_delete: del<typeof m.bdevPassthruDelete>('passthru_delete'),
  bdev_delay_delete: del<typeof m.bdevDelayDelete>('delay_delete'),
  bdev_error_delete: del<typeof m.bdevErrorDelete>('error_delete'),
  bdev_raid_delete: del<typeof m.bdevRaidDelete>('raid_delete'),
  bdev_split_delete: del<typeof m.bdevSplitDelete>('split_delete'),
  bdev_aio_delete: del<typeof m.bdevAioDelete>('aio_delete'),
  bdev_uring_delete: del<typeof m.bdevUringDelete>('uring_delete'),
};

/** Updates applied the same way on every reactor; reactor 0's answer is the params to replay. */
export const bdevUpdate = {
  bdev_null_resize: declareControl<Arg<typeof m.bdevNullResize>, true>('bdev.null_resize'),
  bdev_delay_update_latency: declareControl<Arg<typeof m.bdevDelayUpdateLatency>, true>(
    'bdev.delay_update_latency',
  ),
  bdev_error_inject_error: declareControl<
    Arg<typeof m.bdevErrorInjectError>,
    ReturnType<typeof m.bdevErrorInjectError>
  >('bdev.error_inject_error'),
};

export type BdevInfo = ReturnType<typeof bdevInfoJson>;
export type QosReplay = ReturnType<typeof bdevSetQosLimit>;

export const bdevGetBdevs = declareControl<{ name?: string }, BdevInfo[]>('bdev.get_bdevs');
export const bdevIostat = declareControl<{ name?: string }, { name: string; stat: IoStatJson }[]>(
  'bdev.iostat',
);
/** Each open channel of one bdev, on every reactor (bdev_get_iostat per_channel). */
export const bdevChannelIostat = declareControl<{ name: string }, { threadId: number; stat: IoStatJson }[]>(
  'bdev.iostat_per_channel',
);
export const bdevGetHistogram = declareControl<{ name: string }, ReturnType<typeof histogramSpdkJson> | null>(
  'bdev.get_histogram',
);
export const bdevSetQos = declareControl<Parameters<typeof bdevSetQosLimit>[1], QosReplay>('bdev.set_qos');
export const bdevHistogram = declareControl<{ name: string; enable: boolean }, true>('bdev.histogram');
export const bdevSetOptions = declareControl<Arg<typeof setBdevOptions>, true>('bdev.set_options');
export const bdevExamineOp = declareControl<{ name: string }, true>('bdev.examine');
export const bdevRaidGetBdevs = declareControl<
  Arg<typeof m.bdevRaidGetBdevs>,
  ReturnType<typeof m.bdevRaidGetBdevs>
>('bdev.raid_get_bdevs');
/** On every reactor: answers once the base has left its slot there. */
export const bdevRaidRemoveBaseBdev = declareControl<Arg<typeof m.bdevRaidRemoveBaseBdev>, true>(
  'bdev.raid_remove_base_bdev',
);
/** On one reactor: answers once the rebuild started. */
export const bdevRaidAddBaseBdev = declareControl<Arg<typeof m.bdevRaidAddBaseBdev>, true>(
  'bdev.raid_add_base_bdev',
);
/** Answers once no examine is in progress on that reactor (spdk_bdev_wait_for_examine). */
export const bdevWaitExamine = declareControl<undefined, true>('bdev.wait_for_examine');
