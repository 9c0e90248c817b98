import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { expect } from 'chai';

import { DmaRegion, hugepagesFree, memoryStats, NativeError, regionState } from '../src/index.js';
import { collect, exited, nextMessage, startWorker } from './workers.js';

const isRoot = process.getuid?.() === 0;
const NR = '/proc/sys/vm/nr_hugepages';

describe('native: DMA regions', () => {
  it('creates zeroed, pinned memory and says what backs it', () => {
    using r = DmaRegion.create(10_000, { hugepages: 'never' });
    expect(r.size).to.equal(12_288);
    expect(r.pageSize).to.equal(4096);
    expect(r.backing).to.equal(isRoot ? 'locked-4k' : r.backing);
    expect(r.bytes.every((b) => b === 0)).to.equal(true);
    expect(r.owner).to.equal(true);
    expect(r.fd).to.be.greaterThan(2);
    expect(readFileSync(`/proc/self/fdinfo/${r.fd}`, 'utf8')).to.match(/flags/);
  });

  it('rejects bad sizes and modes with EINVAL', () => {
    expect(() => DmaRegion.create(0))
      .to.throw(NativeError)
      .with.property('code', 'EINVAL');
    expect(() => DmaRegion.create(1.5))
      .to.throw(NativeError)
      .with.property('code', 'EINVAL');
    expect(() => DmaRegion.create(4096, { hugepages: 'maybe' as 'auto' }))
      .to.throw(NativeError)
      .with.property('code', 'EINVAL');
  });

  it('gives two views in one worker the same bytes', () => {
    using a = DmaRegion.create(4096, { hugepages: 'never' });
    using b = DmaRegion.attach(a.handle);
    a.bytes[100] = 0xab;
    expect(b.bytes[100]).to.equal(0xab);
    expect(b.owner).to.equal(false);
    expect(regionState(a.handle)).to.deep.equal({ owned: true, views: 2, live: true });
  });

  it('shares one region between the main thread and two workers, zero copies', async () => {
    using r = DmaRegion.create(64 * 1024, { hugepages: 'never' });
    const counters = new Int32Array(r.buffer, 0, 4);
    // Each worker bumps counter[0] with Atomics 10k times, writes its id at its own slot,
    // and reports what it sees of the other worker's slot once both are done.
    const body = `
      const r = n.DmaRegion.attach(data.handle);
      const c = new Int32Array(r.buffer, 0, 4);
      for (let i = 0; i < 10000; i++) Atomics.add(c, 0, 1);
      Atomics.store(c, 1 + data.id, 100 + data.id);
      Atomics.add(c, 3, 1);
      while (Atomics.load(c, 3) < 2) {}
      port.postMessage({ other: Atomics.load(c, 2 - data.id), text: r.bytes[1000 + 1 - data.id] });
      r.close();`;
    r.bytes[1000] = 0;
    r.bytes[1001] = 0;
    const ws = [0, 1].map((id) => startWorker(body, { handle: r.handle, id }));
    const replies = await Promise.all(ws.map((w) => nextMessage<{ other: number }>(w)));
    await Promise.all(ws.map(exited));
    expect(Atomics.load(counters, 0)).to.equal(20_000);
    expect(replies.map((m) => m.other)).to.deep.equal([101, 100]);
    expect(counters[1]).to.equal(100);
    expect(counters[2]).to.equal(101);
  });

  it('is freed exactly once: not while a worker maps it, then when the last view closes', async () => {
    // The counters are the process's: let regions earlier test files dropped be collected first,
    // so the collection below frees only this test's region.
    await collect();
    const before = memoryStats();
    const r = DmaRegion.create(8192, { hugepages: 'never' });
    const h = r.handle;
    const w = startWorker(
      `const r = n.DmaRegion.attach(data.h);
       port.postMessage('attached');
       await new Promise((res) => port.once('message', res));
       r.bytes[7] = 42;                       // still mapped: the owner let go, this view did not
       port.postMessage({ seen: r.bytes[5], state: n.regionState(data.h) });
       await new Promise((res) => port.once('message', res));
       r.close();
       port.postMessage({ state: n.regionState(data.h), len: r.bytes.length });`,
      { h },
    );
    expect(await nextMessage(w)).to.equal('attached');
    r.bytes[5] = 5;
    r.close();
    expect(r.bytes.length, 'owner view detached').to.equal(0);
    expect(regionState(h)).to.deep.equal({ owned: false, views: 1, live: true });
    expect(memoryStats().freed - before.freed).to.equal(0);
    w.postMessage('go');
    const mid = await nextMessage<{ seen: number; state: unknown }>(w);
    expect(mid.seen).to.equal(5);
    expect(mid.state).to.deep.equal({ owned: false, views: 1, live: true });
    expect(() => DmaRegion.attach(h))
      .to.throw(NativeError)
      .with.property('code', 'ENOENT');
    w.postMessage('close');
    const end = await nextMessage<{ state: unknown; len: number }>(w);
    expect(end).to.deep.equal({ state: { owned: false, views: 0, live: false }, len: 0 });
    await exited(w);
    await collect();
    const after = memoryStats();
    expect(after.freed - before.freed).to.equal(1);
    expect(after.created - before.created).to.equal(1);
    r.close();
    expect(memoryStats().freed - after.freed, 'second close is a no-op').to.equal(0);
  });

  it('closes a forgotten view on GC, and releases a forgotten owner', async () => {
    const before = memoryStats();
    let h = 0;
    (() => {
      const r = DmaRegion.create(4096, { hugepages: 'never' });
      h = r.handle;
      DmaRegion.attach(h);
    })();
    expect(regionState(h).views).to.equal(2);
    await collect();
    expect(regionState(h)).to.deep.equal({ owned: false, views: 0, live: false });
    expect(memoryStats().freed - before.freed).to.equal(1);
  });

  it('releases what a worker created or attached when the worker exits without closing', async () => {
    using keep = DmaRegion.create(4096, { hugepages: 'never' });
    const before = memoryStats();
    const w = startWorker(
      `n.DmaRegion.create(4096, { hugepages: 'never' }).close(); // its teardown hook is removed
       n.DmaRegion.attach(data.h).close();
       const own = n.DmaRegion.create(4096, { hugepages: 'never' });
       n.DmaRegion.attach(data.h);
       port.postMessage(own.handle);
       await new Promise((res) => port.once('message', res));`,
      { h: keep.handle },
    );
    const own = await nextMessage<number>(w);
    expect(regionState(keep.handle).views).to.equal(2);
    expect(regionState(own)).to.deep.equal({ owned: true, views: 1, live: true });
    w.postMessage('exit');
    await exited(w);
    expect(regionState(keep.handle)).to.deep.equal({ owned: true, views: 1, live: true });
    expect(regionState(own)).to.deep.equal({ owned: false, views: 0, live: false });
    expect(memoryStats().freed - before.freed).to.equal(2);
  });

  describe('hugepages', () => {
    let saved = '';
    before(function () {
      if (!isRoot) this.skip();
      saved = readFileSync(NR, 'utf8').trim();
    });
    after(() => {
      if (saved) writeFileSync(NR, saved);
    });

    it('uses 2 MiB hugepages when they are reserved', () => {
      // On top of whatever is reserved (other users may hold some): at least 4 are free.
      writeFileSync(NR, String(Number(saved) + 4));
      expect(hugepagesFree()).to.be.at.least(2);
      using r = DmaRegion.create(3 * 1024 * 1024);
      expect(r.backing).to.equal('hugepage-2m');
      expect(r.pageSize).to.equal(2 * 1024 * 1024);
      expect(r.size).to.equal(4 * 1024 * 1024);
      expect(r.note).to.equal(undefined);
      const pages = r.ioPages();
      expect(pages.length).to.equal(2);
      for (const p of pages) expect(p % (2 * 1024 * 1024)).to.equal(0);
      // Physically contiguous within a hugepage.
      expect(r.ioAddress(2 * 1024 * 1024 + 12345)).to.equal(pages[1] + 12345);
      expect(readFileSync('/proc/meminfo', 'utf8')).to.match(/HugePages_Rsvd:\s+\d+/);
    });

    it('shares a hugepage region with a worker', async () => {
      writeFileSync(NR, String(Number(saved) + 2));
      using r = DmaRegion.create(2 * 1024 * 1024, { hugepages: 'require' });
      r.bytes[1_500_000] = 77;
      const w = startWorker(
        `const v = n.DmaRegion.attach(data.h);
         v.bytes[2_000_000] = v.bytes[1_500_000] + 1;
         port.postMessage({ backing: v.backing, io: v.ioAddress(4096) });
         v.close();`,
        { h: r.handle },
      );
      const m = await nextMessage<{ backing: string; io: number }>(w);
      await exited(w);
      expect(m).to.deep.equal({ backing: 'hugepage-2m', io: r.ioAddress(4096) });
      expect(r.bytes[2_000_000]).to.equal(78);
    });

    it('falls back to locked 4 KiB pages when none are reserved, and says so', () => {
      writeFileSync(NR, '0');
      expect(hugepagesFree(), 'pages in use elsewhere become surplus, none stay free').to.equal(0);
      using r = DmaRegion.create(2 * 1024 * 1024);
      expect(r.backing).to.equal('locked-4k');
      expect(r.note).to.match(/no 2 MiB hugepages.*ENOMEM/);
      expect(() => DmaRegion.create(4096, { hugepages: 'require' }))
        .to.throw(NativeError)
        .with.property('code', 'ENOMEM');
    });
  });

  describe('IO addresses', () => {
    it('translates each page through /proc/self/pagemap (root)', function () {
      if (!isRoot) this.skip();
      using r = DmaRegion.create(4 * 4096, { hugepages: 'never' });
      expect(r.addressSpace).to.equal('physical');
      const pages = r.ioPages();
      expect(pages.length).to.equal(4);
      expect(new Set(pages).size).to.equal(4);
      for (const p of pages) expect(p % 4096).to.equal(0);
      expect(r.ioAddress(4096 * 2 + 17)).to.equal(pages[2] + 17);
      // Same physical page from a second view.
      using v = DmaRegion.attach(r.handle);
      expect(v.ioAddress(5)).to.equal(r.ioAddress(5));
      expect(() => r.ioAddress(r.size))
        .to.throw(NativeError)
        .with.property('code', 'EINVAL');
    });

    it('says EPERM without privilege, and falls back to unlocked pages when mlock is refused', function () {
      if (!isRoot || spawnSync('setpriv', ['--help']).status !== 0) this.skip();
      // The child runs as nobody, who may not be able to read the checkout (a clone in root's 0700
      // home or a mktemp -d folder): it loads a world-readable copy of the package instead.
      const copy = readableCopy();
      const script = `
        import(${JSON.stringify(copy.entry)}).then((n) => {
          const r = n.DmaRegion.create(8192, { hugepages: 'never' });
          let code = 'none';
          try { r.ioAddress(0); } catch (e) { code = e.code + ':' + e.message; }
          console.log(JSON.stringify({ code, space: r.addressSpace, backing: r.backing, note: r.note }));
        });`;
      let out: string;
      try {
        out = execFileSync(
          'setpriv',
          [
            '--reuid=65534',
            '--regid=65534',
            '--clear-groups',
            '--inh-caps=-all',
            'prlimit',
            '--memlock=0:0',
            process.execPath,
            '-e',
            script,
          ],
          { encoding: 'utf8', cwd: copy.dir },
        );
      } finally {
        rmSync(copy.dir, { recursive: true, force: true });
      }
      const r = JSON.parse(out);
      expect(r.code).to.match(/^EPERM:.*CAP_SYS_ADMIN/);
      expect(r.space).to.equal(null);
      expect(r.backing).to.equal('unlocked-4k');
      expect(r.note).to.match(/mlock.*RLIMIT_MEMLOCK/);
    });
  });
});

