import type { Poller } from './poller.js';

// A binary min-heap of timed pollers keyed by (deadline, seq). Each poller records its own index
// so pause/unregister can remove it in O(log n) instead of leaving tombstones to skip.

function before(a: Poller, b: Poller): boolean {
  return a.deadline < b.deadline || (a.deadline === b.deadline && a.seq < b.seq);
}

export class DeadlineHeap {
  readonly items: Poller[] = [];

  get size(): number {
    return this.items.length;
  }
  peek(): Poller | undefined {
    return this.items[0];
  }

  push(p: Poller): void {
    const a = this.items;
    a.push(p);
    p.heapIndex = a.length - 1;
    this.#up(a.length - 1);
  }

  pop(): Poller | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0];
    this.removeAt(0);
    return top;
  }

  remove(p: Poller): void {
    if (p.heapIndex >= 0) this.removeAt(p.heapIndex);
  }

  removeAt(i: number): void {
    const a = this.items;
    const gone = a[i];
    const last = a.pop()!;
    gone.heapIndex = -1;
    if (i === a.length) return;
    a[i] = last;
    last.heapIndex = i;
    this.#up(i);
    this.#down(last.heapIndex);
  }

  #up(i: number): void {
    const a = this.items;
    const p = a[i];
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(p, a[parent])) break;
      a[i] = a[parent];
      a[i].heapIndex = i;
      i = parent;
    }
    a[i] = p;
    p.heapIndex = i;
  }

  #down(i: number): void {
    const a = this.items;
    const n = a.length;
    const p = a[i];
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && before(a[r], a[l]) ? r : l;
      if (!before(a[c], p)) break;
      a[i] = a[c];
      a[i].heapIndex = i;
      i = c;
    }
    a[i] = p;
    p.heapIndex = i;
  }
}
