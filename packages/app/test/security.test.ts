// Access control of the app's targets, each rule tried by a client that must be refused and by
// one that must get in (so the refusal is the rule's doing, not a broken target): NVMe-oF host
// NQN allow lists (SPDK's spdk_nvme_identify and storkit's host), iSCSI CHAP one-way and mutual,
// discovery CHAP, initiator names and netmasks (libiscsi's tools). One target on two reactors.
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { NvmeController } from '@storkit/nvme';
import { DISCOVERY_NQN } from '@storkit/nvme-spec';
import { RpcClient } from '@storkit/rpc';
import { expect } from 'chai';

import { Logger, type SpdkConfig, Target } from '../src/index.js';
import { tool } from './iscsi-helpers.js';
import { freePort, io } from './nvmf-helpers.js';
import { spdkBin } from './peers.js';

const run = promisify(execFile);

const LOCKED = 'nqn.2016-06.io.storkit:locked';
const OPEN = 'nqn.2016-06.io.storkit:open';
const HOST_A = 'nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-0000-4000-8000-000000000001';
const HOST_B = 'nqn.2014-08.org.nvmexpress:uuid:bbbbbbbb-0000-4000-8000-000000000002';
const IQN = 'iqn.2016-06.io.storkit';
const ALLOWED = 'iqn.2024-01.io.storkit.test:allowed';
const DENIED = 'iqn.2024-01.io.storkit.test:denied';
const OTHER = 'iqn.2024-01.io.storkit.test:other';

function config(nvmePort: number): SpdkConfig {
  const la = { trtype: 'TCP', adrfam: 'IPv4', traddr: '127.0.0.1', trsvcid: String(nvmePort) };
  const node = (
    name: string,
    bdev: string,
    ig: number,
    auth: Record<string, unknown> = { disable_chap: true },
  ) => ({
    method: 'iscsi_create_target_node',
    params: {
      name,
      alias_name: name,
      pg_ig_maps: [{ pg_tag: 1, ig_tag: ig }],
      luns: [{ bdev_name: bdev, lun_id: 0 }],
      queue_depth: 16,
      ...auth,
    },
  });
  const malloc = (name: string) => ({
    method: 'bdev_malloc_create',
    params: { name, num_blocks: 2048, block_size: 512 },
  });
  return {
    subsystems: [
      { subsystem: 'bdev', config: ['N0', 'N1', 'I0', 'I1', 'I2', 'I3', 'I4', 'I5'].map(malloc) },
      {
        subsystem: 'nvmf',
        config: [
          { method: 'nvmf_create_transport', params: { trtype: 'TCP' } },
          { method: 'nvmf_subsystem_add_listener', params: { nqn: DISCOVERY_NQN, listen_address: la } },
          { method: 'nvmf_create_subsystem', params: { nqn: LOCKED, allow_any_host: false } },
          { method: 'nvmf_subsystem_add_host', params: { nqn: LOCKED, host: HOST_A } },
          {
            method: 'nvmf_subsystem_add_ns',
            params: { nqn: LOCKED, namespace: { nsid: 1, bdev_name: 'N0' } },
          },
          { method: 'nvmf_subsystem_add_listener', params: { nqn: LOCKED, listen_address: la } },
          { method: 'nvmf_create_subsystem', params: { nqn: OPEN, allow_any_host: true } },
          { method: 'nvmf_subsystem_add_ns', params: { nqn: OPEN, namespace: { nsid: 1, bdev_name: 'N1' } } },
          { method: 'nvmf_subsystem_add_listener', params: { nqn: OPEN, listen_address: la } },
        ],
      },
      {
        subsystem: 'iscsi',
        config: [
          { method: 'iscsi_set_options', params: { node_base: IQN } },
          {
            method: 'iscsi_create_portal_group',
            params: { tag: 1, portals: [{ host: '127.0.0.1', port: '0' }] },
          },
          {
            method: 'iscsi_create_auth_group',
            params: {
              tag: 1,
              secrets: [
                { user: 'alice', secret: 'alice-secret-1', muser: 'target1', msecret: 'target-secret-1' },
              ],
            },
          },
          {
            method: 'iscsi_create_initiator_group',
            params: { tag: 2, initiators: ['ANY'], netmasks: ['127.0.0.1/8'] },
          },
          {
            method: 'iscsi_create_initiator_group',
            params: { tag: 3, initiators: [ALLOWED], netmasks: ['127.0.0.1/32'] },
          },
          {
            method: 'iscsi_create_initiator_group',
            params: { tag: 4, initiators: ['ANY'], netmasks: ['10.0.0.0/8'] },
          },
          {
            method: 'iscsi_create_initiator_group',
            params: { tag: 5, initiators: [`!${DENIED}`, 'ANY'], netmasks: ['ANY'] },
          },
          node('chap1', 'I0', 2, { require_chap: true, chap_group: 1 }),
          node('chap2', 'I1', 2, { require_chap: true, mutual_chap: true, chap_group: 1 }),
          node('named', 'I2', 3),
          node('far', 'I3', 4),
          node('deny', 'I4', 5),
          node('open', 'I5', 2),
        ],
      },
    ],
  };
}

