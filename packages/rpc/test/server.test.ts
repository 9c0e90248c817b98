import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import {
  int,
  methodHelp,
  obj,
  opt,
  paramsFromArgs,
  RpcClient,
  RpcCode,
  RpcError,
  RpcServer,
  registerBuiltins,
  req,
  str,
} from '../src/index.js';

let n = 0;
const sockPath = () => join(tmpdir(), `storkit-rpc-test-${process.pid}-${n++}.sock`);

function makeServer(): { server: RpcServer; created: Map<string, number> } {
  const server = new RpcServer({ maxRequestBytes: 64 << 10 });
  registerBuiltins(server, {
    version: 'storkit v0.1.0',
    fields: { major: 0, minor: 1, patch: 0, suffix: '' },
  });
  const created = new Map<string, number>();
  server.register<{ name: string; num_blocks: number; block_size: number }>({
    name: 'bdev_malloc_create',
    description: 'Create a malloc bdev',
    positional: ['name', 'num_blocks'],
    params: obj({
      name: req(str({ minLength: 1 })),
      num_blocks: req(int({ min: 1 })),
      block_size: opt(int({ min: 512, max: 65536 }), 512),
    }),
    handler(p) {
      if (created.has(p.name)) throw RpcError.errno('EEXIST', `bdev ${p.name} already exists`);
      created.set(p.name, p.num_blocks * p.block_size);
      return p.name;
    },
  });
  server.register<{ ms: number }>({
    name: 'slow',
    description: 'Answers after ms',
    state: 'both',
    params: obj({ ms: req(int({ min: 0, max: 5000 })) }),
    handler: (p) => new Promise((res) => setTimeout(() => res(p.ms), p.ms)),
  });
  server.register({
    name: 'iscsi_set_options',
    description: 'startup only',
    state: 'startup',
    handler: () => true,
  });
  server.register({
    name: 'explode',
    description: 'throws a plain error',
    handler() {
      throw Object.assign(new Error('no such bdev: x'), { code: 'ENODEV' });
    },
  });
  return { server, created };
}

/** Raw exchange: send text, collect response objects until `count` arrive. */
function raw(path: string, text: string, count: number): Promise<unknown[]> {
  return new Promise((res, rej) => {
    const s = net.connect(path);
    let buf = '';
    const got: unknown[] = [];
    s.on('data', (d) => {
      buf += d.toString();
      let i = buf.indexOf('\n');
      while (i >= 0) {
        got.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
        i = buf.indexOf('\n');
      }
      if (got.length >= count) {
        s.destroy();
        res(got);
      }
    });
    s.on('error', rej);
    s.on('close', () => res(got));
    s.write(text);
  });
}

