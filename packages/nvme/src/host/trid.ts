// SPDK transport ID strings: `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:...`,
// space-separated key:value pairs with case-insensitive keys (spdk_nvme_transport_id_parse).

import { DISCOVERY_NQN } from '@storkit/nvme-spec';

export interface TransportId {
  trtype: 'TCP';
  adrfam: 'IPv4' | 'IPv6';
  traddr: string;
  trsvcid: string;
  subnqn: string;
  /** Host NQN to connect as (storkit extension key `hostnqn`). */
  hostnqn?: string;
}

export class TransportIdError extends Error {
  override name = 'TransportIdError';
  readonly code = 'ERR_NVME_TRID';
}

export function parseTransportId(s: string): TransportId {
  const kv = new Map<string, string>();
  for (const tok of s.trim().split(/[\s,]+/)) {
    if (!tok) continue;
    const i = tok.search(/[:=]/);
    if (i <= 0) throw new TransportIdError(`transport ID token '${tok}' is not key:value`);
    kv.set(tok.slice(0, i).toLowerCase(), tok.slice(i + 1));
  }
  const trtype = (kv.get('trtype') ?? '').toUpperCase();
  if (trtype !== 'TCP')
    throw new TransportIdError(`unsupported trtype '${kv.get('trtype') ?? ''}' (only TCP)`);
  const adrfam = (kv.get('adrfam') ?? 'IPv4').toLowerCase();
  if (adrfam !== 'ipv4' && adrfam !== 'ipv6') throw new TransportIdError(`unsupported adrfam '${adrfam}'`);
  const traddr = kv.get('traddr');
  if (!traddr) throw new TransportIdError('transport ID needs traddr');
  const trsvcid = kv.get('trsvcid') ?? '4420';
  const port = Number(trsvcid);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new TransportIdError(`invalid trsvcid '${trsvcid}'`);
  return {
    trtype: 'TCP',
    adrfam: adrfam === 'ipv4' ? 'IPv4' : 'IPv6',
    traddr,
    trsvcid,
    subnqn: kv.get('subnqn') ?? DISCOVERY_NQN,
    ...(kv.has('hostnqn') ? { hostnqn: kv.get('hostnqn') } : {}),
  };
}

export function formatTransportId(t: TransportId): string {
  return `trtype:${t.trtype} adrfam:${t.adrfam} traddr:${t.traddr} trsvcid:${t.trsvcid} subnqn:${t.subnqn}`;
}
