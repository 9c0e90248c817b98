import type { RpcServer } from '@storkit/rpc';

import type { Logger } from './log.js';
import { type AppSubsystem, type ConfigEntry, FOREIGN_SUBSYSTEMS } from './subsystem.js';

/** SPDK's JSON config: `{"subsystems":[{"subsystem":"bdev","config":[{"method":...,"params":...}]}]}`. */
export interface SpdkConfig {
  subsystems: { subsystem: string; config: ConfigEntry[] | null }[];
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * JSON with SPDK's comments removed: `//` to the end of the line, and block comments (slash-star
 * to star-slash), outside strings
 * (SPDK's config loader parses with SPDK_JSON_PARSE_FLAG_ALLOW_COMMENTS). Each comment becomes
 * spaces and its newlines stay, so JSON.parse's positions still point into the original text.
 */
export function stripJsonComments(text: string): string {
  let out = '';
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text[i];
    if (c === '"') {
      // A string, escapes included, copied as it is.
      const start = i++;
      while (i < n && text[i] !== '"') i += text[i] === '\\' ? 2 : 1;
      i++;
      out += text.slice(start, i);
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < n && text[i] !== '\n') {
        out += ' ';
        i++;
      }
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      const stop = end < 0 ? n : end + 2;
      for (; i < stop; i++) out += text[i] === '\n' ? '\n' : ' ';
    } else {
      out += c;
      i++;
    }
  }
  return out;
}

/** Parse and check the shape of a config file's text; errors say where (`subsystems[1].config[3].method`). */
export function parseConfig(text: string, source = 'config'): SpdkConfig {
  let v: unknown;
  try {
    v = JSON.parse(stripJsonComments(text));
  } catch (e) {
    throw new ConfigError(`${source}: not valid JSON: ${(e as Error).message}`);
  }
  const where = (p: string) => `${source}: ${p}`;
  if (typeof v !== 'object' || v === null || !Array.isArray((v as SpdkConfig).subsystems))
    throw new ConfigError(where('expected an object with a "subsystems" array'));
  const subs = (v as { subsystems: unknown[] }).subsystems;
  subs.forEach((s, i) => {
    const o = s as Record<string, unknown>;
    if (typeof o !== 'object' || o === null || typeof o.subsystem !== 'string')
      throw new ConfigError(where(`subsystems[${i}].subsystem must be a string`));
    if (o.config !== null && o.config !== undefined && !Array.isArray(o.config))
      throw new ConfigError(where(`subsystems[${i}].config must be an array or null`));
    ((o.config as unknown[]) ?? []).forEach((e, j) => {
      const entry = e as Record<string, unknown>;
      const p = `subsystems[${i}].config[${j}]`;
      if (typeof entry !== 'object' || entry === null || typeof entry.method !== 'string')
        throw new ConfigError(where(`${p}.method must be a string`));
      if (
        entry.params !== undefined &&
        (typeof entry.params !== 'object' || entry.params === null || Array.isArray(entry.params))
      )
        throw new ConfigError(where(`${p}.params must be an object`));
    });
  });
  return v as SpdkConfig;
}

/**
 * Run one pass of a config through the RPC server, as spdk_tgt's json_config loader does: the
 * `startup` pass calls the startup-only methods (before framework_start_init), the `runtime` pass
 * the rest. Each call goes through the same validation as over the socket. As there, an entry is
 * a call by method name whatever section holds it; a section only names the subsystem it belongs
 * to. Sections of SPDK subsystems storkit has no counterpart for (sock, iobuf, ...) are skipped
 * with a notice; sections SPDK writes with a null or empty config (scsi, vmd, nbd, ...) have
 * nothing to do.
 *
 * SPDK saves a virtual bdev before the bdev it sits on (its module waits for the base to appear
 * during examine): such an entry is held until its base bdevs exist, then called; at
 * bdev_wait_for_examine and at the end of the pass, a still-held entry is called anyway and fails
 * naming the missing bdev.
 */
