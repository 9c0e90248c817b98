// Fuzzing the config loader: parseConfig (the file's text and shape), the schema check of every
// entry against its method, and applyConfig's startup pass. Seed: a config saved by SPDK v24.01's
// own spdk_tgt (test/corpus/spdk-v24.01-save-config.json: malloc, null, aio, raid, split, delay,
// error, passthru and QoS bdevs, NVMe-oF subsystems with hosts, iSCSI groups and nodes, vhost
// controllers, and the sections of SPDK internals). Whatever the text: a config or a
// ConfigError, never another exception; whatever an entry's params: the validated params or an
// Invalid Params error naming the field, never an internal error.
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { RpcClient, RpcCode, RpcError, validate } from '@storkit/rpc';
import { expect } from 'chai';
import fc from 'fast-check';

import { applyConfig, ConfigError, Logger, parseConfig, type SpdkConfig, Target } from '../src/index.js';

const CORPUS = fileURLToPath(new URL('../../test/corpus/spdk-v24.01-save-config.json', import.meta.url));
const text = readFileSync(CORPUS, 'utf8');
const spdk = JSON.parse(text) as SpdkConfig;
const entries = spdk.subsystems.flatMap((s) =>
  (s.config ?? []).map((e) => ({ subsystem: s.subsystem, ...e })),
);

// A target's methods and schemas, without reactors: the constructor registers them.
const target = new Target({
  rpcSocket: join(tmpdir(), `storkit-config-fuzz-${process.pid}.sock`),
  signals: false,
  log: new Logger('error', () => {}),
});
const methods = new Map(target.server.methods().map((m) => [m.name, m]));

function deep(n: number): unknown {
  let v: unknown = 0;
  for (let i = 0; i < n; i++) v = { a: v };
  return v;
}

const value = fc.oneof(
  fc.constantFrom<unknown>(
    null,
    true,
    false,
    0,
    -1,
    0.5,
    2 ** 31,
    2 ** 53,
    -(2 ** 63),
    1e300,
    '',
    'Malloc0',
    'x'.repeat(5000),
    '0x3',
    '127.0.0.1',
    'TCP',
    [],
    {},
    ['Malloc0'],
    deep(50),
  ),
  fc.jsonValue({ maxDepth: 2 }),
);
const key = fc.oneof(
  fc.constantFrom('name', 'num_blocks', 'block_size', 'nqn', 'trtype', 'bdev_name', 'tag', 'luns', 'ctrlr'),
  fc.constantFrom('__proto__', 'constructor', 'toString'),
  fc.string({ maxLength: 10 }),
);
const paramEdit = fc.oneof(
  fc.record({ k: fc.constant('set' as const), key, v: value }),
  fc.record({ k: fc.constant('drop' as const), at: fc.nat() }),
  fc.record({ k: fc.constant('retype' as const), at: fc.nat(), v: value }),
);
type ParamEdit = typeof paramEdit extends fc.Arbitrary<infer T> ? T : never;

function edited(params: object | undefined, edits: ParamEdit[]): Record<string, unknown> {
  const p = structuredClone(params ?? {}) as Record<string, unknown>;
  for (const e of edits) {
    const keys = Object.keys(p);
    if (e.k === 'set')
      Object.defineProperty(p, e.key, { value: e.v, enumerable: true, writable: true, configurable: true });
    else if (keys.length === 0) continue;
    else if (e.k === 'drop') delete p[keys[e.at % keys.length]];
    else p[keys[e.at % keys.length]] = e.v;
  }
  return p;
}