describe('rpc: server', () => {
  let path: string;
  let server: RpcServer;
  let created: Map<string, number>;
  let client: RpcClient;

  beforeEach(async () => {
    path = sockPath();
    ({ server, created } = makeServer());
    await server.listenUnix(path);
    client = await RpcClient.connect(path);
  });
  afterEach(async () => {
    client.close();
    await server.close();
  });

  it('answers builtins and a method, filling defaults', async () => {
    expect(await client.call('spdk_get_version')).to.deep.include({ version: 'storkit v0.1.0' });
    expect(await client.call('rpc_get_methods')).to.include.members([
      'bdev_malloc_create',
      'rpc_get_methods',
    ]);
    expect(await client.call('bdev_malloc_create', { name: 'Malloc0', num_blocks: 8 })).to.equal('Malloc0');
    expect(created.get('Malloc0')).to.equal(8 * 512);
  });

  it('names the bad field in invalid params, and creates nothing', async () => {
    const cases: [unknown, RegExp][] = [
      [{ name: 'M', num_blocks: 'lots' }, /num_blocks: expected an integer, got string/],
      [{ name: 'M' }, /num_blocks: required parameter missing/],
      [{ name: 'M', num_blocks: 1, block_size: 100 }, /block_size: 100 is below the minimum 512/],
      [{ name: 'M', num_blocks: 1, colour: 'red' }, /colour: unknown parameter/],
      [[1, 2], /params must be an object/],
    ];
    for (const [params, re] of cases) {
      const e = await client.call('bdev_malloc_create', params).catch((x: RpcError) => x);
      expect(e).to.be.instanceOf(RpcError);
      expect((e as RpcError).code).to.equal(RpcCode.InvalidParams);
      expect((e as RpcError).message).to.match(re);
    }
    expect(created.size).to.equal(0);
  });

  it('maps errno-coded errors to SPDK-style negative codes', async () => {
    await client.call('bdev_malloc_create', { name: 'A', num_blocks: 1 });
    const e = (await client
      .call('bdev_malloc_create', { name: 'A', num_blocks: 1 })
      .catch((x) => x)) as RpcError;
    expect(e.code).to.equal(-17);
    const e2 = (await client.call('explode').catch((x) => x)) as RpcError;
    expect(e2.code).to.equal(-19);
    expect(e2.message).to.equal('no such bdev: x');
  });

  it('answers unknown methods, bad requests, and malformed JSON without dropping the connection', async () => {
    const out = await raw(
      path,
      '{"jsonrpc":"2.0","method":"nope","id":1}{"jsonrpc":"1.0","method":"x","id":2}{"bad json": }' +
        '{"jsonrpc":"2.0","method":"spdk_get_version","id":{"x":1}}{"jsonrpc":"2.0","method":"spdk_get_version","id":3}',
      5,
    );
    // Answers come as requests complete, so compare them as a set.
    const codes = out.map((r) => (r as { error?: { code: number } }).error?.code ?? 0).sort((a, b) => a - b);
    expect(codes).to.deep.equal([
      RpcCode.ParseError,
      RpcCode.MethodNotFound,
      RpcCode.InvalidRequest,
      RpcCode.InvalidRequest,
      0,
    ]);
  });

  it('handles batches and notifications', async () => {
    const out = await raw(
      path,
      JSON.stringify([
        { jsonrpc: '2.0', method: 'spdk_get_version', id: 'a' },
        { jsonrpc: '2.0', method: 'bdev_malloc_create', params: { name: 'N', num_blocks: 1 } },
        { jsonrpc: '2.0', method: 'nope', id: 'b' },
        5,
      ]),
      1,
    );
    const batch = out[0] as { id: unknown; error?: { code: number } }[];
    expect(batch.map((r) => r.id)).to.deep.equal(['a', 'b', null]);
    expect(batch[1].error?.code).to.equal(RpcCode.MethodNotFound);
    expect(batch[2].error?.code).to.equal(RpcCode.InvalidRequest);
    expect(created.has('N')).to.equal(true); // the notification ran
    const empty = await raw(path, '[]', 1);
    expect((empty[0] as { error: { code: number } }).error.code).to.equal(RpcCode.InvalidRequest);
  });

  it('gates startup-only and runtime-only methods by state', async () => {
    const e = (await client.call('iscsi_set_options').catch((x) => x)) as RpcError;
    expect(e.code).to.equal(RpcCode.InvalidState);
    expect(e.message).to.match(/--wait-for-rpc/);
    server.setState('startup');
    expect(await client.call('iscsi_set_options')).to.equal(true);
    const e2 = (await client
      .call('bdev_malloc_create', { name: 'x', num_blocks: 1 })
      .catch((x) => x)) as RpcError;
    expect(e2.message).to.match(/framework_start_init/);
    expect(await client.call('rpc_get_methods', { current: true }))
      .to.include('iscsi_set_options')
      .and.not.include('explode');
  });

  it('closes a connection that sends an oversized request, and keeps serving others', async () => {
    const out = await raw(path, `{"jsonrpc":"2.0","method":"x","params":{"p":"${'y'.repeat(70 << 10)}"}}`, 1);
    expect((out[0] as { error: { code: number; message: string } }).error.message).to.match(/larger than/);
    expect(await client.call('spdk_get_version')).to.have.property('version');
  });

  it('survives a client that disconnects mid-request and one that sends half a request', async () => {
    const s = net.connect(path);
    await new Promise((r) => s.once('connect', r));
    s.write('{"jsonrpc":"2.0","method":"slow","params":{"ms":50},"id":1}{"jsonrpc":"2.0","meth');
    s.destroy();
    await new Promise((r) => setTimeout(r, 100));
    expect(await client.call('slow', { ms: 1 })).to.equal(1);
  });

  it('serves concurrent clients independently, answers matched by id', async () => {
    const clients = await Promise.all(Array.from({ length: 8 }, () => RpcClient.connect(path)));
    const results = await Promise.all(
      clients.map((c, i) =>
        Promise.all([
          c.call('slow', { ms: 30 - i }),
          c.call('bdev_malloc_create', { name: `C${i}`, num_blocks: i + 1 }),
        ]),
      ),
    );
    expect(results.map((r) => r[1])).to.deep.equal(clients.map((_, i) => `C${i}`));
    for (const c of clients) c.close();
    expect(created.size).to.equal(8);
  });

  it('refuses a live socket path, replaces a stale one, and removes its file on close', async () => {
    const other = makeServer().server;
    const e = await other.listenUnix(path).catch((x) => x);
    expect(e).to.have.property('code', 'EADDRINUSE');
    // A socket file whose process died without closing it (a plain file there is refused: see
    // socket-access.test.ts).
    const stale = sockPath();
    const code = `require('net').createServer().listen(${JSON.stringify(stale)},()=>process.exit(0))`;
    await new Promise((res, rej) =>
      execFile(process.execPath, ['-e', code], (err) => (err ? rej(err) : res(0))),
    );
    expect(existsSync(stale)).to.equal(true);
    await other.listenUnix(stale);
    await other.close();
    expect(existsSync(stale)).to.equal(false);
    await server.close();
    expect(existsSync(path)).to.equal(false);
  });

  it('regression: a connection closed for a framing error stayed open after its client left (paused, it never saw the FIN); found by fuzz.test', async () => {
    const before = server.connectionCount;
    const s = net.connect(path);
    s.on('error', () => {});
    let answer = '';
    s.on('data', (d) => (answer += d));
    await new Promise((r) => s.once('connect', r));
    // A request whose closing quote was damaged (the string runs on to a later quote, and the
    // stream turns into garbage), sent a byte per write as the fuzzer found it.
    const bad = Buffer.from(
      '{"jsonrpc":"2.0","method":"vhost_create_blk_controller","params\u00a3:{"ctrlr":"vhost.0","dev_name":"Malloc0","cpumask":"0x1","readonly":true,"packed_ring":true},"id":[5.718560015600007e+75,"Jj5f","&>yb] fLu:",false,false]}\n{"jsonrpc":2,"method":"bdev_malloc_create","id":2,"para"s":{"num_blocks":32768,"block_size":512,"name":"Malloc0","uuid":"1b0c1c3e-7d1e-4c55-9a6a-3b3f4b2a9d10","valueOf":null}}x',
      'latin1',
    );
    for (let i = 0; i < bad.length; i++) s.write(bad.subarray(i, i + 1));
    const t0 = Date.now();
    while (!answer.includes('Parse error') && Date.now() - t0 < 5000)
      await new Promise((r) => setTimeout(r, 5));
    expect(answer).to.include('Parse error');
    s.destroy();
    while (server.connectionCount > before && Date.now() - t0 < 5000)
      await new Promise((r) => setTimeout(r, 5));
    expect(server.connectionCount).to.equal(before);
  });

  it('answers a quick request while an earlier one on the same connection still waits', async function () {
    this.timeout(10_000);
    // Order, not time: the quick answer must come while the slow call is still pending.
    let slowDone = false;
    const slow = client.call('slow', { ms: 2000 }).then((v) => {
      slowDone = true;
      return v;
    });
    expect(await client.call('spdk_get_version')).to.have.property('version');
    expect(slowDone).to.equal(false);
    expect(await slow).to.equal(2000);
  });

  it('serves loopback TCP only', async () => {
    const port = await server.listenTcp('127.0.0.1', 0);
    const c = await RpcClient.connect({ address: '127.0.0.1', port });
    expect(await c.call('spdk_get_version')).to.have.property('version');
    c.close();
    const e = await server.listenTcp('0.0.0.0', 0).catch((x) => x);
    expect(String(e)).to.match(/loopback-only/);
  });
});