export async function applyConfig(
  cfg: SpdkConfig,
  server: RpcServer,
  subsystems: readonly AppSubsystem[],
  pass: 'startup' | 'runtime',
  log: Logger,
): Promise<number> {
  const startupOnly = new Set(
    subsystems.flatMap((s) =>
      s.methods.filter((m) => (m.state ?? 'runtime') === 'startup').map((m) => m.name),
    ),
  );
  let calls = 0;
  const held: { where: string; entry: ConfigEntry }[] = [];
  const call = async (where: string, entry: ConfigEntry): Promise<void> => {
    const r = await server.call(entry.method, entry.params ?? {});
    if (r.error)
      throw new ConfigError(
        `config: ${where} (${entry.method}) failed: ${r.error.message} (code ${r.error.code})`,
      );
    calls++;
  };
  const ready = async (entry: ConfigEntry): Promise<boolean> => {
    for (const name of baseBdevs(entry)) {
      const r = await server.call('bdev_get_bdevs', { name });
      if (r.error) return false;
    }
    return true;
  };
  /** Call the held entries whose bases now exist, until none is left or none can go. */
  const release = async (): Promise<void> => {
    for (let progress = true; progress; ) {
      progress = false;
      for (const h of [...held]) {
        if (!(await ready(h.entry))) continue;
        held.splice(held.indexOf(h), 1);
        await call(h.where, h.entry);
        progress = true;
      }
    }
  };
  /** Call every held entry: the first whose base never appeared fails, naming it. */
  const flush = async (): Promise<void> => {
    await release();
    for (const h of held.splice(0)) await call(h.where, h.entry);
  };
  for (const section of cfg.subsystems) {
    if (FOREIGN_SUBSYSTEMS.has(section.subsystem) && !subsystems.some((s) => s.name === section.subsystem)) {
      if (pass === 'startup' && section.config?.length)
        log.notice('app', `config: skipping SPDK-internal subsystem '${section.subsystem}'`);
      continue;
    }
    for (const [j, entry] of (section.config ?? []).entries()) {
      if ((pass === 'startup') !== startupOnly.has(entry.method)) continue;
      const where = `${section.subsystem} entry ${j}`;
      if (entry.method === 'bdev_wait_for_examine') await flush();
      if (pass === 'runtime' && !(await ready(entry))) {
        held.push({ where, entry });
        continue;
      }
      await call(where, entry);
      if (held.length) await release();
    }
  }
  await flush();
  return calls;
}

/** The bdevs a virtual bdev's create needs (SPDK's param names). */
function baseBdevs(entry: ConfigEntry): string[] {
  const p = (entry.params ?? {}) as Record<string, unknown>;
  const one = (k: string) => (typeof p[k] === 'string' ? [p[k] as string] : []);
  switch (entry.method) {
    case 'bdev_delay_create':
    case 'bdev_passthru_create':
      return one('base_bdev_name');
    case 'bdev_error_create':
      return one('base_name');
    case 'bdev_split_create':
      return one('base_bdev');
    case 'bdev_raid_create':
      return Array.isArray(p.base_bdevs) ? p.base_bdevs.filter((b) => typeof b === 'string') : [];
    default:
      return [];
  }
}

/** A config section: the entries of the subsystems saved into it, then its owner's. */
export async function sectionConfig(
  subsystems: readonly AppSubsystem[],
  name: string,
): Promise<ConfigEntry[]> {
  const out: ConfigEntry[] = [];
  for (const s of subsystems) if (s.configSection === name) out.push(...(await s.writeConfig()));
  const owner = subsystems.find((s) => s.name === name && s.configSection === undefined);
  if (owner) out.push(...(await owner.writeConfig()));
  return out;
}

/** The current state of every subsystem, in SPDK's config format (save_config). */
export async function saveConfig(subsystems: readonly AppSubsystem[]): Promise<SpdkConfig> {
  const out: SpdkConfig = { subsystems: [] };
  for (const s of subsystems)
    if (s.configSection === undefined)
      out.subsystems.push({ subsystem: s.name, config: await sectionConfig(subsystems, s.name) });
  return out;
}
