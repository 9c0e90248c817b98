import { expect } from 'chai';
import { IscsiError, LoginStatus } from '../src/index.js';
import { keysOf, ramTarget, TestInitiator, tick } from './initiator.js';

describe('iscsi: configuration (SPDK RPC surface)', () => {
  it('validates options and group references with typed errors', () => {
    const { target } = ramTarget();
    expect(() => target.setOptions({ first_burst_length: 1 << 21, max_burst_length: 1 << 20 }))
      .to.throw(IscsiError)
      .with.property('code', 'EINVAL');
    expect(() =>
      target.createTargetNode({
        name: 'x',
        pg_ig_maps: [{ pg_tag: 9, ig_tag: 2 }],
        luns: [{ bdev_name: 'Malloc0', lun_id: 0 }],
        queue_depth: 4,
      }),
    )
      .to.throw(IscsiError)
      .with.property('code', 'ENOENT');
    expect(() => target.deletePortalGroup(1))
      .to.throw(IscsiError)
      .with.property('code', 'EINVAL');
    expect(() => target.setDiscoveryAuth({ disable_chap: true, require_chap: true })).to.throw(IscsiError);
  });

  it('reports nodes and groups in SPDK shapes, and manages auth group secrets', () => {
    const { target, iqn } = ramTarget();
    const [n] = target.getTargetNodes() as { name: string; luns: unknown[]; queue_depth: number }[];
    expect(n.name).to.equal(iqn);
    expect(n.luns).to.deep.equal([{ bdev_name: 'Malloc0', lun_id: 0 }]);
    expect(target.getPortalGroups()).to.deep.equal([
      { tag: 1, private: false, portals: [{ host: '127.0.0.1', port: '3260' }] },
    ]);
    target.createAuthGroup({ tag: 3, secrets: [] });
    target.authGroupAddSecret(3, { user: 'a', secret: 'secretsecret' });
    expect(() => target.authGroupAddSecret(3, { user: 'a', secret: 'other' })).to.throw(IscsiError);
    target.authGroupRemoveSecret(3, 'a');
    expect(target.getAuthGroups()).to.deep.equal([{ tag: 3, secrets: [] }]);
    target.deleteAuthGroup(3);
    expect(target.getAuthGroups()).to.deep.equal([]);
  });

  it('adding a LUN raises REPORTED LUNS DATA HAS CHANGED on the existing LUNs', async () => {
    const { target, iqn } = ramTarget();
    const i = new TestInitiator(target);
    i.loginNormal(iqn);
    i.scsi([0, 0, 0, 0, 0, 0]);
    await tick();
    i.take();
    target.targetNodeAddLun(iqn, { bdev_name: 'Malloc0', lun_id: 3 });
    i.scsi([0, 0, 0, 0, 0, 0]);
    await tick();
    const [r] = i.take();
    expect(r.bhs[3]).to.equal(0x02);
    expect([r.data[2 + 12], r.data[2 + 13]]).to.deep.equal([0x3f, 0x0e]);
  });

  it('a node that requires header digests refuses a connection that offers only None', () => {
    const { target } = ramTarget();
    const node = target.createTargetNode({
      name: 'digest',
      pg_ig_maps: [{ pg_tag: 1, ig_tag: 2 }],
      luns: [{ bdev_name: 'Malloc0', lun_id: 0 }],
      queue_depth: 4,
      header_digest: true,
    });
    const a = new TestInitiator(target);
    const r = a.loginNormal(node.name, [['HeaderDigest', 'None']]);
    expect((r.bhs[36] << 8) | r.bhs[37]).to.equal(LoginStatus.MissingParameter);
    const b = new TestInitiator(target);
    const ok = b.loginNormal(node.name, [['HeaderDigest', 'None,CRC32C']], 2);
    expect(ok.bhs[36]).to.equal(0);
    expect(keysOf(ok).get('HeaderDigest')).to.equal('CRC32C');
  });

  it('CHAP required by iscsi_target_node_set_auth refuses AuthMethod=None', () => {
    const { target, iqn } = ramTarget();
    target.createAuthGroup({ tag: 1, secrets: [{ user: 'u', secret: 'topsecret123' }] });
    target.targetNodeSetAuth(iqn, { require_chap: true, chap_group: 1 });
    const i = new TestInitiator(target);
    const r = i.login(
      [
        ['InitiatorName', 'iqn.test:init'],
        ['TargetName', iqn],
        ['AuthMethod', 'None'],
      ],
      0,
      1,
      true,
    );
    expect((r.bhs[36] << 8) | r.bhs[37]).to.equal(LoginStatus.AuthenticationFailure);
  });

  it('refuses an initiator outside the initiator group netmask', () => {
    const { target } = ramTarget();
    target.createInitiatorGroup({ tag: 7, initiators: ['iqn.test:init'], netmasks: ['10.0.0.0/8'] });
    const node = target.createTargetNode({
      name: 'acl',
      pg_ig_maps: [{ pg_tag: 1, ig_tag: 7 }],
      luns: [{ bdev_name: 'Malloc0', lun_id: 0 }],
      queue_depth: 4,
    });
    const out = new TestInitiator(target, '192.168.1.5');
    const denied = out.loginNormal(node.name);
    expect((denied.bhs[36] << 8) | denied.bhs[37]).to.equal(LoginStatus.AuthorizationFailure);
    const inside = new TestInitiator(target, '10.1.2.3');
    expect(inside.loginNormal(node.name, [], 3).bhs[36]).to.equal(0);
  });
});
