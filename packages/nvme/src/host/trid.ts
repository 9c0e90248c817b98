// SPDK transport ID strings: `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:...` or
// `trtype:PCIe traddr:0000:04:00.0`, space-separated key:value pairs with case-insensitive keys
// (spdk_nvme_transport_id_parse). The trtype picks the transport (host/transport.ts).

import { DISCOVERY_NQN } from '@storkit/nvme-spec';

/** Transport types storkit knows (SPDK spells them this way). */
export type TrType = 'TCP' | 'PCIe';

/** An NVMe/TCP controller: address, port and subsystem. */
export interface TcpTransportId {
  trtype: 'TCP';
  adrfam: 'IPv4' | 'IPv6';
  traddr: string;
  trsvcid: string;
  subnqn: string;
  /** Host NQN to connect as (storkit extension key `hostnqn`). */
  hostnqn?: string;
}

/** A PCIe controller by its PCI address, `dddd:bb:dd.f` (domain 0000 when left out). */
export interface PcieTransportId {
  trtype: 'PCIe';
  traddr: string;
  /** The NVM subsystem's NQN, when known (not needed to reach the controller). */
  subnqn: string;
  hostnqn?: string;
}

export type TransportId = TcpTransportId | PcieTransportId;

export class TransportIdError extends Error {
  override name = 'TransportIdError';
  readonly code = 'EINVAL';
}

const BDF = /^(?:([0-9a-f]{1,4}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})\.([0-7])$/i;

/** `0000:00:04.0` from `00:04.0`, `0:0:4.0` and the like (lower case, zero padded). */
export function normalizePciAddress(s: string): string {
  const m = BDF.exec(s);
  if (!m) throw new TransportIdError(`invalid PCI address '${s}' (want dddd:bb:dd.f)`);
  const [, dom = '0', bus, dev, fn] = m;
  if (Number.parseInt(dev, 16) > 0x1f) throw new TransportIdError(`invalid PCI device in '${s}'`);
  return `${dom.padStart(4, '0')}:${bus.padStart(2, '0')}:${dev.padStart(2, '0')}.${fn}`.toLowerCase();
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
  const traddr = kv.get('traddr');
  const hostnqn = kv.has('hostnqn') ? { hostnqn: kv.get('hostnqn') } : {};
  if (trtype === 'PCIE') {
    if (!traddr) throw new TransportIdError('transport ID needs traddr');
    return {
      trtype: 'PCIe',
      traddr: normalizePciAddress(traddr),
      subnqn: kv.get('subnqn') ?? '',
      ...hostnqn,
    };
  }
  if (trtype !== 'TCP')
    throw new TransportIdError(`unsupported trtype '${kv.get('trtype') ?? ''}' (TCP or PCIe)`);
  const adrfam = (kv.get('adrfam') ?? 'IPv4').toLowerCase();
  if (adrfam !== 'ipv4' && adrfam !== 'ipv6') throw new TransportIdError(`unsupported adrfam '${adrfam}'`);
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
    ...hostnqn,
  };
}

export function formatTransportId(t: TransportId): string {
  if (t.trtype === 'PCIe') return `trtype:PCIe traddr:${t.traddr}`;
  return `trtype:${t.trtype} adrfam:${t.adrfam} traddr:${t.traddr} trsvcid:${t.trsvcid} subnqn:${t.subnqn}`;
}
