export { bdevSubsystem } from './bdev-subsystem.js';
export { methodCatalog } from './catalog.js';
export { applyConfig, ConfigError, parseConfig, type SpdkConfig, saveConfig } from './config.js';
export { AppControl, type ReactorControl } from './control.js';
export { type FrameworkHost, frameworkMethods } from './framework.js';
export { Logger, type LogLevel } from './log.js';
export type { AppSubsystem, ConfigEntry } from './subsystem.js';
export { Target, type TargetOptions } from './target.js';
export { VERSION } from './version.js';
