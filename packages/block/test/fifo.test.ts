import { type FifoLink, LinkedFifo } from '@storkit/block';
import { expect } from 'chai';
import fc from 'fast-check';

class Node implements FifoLink<Node> {
  next: Node | null = null;
  queued = false;
  constructor(readonly id: number) {}
}

describe('block: LinkedFifo (the wait queues of iobuf and queueIoWait)', () => {
  it('behaves as an array model under any sequence of push / shift / remove', () => {
    const op = fc.oneof(
      fc.record({ k: fc.constant('push' as const), i: fc.nat(15) }),
      fc.record({ k: fc.constant('shift' as const), i: fc.constant(0) }),
      fc.record({ k: fc.constant('remove' as const), i: fc.nat(15) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const nodes = Array.from({ length: 16 }, (_, i) => new Node(i));
        const q = new LinkedFifo<Node>();
        const model: Node[] = [];
        for (const o of ops) {
          const n = nodes[o.i];
          if (o.k === 'push') {
            // An entry is in one queue at a time: callers push only entries not queued.
            if (n.queued) continue;
            q.push(n);
            model.push(n);
          } else if (o.k === 'shift') {
            expect(q.shift()).to.equal(model.shift() ?? null);
          } else {
            const at = model.indexOf(n);
            expect(q.remove(n)).to.equal(at >= 0);
            if (at >= 0) model.splice(at, 1);
          }
          expect(q.length).to.equal(model.length);
          expect(q.head).to.equal(model[0] ?? null);
          expect(q.tail).to.equal(model[model.length - 1] ?? null);
          for (const x of nodes) expect(x.queued).to.equal(model.includes(x));
        }
        const order: number[] = [];
        for (let x = q.head; x !== null; x = x.next) order.push(x.id);
        expect(order).to.deep.equal(model.map((x) => x.id));
      }),
    );
  });
});
