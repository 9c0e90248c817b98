import { setCurrentThread } from './current.js';
import { ReactorError } from './errors.js';
import { type Handler, lookupHandler, WIRE_CODEC, WIRE_I32, WIRE_NONE, WIRE_U32 } from './handlers.js';
import type { Reactor } from './reactor.js';
import { RingConsumer, RingProducer, ringBytes } from './ring.js';
import type { RemoteTransport, ThreadRef } from './send.js';

// The shared memory of one app (the one place its layout lives): a control block, then one ring per
// ordered pair of reactors (full mesh; the diagonal is skipped).
//
//   control, 128 bytes per block (one block per cache-line pair, so reactors never share one):
//     block 0:     [0] next thread id  [1] reactors  [2] ring capacity
//     block 1 + r: [0] sleeping flag of reactor r  [1] doorbell  [2] state
//   rings: ring (from, to) at CONTROL + (from * n + to) * ringBytes(capacity)

const BLOCK_WORDS = 32;
const G_NEXT_ID = 0;
const G_REACTORS = 1;
const G_CAPACITY = 2;
const R_SLEEPING = 0;
const R_BELL = 1;
const R_STATE = 2;

/** Inbound records dispatched per ring per iteration: bounds how long one peer holds a reactor. */
export const RX_BATCH = 256;

export enum ReactorRunState {
  Starting = 0,
  Running = 1,
  Stopped = 2,
}

function controlBytes(n: number): number {
  return (1 + n) * BLOCK_WORDS * 4;
}

/** Allocate and initialise the shared memory for `n` reactors with rings of `capacity` slots. */
export function createMeshMemory(n: number, capacity: number): SharedArrayBuffer {
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new ReactorError('EINVAL', `1..256 reactors, got ${n}`);
  const rb = ringBytes(capacity);
  if (rb % 128 !== 0)
    throw new ReactorError('EINVAL', `ring capacity ${capacity} must be a multiple of 8 slots`);
  const sab = new SharedArrayBuffer(controlBytes(n) + n * n * rb);
  const g = new Int32Array(sab, 0, BLOCK_WORDS);
  // Ids 1..n are the reactors' first threads (reactor i runs thread i + 1).
  g[G_NEXT_ID] = n + 1;
  g[G_REACTORS] = n;
  g[G_CAPACITY] = capacity;
  return sab;
}

/**
 * One reactor's end of the mesh: producers to every other reactor, consumers from every other
 * reactor, its doorbell, and the transport that encodes cross-worker messages into the rings.
 */
export class MeshEndpoint implements RemoteTransport {
  readonly n: number;
  readonly self: number;
  readonly capacity: number;
  /** The control block as words (Atomics work on it: a JS-created SharedArrayBuffer). */
  readonly ctl: Int32Array;
  readonly out: (RingProducer | null)[] = [];
  readonly inbound: RingConsumer[] = [];
  /** Records whose handler or thread was unknown here. */
  dropped = 0;
  lastDrop = '';
  received = 0;
  sent = 0;
  /** Wake-ups this endpoint sent to sleeping peers. */
  notifies = 0;
  readonly #flushAt: number;
  // Messages that met a full ring, per destination, sent in order before any newer one.
  readonly #overflow: Backlog[] = [];
  #reactor: Reactor | null = null;

  constructor(sab: SharedArrayBuffer, self: number) {
    const g = new Int32Array(sab, 0, BLOCK_WORDS);
    this.n = g[G_REACTORS];
    this.capacity = g[G_CAPACITY];
    if (!(self >= 0 && self < this.n)) throw new ReactorError('EINVAL', `reactor ${self} of ${this.n}`);
    this.self = self;
    this.ctl = new Int32Array(sab, 0, controlBytes(this.n) / 4);
    const rb = ringBytes(this.capacity);
    const base = controlBytes(this.n);
    for (let j = 0; j < this.n; j++) {
      this.#overflow.push(new Backlog());
      if (j === self) {
        this.out.push(null);
        continue;
      }
      this.out.push(new RingProducer(sab, base + (self * this.n + j) * rb, this.capacity));
      this.inbound.push(new RingConsumer(sab, base + (j * this.n + self) * rb, this.capacity));
    }
    // Publish early once a quarter of a ring is pending, so the peer can start on a long burst.
    this.#flushAt = this.capacity >> 2;
  }

