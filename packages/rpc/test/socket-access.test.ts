// Who may reach the RPC server: the Unix socket file is the control plane's only access control
// (SPDK's RPC has no authentication), so it is created 0600 and a path that belongs to someone
// else is never taken over. Each check is tried by a client that must be refused, and where that
// is not obvious the same client is shown to get in once the guard is lifted.
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { expect } from 'chai';

import { RpcClient, RpcServer, registerBuiltins } from '../src/index.js';

const NOBODY = 65534;

/** Connect to `path` as another user (uid/gid 65534) from a child node; resolves with 'connected' or the errno code. */
function connectAs(uid: number, path: string): Promise<string> {
  const code = `const s=require('net').connect(${JSON.stringify(path)});s.on('connect',()=>{console.log('connected');s.destroy()});s.on('error',(e)=>console.log(e.code))`;
  return new Promise((res, rej) =>
    // cwd '/': the child needs nothing from the checkout, which that user may not be able to read.
    execFile(process.execPath, ['-e', code], { uid, gid: uid, cwd: '/' }, (err, out, errOut) =>
      err ? rej(new Error(`${err.message}\n${errOut}`)) : res(out.trim()),
    ),
  );
}

/** A socket file nobody listens on: its process exits without closing (and unlinking) it. */
function staleSocket(path: string): Promise<void> {
  const code = `require('net').createServer().listen(${JSON.stringify(path)},()=>process.exit(0))`;
  return new Promise((res, rej) =>
    execFile(process.execPath, ['-e', code], (err) => (err ? rej(err) : res())),
  );
}

function server(mode?: number): RpcServer {
  const s = new RpcServer({ socketMode: mode });
  registerBuiltins(s, { version: 'storkit test', fields: { major: 0, minor: 0, patch: 0, suffix: '' } });
  return s;
}

describe('rpc: who may reach the Unix socket', function () {
  this.timeout(30000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'storkit-rpc-access-'));
    // The directory is searchable by everyone, so only the socket's own mode keeps others out.
    chmodSync(dir, 0o755);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is created 0600: another user is refused (EACCES), the owner gets in, and 0666 would let the other user in', async () => {
    expect(process.getuid?.(), 'these checks need root, to act as another user').to.equal(0);
    const path = join(dir, 'rpc.sock');
    const s = server();
    await s.listenUnix(path);
    try {
      expect(statSync(path).mode & 0o777).to.equal(0o600);
      expect(await connectAs(NOBODY, path)).to.equal('EACCES');
      const c = await RpcClient.connect(path);
      expect(await c.call('spdk_get_version')).to.deep.include({ version: 'storkit test' });
      c.close();
      // The refusal above is the file mode's doing: widen it and the same client connects.
      chmodSync(path, 0o666);
      expect(await connectAs(NOBODY, path)).to.equal('connected');
    } finally {
      await s.close();
    }
  });

  it('takes another mode when asked (0660: the group may connect)', async () => {
    const path = join(dir, 'rpc.sock');
    const s = server(0o660);
    await s.listenUnix(path);
    expect(statSync(path).mode & 0o777).to.equal(0o660);
    await s.close();
    expect(() => new RpcServer({ socketMode: 0o1777 })).to.throw(RangeError, /not a permission mode/);
  });

  it('never takes over a socket file another user owns, even a stale one, and leaves it in place', async () => {
    const path = join(dir, 'theirs.sock');
    await staleSocket(path);
    chownSync(path, NOBODY, NOBODY);
    const s = server();
    let err: NodeJS.ErrnoException | undefined;
    await s.listenUnix(path).catch((e) => (err = e));
    expect(err?.code).to.equal('EPERM');
    expect(err?.message).to.match(/owned by uid 65534.*refusing to replace it/);
    expect(statSync(path).uid).to.equal(NOBODY);
    // The same stale file owned by this user is replaced (so the refusal above is the owner check).
    chownSync(path, 0, 0);
    await s.listenUnix(path);
    expect((await connectAs(0, path)) === 'connected').to.equal(true);
    await s.close();
  });

  it('refuses a path that is not a socket (a file, or a symlink planted there) and leaves it alone', async () => {
    const file = join(dir, 'file');
    writeFileSync(file, 'precious');
    const link = join(dir, 'link.sock');
    symlinkSync(file, link);
    for (const p of [file, link]) {
      const s = server();
      let err: NodeJS.ErrnoException | undefined;
      await s.listenUnix(p).catch((e) => (err = e));
      expect(err?.code, p).to.equal('EEXIST');
      expect(err?.message).to.match(/exists and is not a socket/);
    }
    expect(statSync(file).isFile()).to.equal(true);
  });
});