/**
 * @storkit/native and its addon copied into a fresh world-readable directory (0755 folders, 0644
 * files) laid out as node resolves them: `<dir>/native` (the built package) next to
 * `<dir>/node_modules/@storkit/native-binding` (the napi loader and the .node file) and
 * `<dir>/node_modules/@storkit/errors`.
 */
function readableCopy(): { dir: string; entry: string } {
  const pkg = fileURLToPath(new URL('../../', import.meta.url));
  const binding = join(pkg, '../../crates/napi');
  const dir = mkdtempSync(join(tmpdir(), 'storkit-native-'));
  const bindingDir = join(dir, 'node_modules/@storkit/native-binding');
  mkdirSync(bindingDir, { recursive: true });
  cpSync(join(pkg, 'package.json'), join(dir, 'native/package.json'));
  cpSync(join(pkg, 'dist/src'), join(dir, 'native/dist/src'), { recursive: true });
  cpSync(binding, bindingDir, {
    recursive: true,
    filter: (src) => src === binding || /(\.node|index\.js|package\.json)$/.test(src),
  });
  // @storkit/native's one dependency besides the addon: the code set its errors carry.
  const errors = join(pkg, '../errors');
  const errorsDir = join(dir, 'node_modules/@storkit/errors');
  cpSync(join(errors, 'package.json'), join(errorsDir, 'package.json'));
  cpSync(join(errors, 'dist/src'), join(errorsDir, 'dist/src'), { recursive: true });
  const st = spawnSync('chmod', ['-R', 'a+rX', dir]);
  if (st.status !== 0) throw new Error(`chmod -R a+rX ${dir}: ${st.stderr}`);
  return { dir, entry: join(dir, 'native/dist/src/index.js') };
}
