// Fuzzing the JSON-RPC server end to end over its Unix socket. Seeds: the requests SPDK's rpc.py
// sent (test/corpus/rpc-py-requests.json, recorded off the real client). Each run opens a
// connection and sends a few requests: seeds as they are, seeds with ids, methods, params and
// values rewritten (wrong types, huge numbers, prototype-named keys, deep nesting), batches,
// notifications, and raw byte damage, in any chunking. What must hold: every request with an id
// is answered exactly once with a well-formed JSON-RPC response carrying that id and a known error
// code when it fails; a framing error closes only that connection; nothing throws out of the
// server; no connection outlives its client; a clean client is served after every run.
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect } from 'chai';
import fc from 'fast-check';

import {
  arr,
  bool,
  int,
  JsonFramer,
  obj,
  opt,
  RpcClient,
  RpcCode,
  RpcError,
  RpcServer,
  registerBuiltins,
  req,
  str,
} from '../src/index.js';

const CORPUS = fileURLToPath(new URL('../../test/corpus/rpc-py-requests.json', import.meta.url));
const seeds: string[] = JSON.parse(readFileSync(CORPUS, 'utf8')).requests;

/** A server whose methods cover every schema type, a handler that throws, and a slow one. */
function server(): RpcServer {
  const s = new RpcServer({ maxRequestBytes: 256 << 10, maxBatch: 64 });
  registerBuiltins(s, { version: 'storkit fuzz', fields: { major: 0, minor: 0, patch: 0, suffix: '' } });
  s.register<{ name: string; num_blocks: number; block_size: number; uuid?: string }>({
    name: 'bdev_malloc_create',
    description: 'typed params',
    positional: ['name', 'num_blocks', 'block_size'],
    params: obj({
      name: opt(str({ minLength: 1, maxLength: 64 })),
      num_blocks: req(int({ min: 1, max: 1 << 30 })),
      block_size: req(int({ min: 512, max: 65536 })),
      uuid: opt(str({ pattern: /^[0-9a-f-]{36}$/ })),
    }),
    handler: (p) => p.name ?? 'Malloc0',
  });
  s.register({
    name: 'nvmf_subsystem_add_listener',
    description: 'nested object',
    params: obj({
      nqn: req(str({ minLength: 1 })),
      listen_address: req(
        obj({
          trtype: req(str({ enum: ['TCP', 'RDMA'], ignoreCase: true })),
          traddr: req(str()),
          trsvcid: opt(str()),
          adrfam: opt(str({ enum: ['IPv4', 'IPv6'], ignoreCase: true })),
        }),
      ),
      secure_channel: opt(bool()),
    }),
    handler: () => true,
  });
  s.register({
    name: 'bdev_raid_create',
    description: 'arrays and extra keys',
    params: obj(
      { name: req(str()), raid_level: req(str()), base_bdevs: req(arr(str(), { minItems: 1, maxItems: 8 })) },
      { additional: true },
    ),
    handler: () => true,
  });
  s.register({
    name: 'throws',
    description: 'a handler that fails with a plain error',
    handler: () => {
      throw new TypeError('handler bug');
    },
  });
  s.register({
    name: 'spdk_kill_instance',
    description: 'answers later',
    params: obj({ sig_name: opt(str()) }),
    handler: () => new Promise((r) => setTimeout(() => r(true), 2)),
  });
  return s;
}

const KNOWN_CODES = new Set<number>([...Object.values(RpcCode), -1, -2, -5, -12, -16, -17, -19, -22, -95]);

function deep(n: number): unknown {
  let v: unknown = 1;
  for (let i = 0; i < n; i++) v = [v];
  return v;
}

