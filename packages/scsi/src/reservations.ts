import type { Nexus } from './task.js';

/** Persistent reservation types (SPC-4 table 214). */
export const PrType = {
  WriteExclusive: 1,
  ExclusiveAccess: 3,
  WriteExclusiveRegistrantsOnly: 5,
  ExclusiveAccessRegistrantsOnly: 6,
  WriteExclusiveAllRegistrants: 7,
  ExclusiveAccessAllRegistrants: 8,
} as const;

export function validPrType(t: number): boolean {
  return t === 1 || t === 3 || t === 5 || t === 6 || t === 7 || t === 8;
}

function allRegistrants(t: number): boolean {
  return t === PrType.WriteExclusiveAllRegistrants || t === PrType.ExclusiveAccessAllRegistrants;
}

/** How a command is treated under reservations. */
/** Free: never conflicts; Meta: conflicts only with an SPC-2 reservation. */
export const Access = { Free: 0, Read: 1, Write: 2, Meta: 3 } as const;
export type Access = (typeof Access)[keyof typeof Access];

/**
 * Reservation state of one logical unit: SPC-2 RESERVE/RELEASE and SPC-4 persistent reservations
 * (registrations keyed by I_T nexus). Keys are 64-bit: kept as bigint, they are control-path only.
 */
export class Reservations {
  /** SPC-2 reservation holder. */
  legacyHolder: Nexus | null = null;
  readonly keys = new Map<number, { nexus: Nexus; key: bigint }>();
  generation = 0;
  /** Persistent reservation: holder (null for all-registrants types) and type; type 0 = none. */
  holder: Nexus | null = null;
  type = 0;
  key = 0n;

  isRegistered(n: Nexus): boolean {
    return this.keys.has(n.id);
  }

  keyOf(n: Nexus): bigint | undefined {
    return this.keys.get(n.id)?.key;
  }

  isHolder(n: Nexus): boolean {
    if (this.type === 0) return false;
    if (allRegistrants(this.type)) return this.keys.has(n.id);
    return this.holder?.id === n.id;
  }

  /** Whether `access` from `n` conflicts with the reservations held (SPC-4 5.12.1, table 212). */
  conflicts(n: Nexus, access: Access): boolean {
    if (this.legacyHolder && this.legacyHolder.id !== n.id) return access !== Access.Free;
    if (this.type === 0 || access === Access.Free || access === Access.Meta || this.isHolder(n)) return false;
    switch (this.type) {
      case PrType.WriteExclusive:
        return access === Access.Write;
      case PrType.ExclusiveAccess:
        return true;
      case PrType.WriteExclusiveRegistrantsOnly:
      case PrType.WriteExclusiveAllRegistrants:
        return access === Access.Write && !this.keys.has(n.id);
      default:
        return !this.keys.has(n.id);
    }
  }

  register(n: Nexus, key: bigint): void {
    this.keys.set(n.id, { nexus: n, key });
    this.generation = (this.generation + 1) >>> 0;
  }

  /** Removes `n`'s registration; releases a reservation it held. Returns nexuses to notify. */
  unregister(n: Nexus): Nexus[] {
    this.keys.delete(n.id);
    this.generation = (this.generation + 1) >>> 0;
    if (this.type === 0) return [];
    if (allRegistrants(this.type)) {
      if (this.keys.size === 0) this.#clearReservation();
      return [];
    }
    if (this.holder?.id === n.id) return this.release(n);
    return [];
  }

  reserve(n: Nexus, type: number, key: bigint): void {
    this.type = type;
    this.holder = allRegistrants(type) ? null : n;
    this.key = allRegistrants(type) ? 0n : key;
  }

  /** Releases the reservation; returns the registrants (other than `by`) to see RESERVATIONS RELEASED. */
  release(by: Nexus): Nexus[] {
    const t = this.type;
    this.#clearReservation();
    if (t === PrType.WriteExclusive || t === PrType.ExclusiveAccess) return [];
    const out: Nexus[] = [];
    for (const r of this.keys.values()) if (r.nexus.id !== by.id) out.push(r.nexus);
    return out;
  }

  /** CLEAR: drops every registration and the reservation; returns nexuses that lost theirs. */
  clear(by: Nexus): Nexus[] {
    const out: Nexus[] = [];
    for (const r of this.keys.values()) if (r.nexus.id !== by.id) out.push(r.nexus);
    this.keys.clear();
    this.#clearReservation();
    this.generation = (this.generation + 1) >>> 0;
    return out;
  }

  /** Removes registrations with `key` (all but `by` when `all`); returns the nexuses removed. */
  removeKeys(by: Nexus, key: bigint, all: boolean): Nexus[] {
    const out: Nexus[] = [];
    for (const [id, r] of this.keys) {
      if (id === by.id) continue;
      if (all || r.key === key) {
        this.keys.delete(id);
        out.push(r.nexus);
      }
    }
    this.generation = (this.generation + 1) >>> 0;
    return out;
  }

  #clearReservation(): void {
    this.type = 0;
    this.holder = null;
    this.key = 0n;
  }

  allRegistrantsType(): boolean {
    return allRegistrants(this.type);
  }
}