  /** Plug into a reactor: inbound rings become a source, publishing a flush, and send() the transport. */
  attach(r: Reactor): void {
    if (r.index !== this.self)
      throw new ReactorError('EINVAL', `endpoint ${this.self} given reactor ${r.index}`);
    this.#reactor = r;
    r.addSource(this.poll);
    r.addFlush(this.flush);
  }

  /** A new thread id, unique across the app. */
  allocThreadId(): number {
    return Atomics.add(this.ctl, G_NEXT_ID, 1);
  }

  send<T>(to: ThreadRef, h: Handler<T>, payload: T): void {
    const d = to.reactor;
    const p = this.out[d];
    if (p === undefined || p === null) throw new ReactorError('ENOENT', `no ring to reactor ${d}`);
    const ov = this.#overflow[d];
    if (ov.length > 0) {
      ov.push(to, h as Handler<unknown>, payload);
    } else if (!this.#write(p, to, h, payload)) {
      this.#publish(d, p);
      if (!this.#write(p, to, h, payload)) ov.push(to, h as Handler<unknown>, payload);
    }
    this.sent++;
    if (p.unpublished >= this.#flushAt) this.#publish(d, p);
  }

  /** Like send, but returns false (sending nothing) instead of queueing behind a full ring. */
  trySend<T>(to: ThreadRef, h: Handler<T>, payload: T): boolean {
    const d = to.reactor;
    const p = this.out[d];
    if (p === undefined || p === null) throw new ReactorError('ENOENT', `no ring to reactor ${d}`);
    if (this.#overflow[d].length > 0) return false;
    if (!this.#write(p, to, h, payload)) {
      this.#publish(d, p);
      if (!this.#write(p, to, h, payload)) return false;
    }
    this.sent++;
    if (p.unpublished >= this.#flushAt) this.#publish(d, p);
    return true;
  }

  #write<T>(p: RingProducer, to: ThreadRef, h: Handler<T>, payload: T): boolean {
    const wire = h.wire;
    if (wire !== WIRE_CODEC) {
      // Built-in word codecs: one slot, the payload written inline (what their encode() does).
      const o = p.reserve1(to.id & 0xffff);
      if (o < 0) return false;
      const w = p.words;
      w[o] = h.id;
      if (wire !== WIRE_NONE) w[o + 1] = payload as number;
      return true;
    }
    const words = h.codec.words(payload);
    if (words + 1 > p.maxBodyWords) {
      throw new ReactorError(
        'EMSGSIZE',
        `${h.name}: ${words}-word payload exceeds ${p.maxBodyWords - 1} words`,
      );
    }
    const off = p.reserve(to.id & 0xffff, words + 1);
    if (off < 0) return false;
    p.words[off] = h.id;
    if (words > 0) h.codec.encode(payload, p.words, off + 1, p.bytes);
    return true;
  }

  /** Dispatch published inbound records (a reactor source). */
  readonly poll = (): number => {
    const r = this.#reactor!;
    let total = 0;
    const prev = setCurrentThread(null);
    try {
      for (let k = 0; k < this.inbound.length; k++) total += this.#drain(this.inbound[k], r);
    } finally {
      setCurrentThread(prev);
    }
    this.received += total;
    return total;
  };

  #drain(c: RingConsumer, r: Reactor): number {
    let n = 0;
    let cur: unknown = null;
    const byTag = r.byTag;
    // Runs of one message kind are the common case: remember the last handler looked up.
    let lastId = 0;
    let last: Handler<unknown> | undefined;
    while (n < RX_BATCH) {
      const off = c.read();
      if (off < 0) break;
      n++;
      const w = c.words;
      const id = w[off];
      const h = id === lastId && last !== undefined ? last : lookupHandler(id);
      lastId = id;
      last = h;
      const t = byTag[c.tag];
      if (h === undefined || t === undefined || t.exited) {
        this.#drop(c.tag, w[off], h);
        continue;
      }
      if (t !== cur) {
        setCurrentThread(t);
        cur = t;
      }
      const wire = h.wire;
      if (wire === WIRE_U32) h.fn(w[off + 1] >>> 0);
      else if (wire === WIRE_I32) h.fn(w[off + 1]);
      else if (wire === WIRE_CODEC) h.fn(h.codec.decode(w, off + 1, c.bytes));
      else h.fn(undefined);
    }
    c.release();
    return n;
  }

  #drop(tag: number, id: number, h: Handler<unknown> | undefined): void {
    this.dropped++;
    this.lastDrop =
      h === undefined
        ? `reactor ${this.self}: no handler with id ${id} (define it in a module every reactor imports)`
        : `reactor ${this.self}: ${h.name} for thread tag ${tag}, which is not running here`;
  }

  /** Publish every ring with pending records and wake the peers that sleep (once per iteration). */
  readonly flush = (): void => {
    for (let d = 0; d < this.n; d++) {
      const p = this.out[d];
      if (p === null) continue;
      const ov = this.#overflow[d];
      if (ov.length > 0) this.#retryOverflow(d, p, ov);
      if (p.unpublished > 0) this.#publish(d, p);
    }
  };

  #retryOverflow(d: number, p: RingProducer, ov: Backlog): void {
    while (ov.length > 0 && this.#write(p, ov.peekTo(), ov.peekHandler(), ov.peekPayload())) ov.shift();
    if (ov.length > 0) this.#publish(d, p);
  }

  /** Messages waiting for ring space, over all destinations. */
  get backlog(): number {
    let n = 0;
    for (const ov of this.#overflow) n += ov.length;
    return n;
  }

  #publish(d: number, p: RingProducer): void {
    p.publish();
    // Dekker pairing with the sleeper: our index store above, then this load; the sleeper stores its
    // flag, then loads our index. One of the two sees the other. Only the exchange winner rings.
    const s = (1 + d) * BLOCK_WORDS;
    if (Atomics.load(this.ctl, s + R_SLEEPING) === 1 && Atomics.exchange(this.ctl, s + R_SLEEPING, 0) === 1) {
      this.ring(d);
    }
  }

  /** Ring reactor d's doorbell unconditionally. */
  ring(d: number): void {
    const s = (1 + d) * BLOCK_WORDS;
    Atomics.add(this.ctl, s + R_BELL, 1);
    Atomics.notify(this.ctl, s + R_BELL, 1);
    this.notifies++;
  }

  /** Whether any inbound ring holds a published record (reloads producer indices). */
  hasInbound(): boolean {
    for (let k = 0; k < this.inbound.length; k++) if (this.inbound[k].hasData()) return true;
    return false;
  }

  /** Word indices of this reactor's sleeping flag and doorbell in `ctl`. */
  get sleepIndex(): number {
    return (1 + this.self) * BLOCK_WORDS + R_SLEEPING;
  }
  get bellIndex(): number {
    return (1 + this.self) * BLOCK_WORDS + R_BELL;
  }

  setState(s: ReactorRunState): void {
    Atomics.store(this.ctl, (1 + this.self) * BLOCK_WORDS + R_STATE, s);
  }
  stateOf(r: number): ReactorRunState {
    return Atomics.load(this.ctl, (1 + r) * BLOCK_WORDS + R_STATE);
  }
}

// A FIFO of messages waiting for ring space, in parallel circular arrays (no per-entry objects,
// no Array#shift): it only fills when a sender outruns its peer.
class Backlog {
  #to: ThreadRef[] = [];
  #h: Handler<unknown>[] = [];
  #p: unknown[] = [];
  #head = 0;
  length = 0;

  push(to: ThreadRef, h: Handler<unknown>, payload: unknown): void {
    let cap = this.#to.length;
    if (this.length === cap) {
      const n = Math.max(16, cap * 2);
      const to: ThreadRef[] = new Array(n);
      const hs: Handler<unknown>[] = new Array(n);
      const ps: unknown[] = new Array(n);
      for (let k = 0; k < this.length; k++) {
        const i = (this.#head + k) % cap;
        to[k] = this.#to[i];
        hs[k] = this.#h[i];
        ps[k] = this.#p[i];
      }
      this.#to = to;
      this.#h = hs;
      this.#p = ps;
      this.#head = 0;
      cap = n;
    }
    const i = (this.#head + this.length) % cap;
    this.#to[i] = to;
    this.#h[i] = h;
    this.#p[i] = payload;
    this.length++;
  }
  peekTo(): ThreadRef {
    return this.#to[this.#head];
  }
  peekHandler(): Handler<unknown> {
    return this.#h[this.#head];
  }
  peekPayload(): unknown {
    return this.#p[this.#head];
  }
  shift(): void {
    this.#p[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#to.length;
    this.length--;
  }
}
