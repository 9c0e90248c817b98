// Subsystems and namespaces, with the parameters SPDK's nvmf_* RPCs use (nvmf_create_subsystem,
// nvmf_subsystem_add_ns, nvmf_subsystem_add_host, nvmf_subsystem_add_listener).

import { createHash } from 'node:crypto';

import type { BlockBackend } from '@storkit/block';
import { DISCOVERY_NQN } from '@storkit/nvme-spec';

import type { Controller } from './controller.js';
import type { ControllerTable } from './controller-table.js';
import { invalid, NvmfError } from './errors.js';

export interface ListenAddress {
  trtype: string;
  adrfam?: string;
  traddr: string;
  trsvcid: string;
}

export interface CreateSubsystemParams {
  nqn: string;
  serial_number?: string;
  model_number?: string;
  allow_any_host?: boolean;
  max_namespaces?: number;
  min_cntlid?: number;
  max_cntlid?: number;
}

export interface NamespaceParams {
  nsid?: number;
  bdev_name: string;
  uuid?: string;
  /** 32 hex digits. */
  nguid?: string;
  /** 16 hex digits. */
  eui64?: string;
}

export class Namespace {
  constructor(
    readonly nsid: number,
    readonly backend: BlockBackend,
    readonly uuid: Uint8Array,
    readonly nguid: Uint8Array,
    readonly eui64: Uint8Array,
  ) {}
}

const NQN_RE = /^nqn\.\d{4}-\d{2}\.[a-z0-9-]+(\.[a-z0-9-]+)*(:.+)?$/i;

/** Validate an NQN as NVMe Base §4.5 defines it (length, `nqn.yyyy-mm.reverse.domain:...` or UUID form). */
export function validateNqn(nqn: string): void {
  if (typeof nqn !== 'string' || nqn.length < 11 || nqn.length > 223)
    throw invalid(`invalid NQN length: '${nqn}'`);
  if (nqn === DISCOVERY_NQN || /^nqn\.2014-08\.org\.nvmexpress:uuid:[0-9a-f-]{36}$/i.test(nqn)) return;
  if (!NQN_RE.test(nqn)) throw invalid(`invalid NQN '${nqn}'`);
}

function hexBytes(name: string, s: string | undefined, n: number): Uint8Array | undefined {
  if (s === undefined) return undefined;
  const hex = s.replace(/-/g, '');
  if (!new RegExp(`^[0-9a-fA-F]{${2 * n}}$`).test(hex)) throw invalid(`${name} must be ${2 * n} hex digits`);
  return Uint8Array.from({ length: n }, (_, i) => Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16));
}

function asciiField(name: string, v: string, max: number): string {
  if (v.length === 0 || v.length > max || !/^[\x20-\x7e]*$/.test(v))
    throw invalid(`${name} must be 1-${max} printable ASCII characters`);
  return v;
}

export type SubsystemEvent = 'ns-changed';

export class Subsystem {
  readonly nqn: string;
  readonly subtype: 'NVMe' | 'Discovery';
  serialNumber: string;
  modelNumber: string;
  allowAnyHost: boolean;
  readonly maxNamespaces: number;
  readonly minCntlid: number;
  readonly maxCntlid: number;
  readonly hosts = new Set<string>();
  readonly listeners: ListenAddress[] = [];
  readonly namespaces = new Map<number, Namespace>();
  /** Controllers whose admin queue is here. */
  readonly controllers = new Map<number, Controller>();
  /**
   * With several reactors: controller IDs shared by every reactor's copy of this subsystem (null
   * when the target runs alone), and stand-ins here for controllers owned by another reactor that
   * have I/O queues on this one.
   */
  table: ControllerTable | null = null;
  readonly remote = new Map<number, Controller>();
  /** The app's number for this subsystem in cross-reactor messages. */
  id = 0;
  #nextCntlid: number;

  constructor(p: CreateSubsystemParams, subtype: 'NVMe' | 'Discovery' = 'NVMe') {
    validateNqn(p.nqn);
    this.nqn = p.nqn;
    this.subtype = subtype;
    this.serialNumber = asciiField('serial_number', p.serial_number ?? '00000000000000000000', 20);
    this.modelNumber = asciiField('model_number', p.model_number ?? 'storkit bdev Controller', 40);
    this.allowAnyHost = p.allow_any_host ?? false;
    this.maxNamespaces = p.max_namespaces ?? 32;
    this.minCntlid = p.min_cntlid ?? 1;
    this.maxCntlid = p.max_cntlid ?? 0xffef;
    if (!Number.isInteger(this.maxNamespaces) || this.maxNamespaces < 1 || this.maxNamespaces > 1024)
      throw invalid('max_namespaces must be in [1, 1024]');
    if (
      !Number.isInteger(this.minCntlid) ||
      !Number.isInteger(this.maxCntlid) ||
      this.minCntlid < 1 ||
      this.maxCntlid > 0xffef ||
      this.minCntlid > this.maxCntlid
    )
      throw invalid('need 1 <= min_cntlid <= max_cntlid <= 0xffef');
    this.#nextCntlid = this.minCntlid;
  }

  hostAllowed(hostnqn: string): boolean {
    return this.allowAnyHost || this.hosts.has(hostnqn);
  }

  listensOn(a: { traddr: string; trsvcid: string }): boolean {
    return this.listeners.some((l) => l.traddr === a.traddr && String(l.trsvcid) === String(a.trsvcid));
  }

  /** A free controller ID, round robin in [min_cntlid, max_cntlid]; undefined when all are taken. */
  allocCntlid(): number | undefined {
    const span = this.maxCntlid - this.minCntlid + 1;
    for (let i = 0; i < span; i++) {
      const id = this.#nextCntlid;
      this.#nextCntlid = id === this.maxCntlid ? this.minCntlid : id + 1;
      if (!this.controllers.has(id)) return id;
    }
    return undefined;
  }

  /** Add a namespace; returns its nsid. Connected controllers get a namespace-change notice. */
  addNamespace(p: NamespaceParams, backend: BlockBackend): number {
    if (this.subtype !== 'NVMe') throw invalid('the discovery subsystem has no namespaces');
    let nsid = p.nsid ?? 0;
    if (nsid === 0) {
      for (nsid = 1; this.namespaces.has(nsid); nsid++);
    }
    if (!Number.isInteger(nsid) || nsid < 1 || nsid > this.maxNamespaces)
      throw invalid(`nsid must be in [1, ${this.maxNamespaces}]`);
    if (this.namespaces.has(nsid))
      throw new NvmfError('EEXIST', `nsid ${nsid} already exists in ${this.nqn}`);
    const uuidHex = p.uuid ?? backend.uuid;
    const uuid = hexBytes('uuid', uuidHex, 16) ?? this.#derived('uuid', backend.name, 16);
    const nguid = hexBytes('nguid', p.nguid, 16) ?? uuid.slice();
    const eui64 = hexBytes('eui64', p.eui64, 8) ?? new Uint8Array(8);
    this.namespaces.set(nsid, new Namespace(nsid, backend, uuid, nguid, eui64));
    this.#notify(nsid);
    return nsid;
  }

  removeNamespace(nsid: number): void {
    if (!this.namespaces.delete(nsid)) throw new NvmfError('ENODEV', `no nsid ${nsid} in ${this.nqn}`);
    this.#notify(nsid);
  }

  #derived(what: string, name: string, n: number): Uint8Array {
    return new Uint8Array(createHash('sha256').update(`${this.nqn}/${name}/${what}`).digest().subarray(0, n));
  }

  #notify(nsid: number): void {
    for (const c of this.controllers.values()) c.namespaceChanged(nsid);
  }
}