const weird = fc.oneof(
  fc.constantFrom<unknown>(
    null,
    true,
    0,
    -1,
    1.5,
    2 ** 53,
    1e308,
    '',
    'x'.repeat(5000),
    [],
    {},
    { __proto__: { name: 'polluted' } },
    deep(40),
  ),
  fc.jsonValue({ maxDepth: 3 }),
);
const keyName = fc.oneof(
  fc.constantFrom(
    'name',
    'num_blocks',
    'block_size',
    'uuid',
    'nqn',
    'listen_address',
    'base_bdevs',
    'trtype',
  ),
  fc.constantFrom('__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'prototype'),
  fc.string({ maxLength: 12 }),
);

type Edit =
  | { k: 'id'; v: unknown }
  | { k: 'method'; v: string }
  | { k: 'jsonrpc'; v: unknown }
  | { k: 'param'; key: string; v: unknown }
  | { k: 'dropParams' }
  | { k: 'notify' };
const edit: fc.Arbitrary<Edit> = fc.oneof(
  fc.record({ k: fc.constant('id' as const), v: weird }),
  fc.record({
    k: fc.constant('method' as const),
    v: fc.oneof(
      fc.constantFrom('bdev_malloc_create', 'nvmf_subsystem_add_listener', 'bdev_raid_create', 'throws'),
      fc.constantFrom('rpc_get_methods', 'spdk_get_version', 'nope', '', '__proto__', 'constructor'),
    ),
  }),
  fc.record({ k: fc.constant('jsonrpc' as const), v: fc.constantFrom<unknown>('2.0', '1.0', 2, null) }),
  fc.record({ k: fc.constant('param' as const), key: keyName, v: weird }),
  fc.constant({ k: 'dropParams' as const }),
  fc.constant({ k: 'notify' as const }),
);

/** One request's text: a seed, re-serialized with edits applied (JSON.parse keeps __proto__ an own key). */
function mutate(seed: string, edits: Edit[], id: number): string {
  const r = JSON.parse(seed) as Record<string, unknown>;
  r.id = id;
  let params = r.params as Record<string, unknown> | undefined;
  for (const e of edits) {
    if (e.k === 'id') r.id = e.v;
    else if (e.k === 'method') r.method = e.v;
    else if (e.k === 'jsonrpc') r.jsonrpc = e.v;
    else if (e.k === 'dropParams') params = undefined;
    else if (e.k === 'notify') delete r.id;
    else {
      params ??= {};
      Object.defineProperty(params, e.key, {
        value: e.v,
        enumerable: true,
        writable: true,
        configurable: true,
      });
    }
  }
  if (params === undefined) delete r.params;
  else r.params = params;
  return JSON.stringify(r);
}

const request = fc.record({
  seed: fc.nat(seeds.length - 1),
  edits: fc.array(edit, { maxLength: 4 }),
});
const run = fc.record({
  requests: fc.array(request, { minLength: 1, maxLength: 6 }),
  batch: fc.boolean(),
  /** Raw damage: bytes flipped, or garbage appended. */
  flips: fc.array(fc.record({ at: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }), { maxLength: 2 }),
  tail: fc.constantFrom('', '', '}', ']', 'x', '{"a":', '\u0000'),
  chunk: fc.constantFrom(0, 1, 3, 64, 1000),
});

interface Sent {
  bytes: Buffer;
  /** Ids that must be answered, by request, when the stream arrives undamaged. */
  ids: unknown[];
  damaged: boolean;
}

function build(r: typeof run extends fc.Arbitrary<infer T> ? T : never): Sent {
  let next = 1;
  const texts: string[] = [];
  const ids: unknown[] = [];
  for (const q of r.requests) {
    const t = mutate(seeds[q.seed], q.edits, next++);
    const v = JSON.parse(t) as Record<string, unknown>;
    // An answer is owed for an id the server can echo (string, number or null when present).
    if ('id' in v) ids.push(v.id);
    texts.push(t);
  }
  const body = r.batch ? `[${texts.join(',')}]` : texts.join('\n');
  const bytes = Buffer.from(body + r.tail);
  for (const f of r.flips) if (bytes.length) bytes[f.at % bytes.length] = f.v;
  return { bytes, ids, damaged: r.flips.length > 0 || r.tail !== '' };
}

/** Send `s` on a new connection; collect responses until the expected count or the server closes. */
async function exchange(
  path: string,
  s: Sent,
  chunk: number,
): Promise<{ responses: unknown[]; closed: boolean }> {
  const c = net.connect(path);
  c.on('error', () => {});
  await new Promise((r) => c.once('connect', r));
  const framer = new JsonFramer(1 << 24);
  const responses: unknown[] = [];
  let closed = false;
  c.on('data', (d) => {
    for (const f of framer.push(d)) if (f.kind === 'value') responses.push(JSON.parse(f.text));
  });
  c.on('close', () => {
    closed = true;
  });
  if (chunk === 0) c.write(s.bytes);
  else for (let o = 0; o < s.bytes.length; o += chunk) c.write(s.bytes.subarray(o, o + chunk));
  const flat = () => responses.flatMap((x) => (Array.isArray(x) ? x : [x]));
  // Wait for every owed answer; a damaged stream owes none for sure, so wait for a quiet spell.
  const until = Date.now() + 3000;
  let seen = -1;
  let quietSince = Date.now();
  while (!closed && Date.now() < until) {
    const n = flat().length;
    if (!s.damaged && n >= s.ids.length) break;
    if (n !== seen) {
      seen = n;
      quietSince = Date.now();
    } else if (s.damaged && Date.now() - quietSince > 100) break;
    await new Promise((r) => setTimeout(r, 5));
  }
  // Let any extra (wrong) answers arrive before judging.
  await new Promise((r) => setTimeout(r, 10));
  c.destroy();
  return { responses: flat(), closed };
}

function checkResponse(x: unknown): void {
  expect(x).to.be.an('object');
  const r = x as Record<string, unknown>;
  expect(r.jsonrpc).to.equal('2.0');
  expect('result' in r !== 'error' in r, JSON.stringify(r)).to.equal(true);
  if ('error' in r) {
    const e = r.error as { code: number; message: string };
    expect(KNOWN_CODES.has(e.code), `error code ${e.code}: ${e.message}`).to.equal(true);
    expect(e.message).to.be.a('string');
    // A method's plain exception is an internal error; no other way in reaches the handler
    // with a plain exception (a params bug would show here as -32603).
    if (e.code === RpcCode.InternalError) expect(e.message, JSON.stringify(r)).to.match(/handler bug/);
  }
}

describe('rpc: fuzzing the server over its socket (rpc.py corpus)', function () {
  this.timeout(180_000);
  const path = join(tmpdir(), `storkit-rpc-fuzz-${process.pid}.sock`);
  let s: RpcServer;
  before(async () => {
    s = server();
    await s.listenUnix(path);
  });
  after(() => s.close());

  it(`the corpus: ${seeds.length} requests rpc.py sent, each answered once`, async () => {
    expect(seeds.length).to.be.greaterThan(30);
    for (const [i, text] of seeds.entries()) {
      const id = (JSON.parse(text) as { id: unknown }).id;
      const { responses } = await exchange(path, { bytes: Buffer.from(text), ids: [id], damaged: false }, 0);
      expect(responses, `seed ${i}`).to.have.length(1);
      checkResponse(responses[0]);
      expect((responses[0] as { id: unknown }).id).to.deep.equal(id);
    }
  });

  it('mutated requests, batches and damaged streams: one well-formed answer per id, framing errors close, no leak', async () => {
    let answered = 0;
    let closes = 0;
    await fc.assert(
      fc.asyncProperty(run, async (r) => {
        const sent = build(r);
        const { responses, closed } = await exchange(path, sent, r.chunk);
        for (const x of responses) checkResponse(x);
        if (closed) closes++;
        if (!sent.damaged) {
          // Ids the server can echo must each come back once, in some order.
          const want = sent.ids
            .filter((id) => id === null || typeof id === 'string' || typeof id === 'number')
            .map((id) => JSON.stringify(id));
          const got = responses
            .map((x) => (x as { id: unknown }).id)
            .filter((id) => id !== null)
            .map((id) => JSON.stringify(id));
          for (const w of want.filter((w) => w !== 'null')) expect(got, `id ${w}`).to.include(w);
          // At most one answer per request (an invalid request without an id is answered with id
          // null, as JSON-RPC 2.0's own batch example does).
          expect(responses.length).to.be.at.most(r.requests.length);
        }
        answered += responses.length;
      }),
      { numRuns: 150 },
    );
    expect(answered).to.be.greaterThan(150);
    expect(closes).to.be.greaterThan(0);
    // No connection outlives its client.
    const until = Date.now() + 2000;
    while (s.connectionCount > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    expect(s.connectionCount).to.equal(0);
    // A clean client is served.
    const c = await RpcClient.connect(path);
    expect(await c.call('bdev_malloc_create', { num_blocks: 8, block_size: 512 })).to.equal('Malloc0');
    c.close();
  });

  it('regression: a params key named after an Object.prototype member (constructor, toString, __proto__) broke validation into an internal error, and __proto__ could stand in for a required field', async () => {
    const c = await RpcClient.connect(path);
    try {
      for (const key of ['constructor', 'toString', 'hasOwnProperty', '__proto__']) {
        const text = `{"num_blocks":8,"block_size":512,${JSON.stringify(key)}:{"schema":1}}`;
        const e = await c.call('bdev_malloc_create', JSON.parse(text)).catch((x: RpcError) => x);
        expect(e, key).to.be.instanceOf(RpcError);
        expect((e as RpcError).code, key).to.equal(RpcCode.InvalidParams);
        expect((e as RpcError).message).to.match(/unknown parameter/);
      }
      // A schema that takes extra keys keeps __proto__ as a plain key: it cannot supply a required field.
      const e = await c
        .call(
          'bdev_raid_create',
          JSON.parse('{"name":"r","raid_level":"0","__proto__":{"base_bdevs":["a"]}}'),
        )
        .catch((x: RpcError) => x);
      expect((e as RpcError).code).to.equal(RpcCode.InvalidParams);
      expect((e as RpcError).message).to.match(/base_bdevs: required parameter missing/);
    } finally {
      c.close();
    }
  });
});