describe('rpc: rpc.py-style arguments', () => {
  const spec = makeServer()
    .server.methods()
    .find((m) => m.name === 'bdev_malloc_create')!;
  it('maps positionals and --options by schema type', () => {
    expect(paramsFromArgs(spec, ['Malloc0', '0x100', '--block-size', '4096'])).to.deep.equal({
      name: 'Malloc0',
      num_blocks: 256,
      block_size: 4096,
    });
    expect(paramsFromArgs(spec, ['--json', '{"name":"x","num_blocks":1}'])).to.deep.equal({
      name: 'x',
      num_blocks: 1,
    });
    expect(paramsFromArgs(spec, [])).to.equal(undefined);
  });
  it('rejects values of the wrong type and extra positionals', () => {
    expect(() => paramsFromArgs(spec, ['M', 'many'])).to.throw(/num_blocks: 'many' is not an integer/);
    expect(() => paramsFromArgs(spec, ['M', '1', 'extra'])).to.throw(/unexpected argument 'extra'/);
  });
  it('generates --help from the schema', () => {
    const h = methodHelp(spec);
    expect(h).to.match(/usage: storkit rpc bdev_malloc_create NAME NUM_BLOCKS/);
    expect(h).to.match(/--block-size INT {2}\(default 512\)/);
  });
});
