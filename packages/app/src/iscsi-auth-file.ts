// iscsi_set_options' auth_file: SPDK's CHAP secret file, read when the iscsi subsystem starts
// (framework init) and turned into auth groups, as SPDK's iscsi_parse_auth_info does. The format is
// SPDK's INI-like config (lib/conf): `[AuthGroupN]` sections (N > 0), each with lines
// `Auth USER SECRET [MUSER MSECRET]` (values may be in double quotes), `Comment "..."` ignored,
// `#` starting a comment line, a trailing backslash continuing a line. Sections of other names are
// skipped, as SPDK skips them.
import { readFileSync } from 'node:fs';

import { RpcError } from '@storkit/rpc';

export interface AuthFileSecret {
  user: string;
  secret: string;
  muser?: string;
  msecret?: string;
}
export interface AuthFileGroup {
  tag: number;
  secrets: AuthFileSecret[];
}

/** Words of a line: split on blanks, double quotes keep blanks and are removed (spdk's strsepq). */
function words(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inWord = false;
  let quoted = false;
  for (const c of line) {
    if (quoted) {
      if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') {
      quoted = true;
      inWord = true;
    } else if (c === ' ' || c === '\t') {
      if (inWord) out.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quoted) throw new Error('unterminated quote');
  if (inWord) out.push(cur);
  return out;
}

/** The auth groups of an auth file's text; throws with the line at fault. */
export function parseAuthFile(text: string, path = 'auth file'): AuthFileGroup[] {
  const groups: AuthFileGroup[] = [];
  let group: AuthFileGroup | null = null;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const at = i + 1;
    let line = lines[i].replace(/\r$/, '');
    while (line.endsWith('\\') && i + 1 < lines.length)
      line = line.slice(0, -1) + lines[++i].replace(/\r$/, '');
    const t = line.trim();
    if (t === '' || t.startsWith('#')) continue;
    const bad = (why: string) => RpcError.invalidParams(`${path}:${at}: ${why}`);
    if (t.startsWith('[')) {
      const m = /^\[([^\]]*)\]$/.exec(t);
      if (m === null) throw bad(`bad section header ${t}`);
      group = null;
      const g = /^AuthGroup(\d+)$/.exec(m[1]);
      if (g === null) continue;
      const tag = Number(g[1]);
      if (tag === 0) throw bad('auth group 0 is invalid');
      if (groups.some((x) => x.tag === tag)) throw bad(`auth group ${tag} appears twice`);
      group = { tag, secrets: [] };
      groups.push(group);
      continue;
    }
    let w: string[];
    try {
      w = words(t);
    } catch (e) {
      throw bad((e as Error).message);
    }
    if (group === null || w[0] !== 'Auth') continue;
    const [, user, secret, muser, msecret] = w;
    if (!user || !secret) throw bad('Auth needs a user and a secret');
    if (muser !== undefined && !msecret) throw bad('a mutual user needs a mutual secret');
    if (group.secrets.some((s) => s.user === user))
      throw bad(`user ${user} appears twice in auth group ${group.tag}`);
    group.secrets.push(muser === undefined ? { user, secret } : { user, secret, muser, msecret });
  }
  return groups;
}

/**
 * The auth groups of the file at `path`, or null when it cannot be read (SPDK goes on without it:
 * "CHAP secret file not found"). A file that does not parse is an error (SPDK's init fails).
 */
export function readAuthFile(path: string): AuthFileGroup[] | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  return parseAuthFile(text, path);
}
