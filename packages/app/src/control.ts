import { tickRate, ticks } from '@storkit/native';
import type { App, Control } from '@storkit/reactor';

/** How main-thread subsystems reach the reactors: declared control operations by reactor index. */
export interface ReactorControl {
  readonly count: number;
  /** The CPU of each reactor (empty until they run). */
  readonly cores?: readonly number[];
  readonly tickRate: number;
  ticks(): number;
  /** Run a control operation on reactor i; rejects with an error carrying its errno-style code. */
  call<P, R>(i: number, op: Control<P, R>, params: NoInfer<P>): Promise<R>;
}

/** A ReactorControl over the app once it runs; calls before that fail with EBUSY. */
export class AppControl implements ReactorControl {
  app: App | null = null;
  readonly tickRate = tickRate;

  get count(): number {
    return this.app?.reactors.length ?? 0;
  }

  get cores(): readonly number[] {
    return this.app?.cores ?? [];
  }

  ticks(): number {
    return ticks();
  }

  call<P, R>(i: number, op: Control<P, R>, params: NoInfer<P>): Promise<R> {
    if (this.app === null)
      return Promise.reject(
        Object.assign(new Error('reactors are not running yet (framework_start_init)'), { code: 'EBUSY' }),
      );
    return this.app.control(i, op, params);
  }
}
