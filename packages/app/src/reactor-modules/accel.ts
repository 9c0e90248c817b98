// Imported by every reactor worker of the target app, before the modules that use accel (so its
// fini runs after theirs): the framework is started with the main thread's settings by
// 'accel.start' (the accel subsystem's start), counted by 'accel.stats', stopped at shutdown.
import {
  accelFinish,
  accelGetModuleInfo,
  accelGetOpcAssignments,
  accelInitialize,
  accelIoatSetDevices,
  accelLocalStats,
  accelSettingsInstall,
  accelStarted,
} from '@storkit/accel';
import { defineControl, defineSubsystem, getThread, type Thread } from '@storkit/reactor';

import { accelInfo, accelStart, accelStats, accelStop } from '../controls/accel.js';

let thread: Thread | null = null;

defineControl(accelStart, (p, done) => {
  accelSettingsInstall(p.settings);
  accelIoatSetDevices(p.ioatShares);
  thread = getThread();
  accelInitialize().then(
    () => done(null, true),
    (e: Error) => done(e),
  );
});

defineControl(accelStats, (_p, done) => done(null, accelLocalStats()));

defineControl(accelInfo, (_p, done) =>
  done(null, { assignments: accelGetOpcAssignments(), modules: accelGetModuleInfo() }),
);

defineControl(accelStop, (_p, done) => stop(() => done(null, true)));

/** Stop the framework on the thread it was started on (its io_device needs one). */
function stop(done: () => void): void {
  const t = thread;
  if (!accelStarted() || t === null || t.exited) {
    done();
    return;
  }
  t.sendMsg(() => accelFinish().then(done, done));
}

defineSubsystem({ name: 'accel', fini: stop });
