import { crc32cRange } from '@storkit/native';
import { expect } from 'chai';
import { chapResponse, LoginStatus, TOp } from '../src/index.js';
import { BHS_LENGTH } from '../src/pdu.js';
import { keysOf, put32, ramTarget, TestInitiator, tick } from './initiator.js';

const READ10 = (lba: number, n: number) => [0x28, 0, 0, 0, 0, lba, 0, 0, n, 0];
const WRITE10 = (lba: number, n: number) => [0x2a, 0, 0, 0, 0, lba, 0, 0, n, 0];

describe('iscsi: protocol engine (in memory)', () => {
  it('discovery session answers SendTargets=All with the target and its portal', () => {
    const { target, iqn } = ramTarget();
    const i = new TestInitiator(target);
    const r = i.login(
      [
        ['InitiatorName', 'iqn.test:init'],
        ['SessionType', 'Discovery'],
      ],
      1,
      3,
      true,
    );
    expect(r.opcode).to.equal(TOp.LoginResponse);
    expect(r.bhs[36]).to.equal(0);
    const b = new Uint8Array(BHS_LENGTH);
    b[0] = 0x04;
    b[1] = 0x80;
    put32(b, 16, 9);
    put32(b, 20, 0xffffffff);
    put32(b, 24, i.cmdSn);
    i.send(b, Buffer.from('SendTargets=All\0'));
    const [t] = i.take();
    expect(t.opcode).to.equal(TOp.TextResponse);
    expect(Buffer.from(t.data).toString()).to.equal(`TargetName=${iqn}\0TargetAddress=127.0.0.1:3260,1\0`);
  });

  it('negotiates operational keys and declares TargetPortalGroupTag and MaxRecvDataSegmentLength', () => {
    const { target, iqn } = ramTarget();
    const i = new TestInitiator(target);
    const r = i.loginNormal(iqn, [
      ['HeaderDigest', 'None'],
      ['MaxBurstLength', '2097152'],
      ['FirstBurstLength', '4096'],
      ['InitialR2T', 'No'],
      ['X-com.example.Unknown', '1'],
    ]);
    const k = keysOf(r);
    expect(r.bhs[36], 'status class').to.equal(0);
    expect(k.get('TargetPortalGroupTag')).to.equal('1');
    expect(k.get('MaxBurstLength')).to.equal('1048576');
    expect(k.get('FirstBurstLength')).to.equal('4096');
    expect(k.get('InitialR2T')).to.equal('No');
    expect(k.get('X-com.example.Unknown')).to.equal('NotUnderstood');
    expect(k.get('MaxRecvDataSegmentLength')).to.equal('65536');
    expect((r.bhs[14] << 8) | r.bhs[15], 'TSIH').to.not.equal(0);
  });

  it('fails the login of an unknown target, and of a key given twice', () => {
    const { target, iqn } = ramTarget();
    const a = new TestInitiator(target);
    const r = a.loginNormal('iqn.2016-06.io.spdk:nope');
    expect((r.bhs[36] << 8) | r.bhs[37]).to.equal(LoginStatus.NotFound);
    expect(a.closed).to.equal(true);
    const b = new TestInitiator(target);
    const data = Buffer.from(
      `InitiatorName=iqn.x\0TargetName=${iqn}\0MaxBurstLength=512\0MaxBurstLength=1024\0`,
    );
    const bhs = new Uint8Array(BHS_LENGTH);
    bhs[0] = 0x43;
    bhs[1] = 0x87;
    b.send(bhs, data);
    const [f] = b.take();
    expect((f.bhs[36] << 8) | f.bhs[37]).to.equal(LoginStatus.InitiatorError);
    expect(b.closed).to.equal(true);
  });

  it('regression: a login answer named a key twice when the initiator sent a bad MaxRecvDataSegmentLength or a target-only key (login-fuzz)', () => {
    const { target, iqn } = ramTarget();
    for (const extra of [
      ['MaxRecvDataSegmentLength', ':62144'],
      ['TargetPortalGroupTag', '1'],
      ['TargetAlias', 'x'],
    ] as [string, string][]) {
      const i = new TestInitiator(target);
      const r = i.loginNormal(iqn, [extra]);
      expect((r.bhs[36] << 8) | r.bhs[37], extra[0]).to.equal(LoginStatus.InitiatorError);
      expect(keysOf(r).size, extra[0]).to.equal(0);
      expect(i.closed).to.equal(true);
    }
  });

  it('regression: Continue login PDUs gathered text without a bound (20000 of 8 KiB grew the heap by 160 MB); found writing login-fuzz', () => {
    const { target } = ramTarget();
    const i = new TestInitiator(target);
    const b = new Uint8Array(BHS_LENGTH);
    b[0] = 0x43;
    b[1] = 0x40 | (1 << 2) | 3; // C=1, CSG operational, NSG full feature
    b[13] = 1;
    const data = Buffer.alloc(8192, 0x41);
    let n = 0;
    for (; n < 1000 && !i.closed; n++) i.send(b, data);
    // Refused as soon as the gathered text passes the text limit, with Out of Resources.
    expect(i.closed).to.equal(true);
    expect(n).to.be.below(100);
    const last = i.take().pop()!;
    expect((last.bhs[36] << 8) | last.bhs[37]).to.equal(LoginStatus.OutOfResources);
  });

  it('reads with Data-In status collapse and residual underflow', async () => {
    const { target, ram, iqn } = ramTarget();
    ram.data.fill(0x5a, 512, 1024);
    const i = new TestInitiator(target);
    i.loginNormal(iqn);
    i.scsi(READ10(1, 1), { read: 600 });
    await tick();
    const [d] = i.take();
    expect(d.opcode).to.equal(TOp.DataIn);
    expect(d.flags & 0x81, 'F and S').to.equal(0x81);
    expect(d.flags & 0x02, 'underflow').to.equal(0x02);
    expect(d.u32(44)).to.equal(88);
    expect(d.data.length).to.equal(512);
    expect(d.data[0]).to.equal(0x5a);
  });

  it('writes through R2T and Data-Out when the initiator asks for InitialR2T', async () => {
    const { target, ram, iqn } = ramTarget();
    const i = new TestInitiator(target);
    i.loginNormal(iqn, [
      ['InitialR2T', 'Yes'],
      ['ImmediateData', 'No'],
    ]);
    i.scsi(WRITE10(2, 2), { write: new Uint8Array(1024).fill(7) });
    const [r2t] = i.take();
    expect(r2t.opcode).to.equal(TOp.R2t);
    expect(r2t.u32(44)).to.equal(1024);
    const ttt = r2t.u32(20);
    i.dataOut(r2t.u32(16), ttt, 0, 0, new Uint8Array(512).fill(7), false);
    i.dataOut(r2t.u32(16), ttt, 1, 512, new Uint8Array(512).fill(7), true);
    await tick();
    const [rsp] = i.take();
    expect(rsp.opcode).to.equal(TOp.ScsiResponse);
    expect(rsp.bhs[3]).to.equal(0);
    expect(ram.data[1024]).to.equal(7);
    expect(ram.data[2047]).to.equal(7);
  });

  it("data digests go through the target's CRC function (the app gives its accel channel's), both ways", async () => {
    const { target, ram, iqn } = ramTarget();
    let calls = 0;
    target.crc32c = (b, s, e, seed) => {
      calls++;
      return crc32cRange(b, s, e, seed);
    };
    const i = new TestInitiator(target);
    const rsp = i.loginNormal(iqn, [['DataDigest', 'CRC32C']]);
    expect(keysOf(rsp).get('DataDigest')).to.equal('CRC32C');
    i.useDataDigest();
    const data = Uint8Array.from({ length: 1024 }, (_x, k) => (k * 5) & 0xff);
    i.scsi(WRITE10(4, 2), { write: data, immediate: 1024 });
    await tick();
    expect(i.take().map((g) => [g.opcode, g.bhs[3]])).to.deep.equal([[TOp.ScsiResponse, 0]]);
    expect(ram.data.subarray(2048, 3072)).to.deep.equal(data);
    expect(calls).to.equal(1); // the immediate data's digest, checked
    i.scsi(READ10(4, 2), { read: 1024 });
    await tick();
    const [d] = i.take(); // its digest checked by the initiator's parser
    expect(d.opcode).to.equal(TOp.DataIn);
    expect(d.data).to.deep.equal(data);
    expect(calls).to.equal(2); // and computed through the target's function
  });

  it('returns sense data in the SCSI Response for a command beyond the end', async () => {
    const { target, iqn } = ramTarget(512, 16);
    const i = new TestInitiator(target);
    i.loginNormal(iqn);
    i.scsi(READ10(15, 2), { read: 1024 });
    await tick();
    const [rsp] = i.take();
    expect(rsp.opcode).to.equal(TOp.ScsiResponse);
    expect(rsp.bhs[3]).to.equal(0x02);
    const senseLen = (rsp.data[0] << 8) | rsp.data[1];
    expect(senseLen).to.equal(18);
    expect(rsp.data[2 + 2] & 0x0f).to.equal(0x05);
    expect(rsp.data[2 + 12]).to.equal(0x21);
  });

  it('ignores a command outside the CmdSN window and keeps serving', async () => {
    const { target, iqn } = ramTarget();
    const i = new TestInitiator(target);
    i.loginNormal(iqn);
    i.cmdSn += 1000;
    i.scsi([0, 0, 0, 0, 0, 0]);
    await tick();
    expect(i.take()).to.deep.equal([]);
    i.cmdSn -= 1001;
    i.scsi([0, 0, 0, 0, 0, 0]);
    await tick();
    const [rsp] = i.take();
    expect(rsp.opcode).to.equal(TOp.ScsiResponse);
    expect(i.closed).to.equal(false);
  });

  it('rejects Data-Out for an unknown task, and drops only the connection that sent garbage', async () => {
    const { target, iqn } = ramTarget();
    const good = new TestInitiator(target);
    good.loginNormal(iqn, [], 1);
    const bad = new TestInitiator(target);
    bad.loginNormal(iqn, [], 2);
    bad.dataOut(0x777, 0x1, 0, 0, new Uint8Array(512), true);
    const [rej] = bad.take();
    expect(rej.opcode).to.equal(TOp.Reject);
    expect(rej.bhs[2]).to.equal(0x09);
    expect(rej.data.length).to.equal(48);
    const junk = new Uint8Array(48);
    junk[0] = 0x1f; // not an initiator opcode
    bad.send(junk);
    expect(bad.closed).to.equal(true);
    good.scsi([0, 0, 0, 0, 0, 0]);
    await tick();
    expect(good.take()[0].opcode).to.equal(TOp.ScsiResponse);
  });

  it('reinstates a session: a new login with the same ISID drops the old one', () => {
    const { target, iqn } = ramTarget();
    const a = new TestInitiator(target);
    a.loginNormal(iqn, [], 5);
    const b = new TestInitiator(target);
    b.loginNormal(iqn, [], 5);
    expect(a.closed).to.equal(true);
    expect(b.closed).to.equal(false);
    expect(target.sessions.size).to.equal(1);
  });

  it('logs in with mutual CHAP when the target node requires it, and refuses a wrong secret', () => {
    const { target } = ramTarget();
    target.createAuthGroup({
      tag: 1,
      secrets: [{ user: 'u', secret: 'topsecret123', muser: 'm', msecret: 'mutualsecret9' }],
    });
    const node = target.createTargetNode({
      name: 'chapdisk',
      pg_ig_maps: [{ pg_tag: 1, ig_tag: 2 }],
      luns: [{ bdev_name: 'Malloc0', lun_id: 0 }],
      queue_depth: 8,
      require_chap: true,
      mutual_chap: true,
      chap_group: 1,
    });
    const i = new TestInitiator(target);
    const base: [string, string][] = [
      ['InitiatorName', 'iqn.test:init'],
      ['TargetName', node.name],
      ['AuthMethod', 'CHAP,None'],
    ];
    expect(keysOf(i.login(base, 0, 1, false)).get('AuthMethod')).to.equal('CHAP');
    const ch = keysOf(i.login([['CHAP_A', '5']], 0, 1, false));
    const id = Number(ch.get('CHAP_I'));
    const c = Buffer.from(ch.get('CHAP_C')!.slice(2), 'hex');
    const r = Buffer.from(chapResponse(id, 'topsecret123', c)).toString('hex');
    const myC = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
    const done = i.login(
      [
        ['CHAP_N', 'u'],
        ['CHAP_R', `0x${r}`],
        ['CHAP_I', '7'],
        ['CHAP_C', `0x${myC.toString('hex')}`],
      ],
      0,
      1,
      true,
    );
    expect(done.flags & 0x80, 'transit').to.equal(0x80);
    const k = keysOf(done);
    expect(k.get('CHAP_N')).to.equal('m');
    expect(k.get('CHAP_R')).to.equal(
      `0x${Buffer.from(chapResponse(7, 'mutualsecret9', myC)).toString('hex')}`,
    );

    const j = new TestInitiator(target);
    j.login(base, 0, 1, false, 2);
    const ch2 = keysOf(j.login([['CHAP_A', '5']], 0, 1, false, 2));
    const bad = Buffer.from(chapResponse(Number(ch2.get('CHAP_I')), 'wrong', Buffer.alloc(16))).toString(
      'hex',
    );
    const f = j.login(
      [
        ['CHAP_N', 'u'],
        ['CHAP_R', `0x${bad}`],
      ],
      0,
      1,
      true,
      2,
    );
    expect((f.bhs[36] << 8) | f.bhs[37]).to.equal(LoginStatus.AuthenticationFailure);
  });

  it('answers NOP-Out with NOP-In echoing the ping data, and handles logout', () => {
    const { target, iqn } = ramTarget();
    const i = new TestInitiator(target);
    i.loginNormal(iqn);
    const b = new Uint8Array(BHS_LENGTH);
    b[0] = 0x40;
    b[1] = 0x80;
    put32(b, 16, 0x55);
    put32(b, 20, 0xffffffff);
    put32(b, 24, i.cmdSn);
    i.send(b, Buffer.from('ping'));
    const [nop] = i.take();
    expect(nop.opcode).to.equal(TOp.NopIn);
    expect(Buffer.from(nop.data).toString()).to.equal('ping');
    const rsp = i.logout(0x56);
    expect(rsp.opcode).to.equal(TOp.LogoutResponse);
    expect(rsp.bhs[2]).to.equal(0);
    expect(i.closed).to.equal(true);
    expect(target.sessions.size).to.equal(0);
  });

  it('adds a second connection to a session (MC/S) sharing one CmdSN space', async () => {
    const { target, iqn } = ramTarget();
    const a = new TestInitiator(target);
    const r = a.loginNormal(iqn, [['MaxConnections', '2']], 9);
    const tsih = (r.bhs[14] << 8) | r.bhs[15];
    const b = new TestInitiator(target);
    const r2 = b.login(
      [
        ['InitiatorName', 'iqn.test:init'],
        ['TargetName', iqn],
      ],
      1,
      3,
      true,
      9,
      tsih,
      1,
    );
    expect((r2.bhs[36] << 8) | r2.bhs[37]).to.equal(0);
    expect(target.sessions.size).to.equal(1);
    // CmdSN 1 goes out on connection b, CmdSN 2 (sent first) on a: a's command waits for b's.
    a.cmdSn = 2;
    a.scsi([0, 0, 0, 0, 0, 0]);
    await tick();
    expect(a.take()).to.deep.equal([]);
    b.cmdSn = 1;
    b.scsi([0, 0, 0, 0, 0, 0]);
    await tick();
    expect(b.take().map((g) => g.opcode)).to.deep.equal([TOp.ScsiResponse]);
    expect(a.take().map((g) => g.opcode)).to.deep.equal([TOp.ScsiResponse]);
    const c = new TestInitiator(target);
    const r3 = c.login(
      [
        ['InitiatorName', 'iqn.test:init'],
        ['TargetName', iqn],
      ],
      1,
      3,
      true,
      9,
      tsih,
      2,
    );
    expect((r3.bhs[36] << 8) | r3.bhs[37]).to.equal(LoginStatus.TooManyConnections);
  });

  it('ABORT TASK of a write waiting for data answers Function Complete and never completes the task', async () => {
    const { target, iqn } = ramTarget();
    const i = new TestInitiator(target);
    i.loginNormal(iqn, [
      ['InitialR2T', 'Yes'],
      ['ImmediateData', 'No'],
    ]);
    const itt = i.itt;
    i.scsi(WRITE10(0, 1), { write: new Uint8Array(512) });
    expect(i.take()[0].opcode).to.equal(TOp.R2t);
    const t = new Uint8Array(BHS_LENGTH);
    t[0] = 0x42;
    t[1] = 0x81;
    put32(t, 16, 0x99);
    put32(t, 20, itt);
    put32(t, 24, i.cmdSn);
    put32(t, 32, i.cmdSn - 1);
    i.send(t);
    await tick();
    const [rsp] = i.take();
    expect(rsp.opcode).to.equal(TOp.TaskMgmtResponse);
    expect(rsp.bhs[2]).to.equal(0);
    expect(i.conn.outstanding).to.equal(0);
  });

  it('ABORT TASK of a task that already completed answers Task Does Not Exist (RFC 7143 11.5.1)', async () => {
    const { target, iqn } = ramTarget();
    const i = new TestInitiator(target);
    i.loginNormal(iqn);
    const itt = i.itt;
    const ref = i.cmdSn;
    i.scsi([0, 0, 0, 0, 0, 0]);
    await tick();
    expect(i.take().map((g) => g.opcode)).to.deep.equal([TOp.ScsiResponse]);
    const t = new Uint8Array(BHS_LENGTH);
    t[0] = 0x42; // immediate TMF request
    t[1] = 0x81; // ABORT TASK
    put32(t, 16, 0x98);
    put32(t, 20, itt);
    put32(t, 24, i.cmdSn);
    put32(t, 32, ref);
    i.send(t);
    await tick();
    const [rsp] = i.take();
    expect(rsp.opcode).to.equal(TOp.TaskMgmtResponse);
    // Function Complete here would tell the initiator a task it saw answered was also aborted.
    expect(rsp.bhs[2]).to.equal(1);
  });

  it('LUN RESET answers and leaves a unit attention for the next command', async () => {
    const { target, iqn } = ramTarget();
    const i = new TestInitiator(target);
    i.loginNormal(iqn);
    i.scsi([0, 0, 0, 0, 0, 0]);
    await tick();
    i.take();
    const t = new Uint8Array(BHS_LENGTH);
    t[0] = 0x42;
    t[1] = 0x85;
    put32(t, 16, 0x98);
    put32(t, 20, 0xffffffff);
    put32(t, 24, i.cmdSn);
    i.send(t);
    expect(i.take()[0].bhs[2]).to.equal(0);
    i.scsi([0, 0, 0, 0, 0, 0]);
    await tick();
    const [ua] = i.take();
    expect(ua.bhs[3]).to.equal(0x02);
    expect(ua.data[2 + 2] & 0x0f).to.equal(0x06);
    expect(ua.data[2 + 12]).to.equal(0x29);
  });

  it("pings with NOP-In and accepts the initiator's NOP-Out answer; asks for logout with an Async Message", () => {
    const { target, iqn } = ramTarget();
    const i = new TestInitiator(target);
    i.loginNormal(iqn);
    i.conn.sendPing();
    const [ping] = i.take();
    expect(ping.opcode).to.equal(TOp.NopIn);
    expect(ping.u32(16)).to.equal(0xffffffff);
    const ttt = ping.u32(20);
    expect(ttt).to.not.equal(0xffffffff);
    const b = new Uint8Array(BHS_LENGTH);
    b[0] = 0x40;
    b[1] = 0x80;
    put32(b, 16, 0xffffffff);
    put32(b, 20, ttt);
    put32(b, 24, i.cmdSn);
    i.send(b);
    expect(i.take()).to.deep.equal([]);
    i.conn.requestLogout(3);
    const [am] = i.take();
    expect(am.opcode).to.equal(TOp.AsyncMessage);
    expect(am.bhs[36]).to.equal(1);
  });

  it('regression: Data-Out with a wrong DataSN ends that task with CHECK CONDITION, the connection stays (iSCSIDataSnInvalid)', async () => {
    const { target, ram, iqn } = ramTarget();
    const i = new TestInitiator(target);
    i.loginNormal(iqn, [
      ['InitialR2T', 'Yes'],
      ['ImmediateData', 'No'],
    ]);
    i.scsi(WRITE10(0, 2), { write: new Uint8Array(1024) });
    const [r2t] = i.take();
    i.dataOut(r2t.u32(16), r2t.u32(20), 27, 0, new Uint8Array(512).fill(1), false);
    const [rsp] = i.take();
    expect(rsp.opcode).to.equal(TOp.ScsiResponse);
    expect(rsp.bhs[3]).to.equal(0x02);
    expect(rsp.data[2 + 2] & 0x0f, 'ABORTED COMMAND').to.equal(0x0b);
    expect(ram.data[0]).to.equal(0);
    expect(i.closed).to.equal(false);
    i.scsi([0, 0, 0, 0, 0, 0]);
    await tick();
    expect(i.take()[0].bhs[3]).to.equal(0);
  });

  it('closes the CmdSN window while commands are in flight and reopens it as they finish', async () => {
    const { target, iqn } = ramTarget();
    const i = new TestInitiator(target);
    i.loginNormal(iqn, [
      ['InitialR2T', 'Yes'],
      ['ImmediateData', 'No'],
    ]);
    const r2ts = [];
    for (let n = 0; n < 16; n++) {
      i.scsi(WRITE10(n, 1), { write: new Uint8Array(512) });
      r2ts.push(...i.take());
    }
    const last = r2ts[15];
    expect(last.u32(32), 'MaxCmdSN = ExpCmdSN - 1: window closed').to.equal((last.u32(28) - 1) >>> 0);
    i.scsi([0, 0, 0, 0, 0, 0]);
    await tick();
    expect(i.take(), 'a command beyond MaxCmdSN is ignored').to.deep.equal([]);
    i.dataOut(r2ts[0].u32(16), r2ts[0].u32(20), 0, 0, new Uint8Array(512), true);
    await tick();
    const [rsp] = i.take();
    expect(rsp.opcode).to.equal(TOp.ScsiResponse);
    expect(rsp.u32(32)).to.equal(rsp.u32(28));
  });

  it('holds unsolicited Data-Out of a command that waits for its CmdSN on another connection (MC/S)', async () => {
    const { target, ram, iqn } = ramTarget();
    const a = new TestInitiator(target);
    const r = a.loginNormal(
      iqn,
      [
        ['MaxConnections', '2'],
        ['InitialR2T', 'No'],
        ['ImmediateData', 'No'],
      ],
      4,
    );
    const tsih = (r.bhs[14] << 8) | r.bhs[15];
    const b = new TestInitiator(target);
    b.login(
      [
        ['InitiatorName', 'iqn.test:init'],
        ['TargetName', iqn],
      ],
      1,
      3,
      true,
      4,
      tsih,
      1,
    );
    // CmdSN 2 (a write with its unsolicited data) reaches connection a before CmdSN 1 reaches b.
    a.cmdSn = 2;
    const itt = a.itt;
    a.scsi(WRITE10(5, 1), { write: new Uint8Array(512), unsolicited: true });
    a.dataOut(itt, 0xffffffff, 0, 0, new Uint8Array(512).fill(0x42), true);
    expect(a.take()).to.deep.equal([]);
    b.cmdSn = 1;
    b.scsi([0, 0, 0, 0, 0, 0]);
    await tick();
    expect(b.take().map((g) => g.opcode)).to.deep.equal([TOp.ScsiResponse]);
    const [rsp] = a.take();
    expect(rsp.opcode).to.equal(TOp.ScsiResponse);
    expect(rsp.bhs[3]).to.equal(0);
    expect(ram.data[5 * 512]).to.equal(0x42);
  });
});