describe('app: access control, tried by clients that must be refused', function () {
  this.timeout(180_000);
  let t: Target;
  let rpc: RpcClient;
  let dir: string;
  let nport: number;
  let iport: number;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'storkit-security-'));
    nport = await freePort();
    t = new Target({
      cores: [0, 1],
      rpcSocket: join(dir, 'rpc.sock'),
      signals: false,
      log: new Logger('error', () => {}),
      config: config(nport),
    });
    await t.start();
    rpc = await RpcClient.connect(join(dir, 'rpc.sock'));
    const [pg] = await rpc.call<{ portals: { port: string }[] }[]>('iscsi_get_portal_groups');
    iport = Number(pg.portals[0].port);
  });
  after(async () => {
    rpc?.close();
    const r = await t?.stop();
    await rm(dir, { recursive: true, force: true });
    expect(r?.leaked).to.deep.equal([]);
  });

  const trid = (nqn: string, host?: string) =>
    `trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:${nport} subnqn:${nqn}${host ? ` hostnqn:${host}` : ''}`;

  /** SPDK's own identify tool: exit code and output. */
  async function spdkIdentify(nqn: string, host: string): Promise<{ code: number; out: string }> {
    try {
      const r = await run(spdkBin('spdk_nvme_identify'), ['-r', trid(nqn, host)], { timeout: 60_000 });
      return { code: 0, out: r.stdout + r.stderr };
    } catch (e) {
      const x = e as { code: number; stdout: string; stderr: string };
      return { code: typeof x.code === 'number' ? x.code : 1, out: `${x.stdout}${x.stderr}` };
    }
  }

  it('NVMe-oF: a host outside the allow list is refused by Connect (SPDK identify and storkit); one inside gets in', async () => {
    const refused = await spdkIdentify(LOCKED, HOST_B);
    expect(refused.code, refused.out).to.not.equal(0);
    expect(refused.out).to.not.match(/Serial Number:/);
    const admitted = await spdkIdentify(LOCKED, HOST_A);
    expect(admitted.code, admitted.out).to.equal(0);
    expect(admitted.out).to.match(/Subsystem NQN:\s+nqn\.2016-06\.io\.storkit:locked/);
    // storkit's host sees the status itself: Connect Invalid Host (SCT 1, SC 0x84).
    const e = await NvmeController.connect(trid(LOCKED), { hostnqn: HOST_B }).catch((x: Error) => x);
    expect(e).to.be.instanceOf(Error);
    expect((e as Error).message).to.match(/host not allowed/);
    // A subsystem that allows any host takes the same host.
    const c = await NvmeController.connect(trid(OPEN), { hostnqn: HOST_B });
    await c.close();
  });

  it('NVMe-oF: the discovery log shows a host only the subsystems it may connect to', async () => {
    const names = async (host: string) => {
      const d = await NvmeController.connect(trid(DISCOVERY_NQN), { hostnqn: host });
      try {
        return (await d.discoveryLog()).map((x) => x.subnqn);
      } finally {
        await d.close();
      }
    };
    expect(await names(HOST_A)).to.include.members([LOCKED, OPEN]);
    const b = await names(HOST_B);
    expect(b).to.include(OPEN);
    expect(b).to.not.include(LOCKED);
  });

  it("NVMe-oF: an I/O queue cannot join an allowed host's controller under another host NQN", async () => {
    const a = await NvmeController.connect(trid(LOCKED), { hostnqn: HOST_A });
    try {
      const qp = await a.allocIoQpair();
      const buf = new Uint8Array(512);
      expect(await io(qp, (cb) => qp.read(1, 0, 1, buf, cb, null))).to.equal(0);
      // Host B knows (or guesses) A's controller ID and asks to add an I/O queue to it.
      const { TcpHostQpair } = await import('@storkit/nvme');
      const rogue = new TcpHostQpair({ traddr: '127.0.0.1', trsvcid: String(nport), qid: 2, depth: 8 });
      await rogue.open();
      const err = await rogue
        .connect(LOCKED, HOST_B, new Uint8Array(16), a.cntlid, 0)
        .then(() => null)
        .catch((x: Error) => x);
      rogue.close();
      expect(err, 'Connect of a foreign host to an existing controller').to.be.instanceOf(Error);
      expect(err!.message).to.match(/Fabrics Connect failed/);
      // The allowed host's queue is untouched.
      expect(await io(qp, (cb) => qp.read(1, 0, 1, buf, cb, null))).to.equal(0);
    } finally {
      await a.close();
    }
  });

  it('NVMe-oF: removing a host disconnects its controllers on every reactor and refuses it from then on', async () => {
    const a = await NvmeController.connect(trid(LOCKED), { hostnqn: HOST_A });
    // I/O queues until the kernel's SO_REUSEPORT spread has put some on each reactor.
    const qps = [];
    const threads = async () =>
      new Set(
        (await rpc.call<{ thread: string }[]>('nvmf_subsystem_get_qpairs', { nqn: LOCKED })).map(
          (q) => q.thread,
        ),
      );
    while (qps.length < 4 || ((await threads()).size < 2 && qps.length < 24))
      qps.push(await a.allocIoQpair());
    expect((await threads()).size, 'queues on both reactors').to.equal(2);
    await rpc.call('nvmf_subsystem_remove_host', { nqn: LOCKED, host: HOST_A });
    try {
      const until = Date.now() + 20_000;
      for (;;) {
        for (const q of qps) q.processCompletions();
        const left = await rpc.call<unknown[]>('nvmf_subsystem_get_qpairs', { nqn: LOCKED });
        if (left.length === 0 && qps.every((q) => q.failed)) break;
        if (Date.now() > until)
          throw new Error(
            `still connected after remove_host: ${left.length} qpairs, ${qps.filter((q) => !q.failed).length} host queues alive`,
          );
        await new Promise((r) => setTimeout(r, 50));
      }
      const again = await NvmeController.connect(trid(LOCKED), { hostnqn: HOST_A }).catch((x: Error) => x);
      expect(again).to.be.instanceOf(Error);
    } finally {
      await a.close().catch(() => {});
      await rpc.call('nvmf_subsystem_add_host', { nqn: LOCKED, host: HOST_A });
    }
  });

  const url = (node: string, creds = '', query = '') =>
    `iscsi://${creds ? `${creds}@` : ''}127.0.0.1:${iport}/${IQN}:${node}/0${query}`;
  const inq = (u: string, initiator?: string) =>
    tool('iscsi-inq', [...(initiator ? ['-i', initiator] : []), u]);

  it('iSCSI one-way CHAP: no secret and a wrong secret are refused, the right one logs in', async () => {
    const none = await inq(url('chap1'));
    expect(none.code, none.out).to.not.equal(0);
    const wrong = await inq(url('chap1', 'alice%wrong-secret-1'));
    expect(wrong.code, wrong.out).to.not.equal(0);
    const nouser = await inq(url('chap1', 'mallory%alice-secret-1'));
    expect(nouser.code, nouser.out).to.not.equal(0);
    const right = await inq(url('chap1', 'alice%alice-secret-1'));
    expect(right.code, right.out).to.equal(0);
    expect(right.out).to.match(/Vendor:/i);
  });

  it("iSCSI mutual CHAP: one-way is refused; the initiator checks the target's answer (a wrong target secret fails, the right one logs in)", async () => {
    const oneway = await inq(url('chap2', 'alice%alice-secret-1'));
    expect(oneway.code, oneway.out).to.not.equal(0);
    const badTarget = await inq(
      url('chap2', 'alice%alice-secret-1', '?target_user=target1&target_password=not-the-secret'),
    );
    expect(badTarget.code, badTarget.out).to.not.equal(0);
    const right = await inq(
      url('chap2', 'alice%alice-secret-1', '?target_user=target1&target_password=target-secret-1'),
    );
    expect(right.code, right.out).to.equal(0);
  });

  it('iSCSI discovery CHAP: SendTargets needs the secret once required, and lists again once lifted', async () => {
    const portal = (creds = '') => `iscsi://${creds ? `${creds}@` : ''}127.0.0.1:${iport}`;
    await rpc.call('iscsi_set_discovery_auth', { require_chap: true, chap_group: 1 });
    try {
      const none = await tool('iscsi-ls', [portal()]);
      expect(none.code, none.out).to.not.equal(0);
      expect(none.out).to.not.include(`${IQN}:open`);
      const wrong = await tool('iscsi-ls', [portal('alice%wrong-secret-1')]);
      expect(wrong.code, wrong.out).to.not.equal(0);
      const right = await tool('iscsi-ls', [portal('alice%alice-secret-1')]);
      expect(right.code, right.out).to.equal(0);
      expect(right.out).to.include(`${IQN}:open`);
    } finally {
      await rpc.call('iscsi_set_discovery_auth', { require_chap: false, chap_group: 0 });
    }
    const open = await tool('iscsi-ls', [portal()]);
    expect(open.code, open.out).to.equal(0);
  });

  it('iSCSI initiator groups: names and netmasks refuse logins, and SendTargets hides what an initiator may not use', async () => {
    expect((await inq(url('named'), OTHER)).code).to.not.equal(0);
    expect((await inq(url('named'), ALLOWED)).code).to.equal(0);
    // 127.0.0.1 is outside 10.0.0.0/8: refused whatever the name.
    expect((await inq(url('far'), ALLOWED)).code).to.not.equal(0);
    expect((await inq(url('far'), OTHER)).code).to.not.equal(0);
    // '!name' denies that initiator; ANY admits the rest.
    expect((await inq(url('deny'), DENIED)).code).to.not.equal(0);
    expect((await inq(url('deny'), OTHER)).code).to.equal(0);
    const ls = async (initiator: string) => {
      const r = await tool('iscsi-ls', ['-i', initiator, `iscsi://127.0.0.1:${iport}`]);
      expect(r.code, r.out).to.equal(0);
      return r.out;
    };
    const other = await ls(OTHER);
    expect(other).to.include(`${IQN}:open`).and.include(`${IQN}:deny`);
    expect(other).to.not.include(`${IQN}:named`);
    expect(other).to.not.include(`${IQN}:far`);
    expect(await ls(ALLOWED)).to.include(`${IQN}:named`);
    expect(await ls(DENIED)).to.not.include(`${IQN}:deny`);
  });
});
