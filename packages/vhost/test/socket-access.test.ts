// Who may reach a vhost controller: a frontend that connects to its socket can map a disk into a
// VM and read and write it, so the socket file is made 0600 and a path another user owns is never
// taken over. Each check is tried by a client that must be refused; the refusal is shown to be the
// file mode's doing by widening it and letting the same client in.
import { execFile } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { RamBackend } from '@storkit/block/testing';
import { expect } from 'chai';

import { VhostTarget } from '../src/index.js';
import { harness, sockPath } from './helpers.js';

const NOBODY = 65534;

/** Connect to `path` from a child node running as `uid`; resolves with 'connected' or the errno code. */
function connectAs(uid: number, path: string): Promise<string> {
  const code = `const s=require('net').connect(${JSON.stringify(path)});s.on('connect',()=>{console.log('connected');s.destroy()});s.on('error',(e)=>console.log(e.code))`;
  return new Promise((res, rej) =>
    execFile(process.execPath, ['-e', code], { uid, gid: uid, cwd: '/' }, (err, out, errOut) =>
      err ? rej(new Error(`${err.message}\n${errOut}`)) : res(out.trim()),
    ),
  );
}

function errCode(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return `${(e as { code: string }).code}: ${(e as Error).message}`;
  }
  return 'none';
}

describe('vhost: who may reach a controller socket', function () {
  this.timeout(30000);

  it('is created 0600: another user is refused (EACCES), 0666 would let them in; a socket of another user is never taken over', async () => {
    expect(process.getuid?.(), 'these checks need root, to act as another user').to.equal(0);
    const h = harness();
    const dir = dirname(sockPath('access')).concat(`/storkit-vhost-access-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    // Searchable by everyone: only the socket's own mode keeps others out.
    chmodSync(dir, 0o755);
    const bdevs = new Map([
      ['Malloc0', new RamBackend({ name: 'Malloc0', blockSize: 512, numBlocks: 2048 })],
    ]);
    const t = new VhostTarget({ socketDir: dir, lookupBdev: (n) => bdevs.get(n) });
    try {
      t.vhost_create_blk_controller({ ctrlr: 'vhost.0', dev_name: 'Malloc0' });
      const path = join(dir, 'vhost.0');
      expect(statSync(path).mode & 0o777).to.equal(0o600);
      expect(await connectAs(NOBODY, path)).to.equal('EACCES');
      expect(await connectAs(0, path)).to.equal('connected');
      chmodSync(path, 0o666);
      expect(await connectAs(NOBODY, path)).to.equal('connected');
      t.vhost_delete_controller({ ctrlr: 'vhost.0' });

      // A stale socket file (its process died without unlinking it) that belongs to another user.
      const theirs = join(dir, 'vhost.1');
      await new Promise((res, rej) =>
        execFile(
          process.execPath,
          ['-e', `require('net').createServer().listen(${JSON.stringify(theirs)},()=>process.exit(0))`],
          (err) => (err ? rej(err) : res(0)),
        ),
      );
      chownSync(theirs, NOBODY, NOBODY);
      expect(
        errCode(() => t.vhost_create_blk_controller({ ctrlr: 'vhost.1', dev_name: 'Malloc0' })),
      ).to.match(/^EPERM: .*belongs to another user/);
      expect(statSync(theirs).uid).to.equal(NOBODY);
      // Owned by this user, the same stale file is replaced: the refusal above is the owner check.
      chownSync(theirs, 0, 0);
      t.vhost_create_blk_controller({ ctrlr: 'vhost.1', dev_name: 'Malloc0' });
      expect(statSync(theirs).mode & 0o777).to.equal(0o600);
    } finally {
      t.close();
      // The harness's reactor is the process's until closed: later test files make their own.
      h.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
