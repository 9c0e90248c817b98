export { bdevSubsystem } from './bdev-subsystem.js';
export { methodCatalog } from './catalog.js';
export {
  applyConfig,
  ConfigError,
  parseConfig,
  type SpdkConfig,
  saveConfig,
  stripJsonComments,
} from './config.js';
export { AppControl, type ReactorControl } from './control.js';
export { DEFAULT_CONFIG } from './default-config.js';
export { type FrameworkHost, frameworkMethods } from './framework.js';
export { Logger, type LogLevel } from './log.js';
export type { RpcCommand, TargetPlugin } from './plugin.js';
export { REACTOR_MODULES, SUBSYSTEMS } from './registry.js';
export type { AppSubsystem, ConfigEntry } from './subsystem.js';
export { Target, type TargetOptions } from './target.js';
export { VERSION } from './version.js';