describe('app: config loader fuzzing (a config saved by SPDK v24.01)', function () {
  this.timeout(120_000);

  it("the corpus: SPDK's saved config parses, and every entry of a method storkit has passes its schema", () => {
    const cfg = parseConfig(text, 'spdk');
    expect(cfg.subsystems.map((s) => s.subsystem)).to.include.members(['bdev', 'nvmf', 'iscsi', 'vhost_blk']);
    let checked = 0;
    for (const e of entries) {
      const m = methods.get(e.method);
      if (m === undefined) continue;
      try {
        validate(m.params ?? { type: 'object', properties: {} }, e.params ?? {});
      } catch (x) {
        throw new Error(`${e.method} as SPDK saved it: ${(x as Error).message}`);
      }
      checked++;
    }
    expect(checked).to.be.greaterThan(25);
  });

  it('mutated config texts: a config or a ConfigError, nothing else', () => {
    let errors = 0;
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ at: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }),
            fc.record({ at: fc.nat(), cut: fc.constant(true) }),
            fc.record({
              at: fc.nat(),
              ins: fc.constantFrom(
                'null',
                '[]',
                '{}',
                '"x"',
                ',',
                '{"method":1}',
                '{"subsystem":null}',
                '1e999',
              ),
            }),
          ),
          { minLength: 1, maxLength: 4 },
        ),
        (edits) => {
          let t = text;
          for (const e of edits) {
            const at = e.at % (t.length + 1);
            if ('v' in e) t = t.slice(0, at) + String.fromCharCode(e.v) + t.slice(at + 1);
            else if ('cut' in e) t = t.slice(0, at);
            else t = t.slice(0, at) + e.ins + t.slice(at);
          }
          try {
            parseConfig(t, 'fuzz');
          } catch (x) {
            expect(x, String(x)).to.be.instanceOf(ConfigError);
            errors++;
          }
        },
      ),
      { numRuns: 2000 },
    );
    expect(errors).to.be.greaterThan(1000);
  });

  it("mutated entries' params: validated or Invalid Params naming a field, never an internal error", () => {
    let invalid = 0;
    let valid = 0;
    const known = entries.filter((e) => methods.has(e.method));
    fc.assert(
      fc.property(
        fc.nat(known.length - 1),
        fc.array(paramEdit, { minLength: 1, maxLength: 4 }),
        (i, edits) => {
          const e = known[i];
          const m = methods.get(e.method)!;
          const p = edited(e.params, edits);
          try {
            validate(m.params ?? { type: 'object', properties: {} }, p);
            valid++;
          } catch (x) {
            expect(x, `${e.method}: ${String(x)}`).to.be.instanceOf(RpcError);
            expect((x as RpcError).code).to.equal(RpcCode.InvalidParams);
            invalid++;
          }
        },
      ),
      { numRuns: 3000 },
    );
    expect(invalid).to.be.greaterThan(300);
    expect(valid).to.be.greaterThan(30);
  });

  it('mutated configs through the startup pass: it completes or fails with a ConfigError', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ at: fc.nat(), edits: fc.array(paramEdit, { maxLength: 3 }) }), { maxLength: 6 }),
        fc.array(fc.constantFrom('bdev', 'nvmf', 'iscsi', 'scsi', 'sock', 'nope', ''), { maxLength: 2 }),
        async (changes, extraSections) => {
          const cfg = structuredClone(spdk);
          const all = cfg.subsystems.flatMap((s) => s.config ?? []);
          for (const c of changes) {
            const e = all[c.at % all.length];
            e.params = edited(e.params, c.edits);
          }
          for (const s of extraSections) cfg.subsystems.push({ subsystem: s, config: null });
          // A fresh target each run: startup options (iscsi_set_options, ...) are set once.
          const t = new Target({
            rpcSocket: join(tmpdir(), `storkit-config-fuzz-${process.pid}-x.sock`),
            signals: false,
            log: new Logger('error', () => {}),
          });
          t.server.setState('startup');
          try {
            await applyConfig(cfg, t.server, t.subsystems, 'startup', t.log);
          } catch (x) {
            expect(x, String(x)).to.be.instanceOf(ConfigError);
            expect((x as Error).message).to.match(/^config: /);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("regression: spdk_tgt's saved config did not load (an empty 'scsi' section was an unknown subsystem; delay and error bdevs named before their base failed ENODEV)", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'storkit-config-spdk-'));
    // The bdev section in spdk_tgt's order (vbdevs first), and its empty 'scsi' section.
    const cfg: SpdkConfig = {
      subsystems: [
        {
          subsystem: 'bdev',
          config: entries.filter(
            (e) =>
              e.subsystem === 'bdev' &&
              ['bdev_delay_create', 'bdev_split_create', 'bdev_error_create', 'bdev_null_create'].includes(
                e.method,
              ),
          ),
        },
        { subsystem: 'scsi', config: [] },
      ],
    };
    expect(cfg.subsystems[0].config!.map((e) => e.method)[0]).to.equal('bdev_delay_create');
    const t = new Target({
      cores: [0],
      rpcSocket: join(dir, 'rpc.sock'),
      signals: false,
      log: new Logger('error', () => {}),
      config: cfg,
    });
    try {
      await t.start();
      const rpc = await RpcClient.connect(join(dir, 'rpc.sock'));
      const names = (await rpc.call<{ name: string }[]>('bdev_get_bdevs')).map((b) => b.name);
      rpc.close();
      expect(names).to.include.members(['Null0', 'Null0p0', 'Null0p1', 'Delay0', 'EE_Null0p1']);
    } finally {
      const r = await t.stop();
      await rm(dir, { recursive: true, force: true });
      expect(r.leaked).to.deep.equal([]);
    }
  });
});
