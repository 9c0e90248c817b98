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
 * A virtual bdev SPDK saved before its base is created pending by its module and appears when
 * the base does, as SPDK's modules do on examine.
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
  for (const section of cfg.subsystems) {
    if (FOREIGN_SUBSYSTEMS.has(section.subsystem) && !subsystems.some((s) => s.name === section.subsystem)) {
      if (pass === 'startup' && section.config?.length)
        log.notice('app', `config: skipping SPDK-internal subsystem '${section.subsystem}'`);
      continue;
    }
    for (const [j, entry] of (section.config ?? []).entries()) {
      if ((pass === 'startup') !== startupOnly.has(entry.method)) continue;
      const r = await server.call(entry.method, entry.params ?? {});
      if (r.error)
        throw new ConfigError(
          `config: ${section.subsystem} entry ${j} (${entry.method}) failed: ${r.error.message} (code ${r.error.code})`,
        );
      calls++;
    }
  }
  return calls;
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
