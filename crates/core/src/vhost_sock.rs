//! The vhost-user control socket: a nonblocking Unix stream socket (server or client),
//! messages with file descriptors (SCM_RIGHTS), eventfds, and guest memory mapped from a
//! region's fd. Node cannot pass fds over Unix sockets, so all of this is native; callers
//! poll `recv` from a reactor poller and it never blocks.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};

use crate::mem::{Mapping, PAGE_4K};
use crate::vhost_msg::{self, Msg, HEADER_SIZE, MAX_FDS, MAX_PAYLOAD};
use crate::{Error, Result};

fn owned(fd: RawFd, op: &'static str) -> Result<OwnedFd> {
    if fd < 0 {
        return Err(Error::last_os(op));
    }
    // SAFETY: fd was just returned by the kernel and belongs to nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn sockaddr(path: &str) -> Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data; all-zero is valid.
    let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    a.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let b = path.as_bytes();
    if b.is_empty() || b.len() >= a.sun_path.len() || b.contains(&0) {
        return Err(Error::InvalidArgument(format!(
            "socket path {path:?} must be 1..{} bytes without NUL",
            a.sun_path.len()
        )));
    }
    for (d, s) in a.sun_path.iter_mut().zip(b) {
        *d = *s as libc::c_char;
    }
    let len = std::mem::size_of::<libc::sa_family_t>() + b.len() + 1;
    Ok((a, len as libc::socklen_t))
}

fn stream_socket() -> Result<OwnedFd> {
    // SAFETY: plain syscall, no pointers.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    owned(fd, "socket")
}

/// Whether a process listens on the socket at `addr`: a nonblocking connect succeeds (or finds
/// the backlog full) only then; a file nobody listens on refuses it. The probe connection is
/// closed at once; the listener sees a frontend that hangs up before its first message.
fn listening(addr: &libc::sockaddr_un, len: libc::socklen_t) -> Result<bool> {
    let fd = stream_socket()?;
    // SAFETY: addr is a valid sockaddr_un of `len` bytes.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (addr as *const libc::sockaddr_un).cast(),
            len,
        )
    };
    if r == 0 {
        return Ok(true);
    }
    match std::io::Error::last_os_error().raw_os_error().unwrap_or(0) {
        libc::EAGAIN | libc::EINPROGRESS => Ok(true),
        libc::ECONNREFUSED | libc::ENOENT => Ok(false),
        _ => Err(Error::last_os("connect (probing an existing socket file)")),
    }
}

/// A listening vhost-user socket (the backend side, SPDK's default mode).
pub struct Listener {
    fd: OwnedFd,
    path: String,
}

impl Listener {
    /// Bind and listen on `path`, replacing a stale socket file left by a dead process of this
    /// user. A socket file some live process still listens on is refused (EADDRINUSE): unlinking
    /// it would silently take its path over, and its frontends would reconnect to the wrong
    /// backend. A socket file another user owns is refused too (EPERM) and left alone. The file
    /// is made mode 0600 (only this user's frontends may connect: a frontend that connects can
    /// read and write the disk) between bind and listen, so no connection is ever accepted
    /// under a wider mode.
    pub fn bind(path: &str) -> Result<Listener> {
        let (addr, len) = sockaddr(path)?;
        if let Ok(meta) = std::fs::symlink_metadata(path) {
            use std::os::unix::fs::{FileTypeExt, MetadataExt};
            if !meta.file_type().is_socket() {
                return Err(Error::InvalidArgument(format!(
                    "{path} exists and is not a socket"
                )));
            }
            // SAFETY: plain syscall, no arguments.
            let uid = unsafe { libc::geteuid() };
            if meta.uid() != uid {
                return Err(Error::Os {
                    op: "bind (the socket file belongs to another user)",
                    errno: libc::EPERM,
                });
            }
            if listening(&addr, len)? {
                return Err(Error::Os {
                    op: "bind (a live listener owns the socket file)",
                    errno: libc::EADDRINUSE,
                });
            }
            let _ = std::fs::remove_file(path);
        }
        let fd = stream_socket()?;
        // SAFETY: addr is a valid sockaddr_un of `len` bytes.
        if unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            )
        } != 0
        {
            return Err(Error::last_os("bind"));
        }
        {
            use std::os::unix::fs::PermissionsExt;
            if let Err(e) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)) {
                let _ = std::fs::remove_file(path);
                return Err(Error::Os {
                    op: "chmod (the new socket file)",
                    errno: e.raw_os_error().unwrap_or(libc::EIO),
                });
            }
        }
        // SAFETY: plain syscall on an open socket.
        if unsafe { libc::listen(fd.as_raw_fd(), 16) } != 0 {
            return Err(Error::last_os("listen"));
        }
        Ok(Listener {
            fd,
            path: path.to_owned(),
        })
    }

    /// A pending connection, or None when there is none (never blocks).
    pub fn accept(&self) -> Result<Option<Conn>> {
        // SAFETY: null address arguments are allowed; the flags make the new fd nonblocking.
        let fd = unsafe {
            libc::accept4(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd < 0 {
            let e = Error::last_os("accept4");
            return match e {
                Error::Os { errno, .. } if errno == libc::EAGAIN || errno == libc::EINTR => {
                    Ok(None)
                }
                e => Err(e),
            };
        }
        Ok(Some(Conn::new(owned(fd, "accept4")?)))
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What one `recv` produced.
pub enum Recv {
    /// A whole message and the fds that came with it (the caller owns them).
    Message(Msg, Vec<OwnedFd>),
    /// Nothing complete yet.
    Pending,
    /// The peer closed the connection.
    Closed,
}

/// One vhost-user connection. Partial messages are buffered across `recv` calls.
pub struct Conn {
    fd: OwnedFd,
    buf: Vec<u8>,
    fds: Vec<OwnedFd>,
    /// Header + payload size of the message being received (0 until the header is in).
    want: usize,
}

const CMSG_SPACE: usize = 128;

impl Conn {
    fn new(fd: OwnedFd) -> Conn {
        Conn {
            fd,
            buf: Vec::with_capacity(HEADER_SIZE + MAX_PAYLOAD),
            fds: Vec::new(),
            want: 0,
        }
    }

    /// Connect to a backend listening on `path` (the frontend / virtio-user side).
    pub fn connect(path: &str) -> Result<Conn> {
        let (addr, len) = sockaddr(path)?;
        let fd = stream_socket()?;
        // SAFETY: addr is a valid sockaddr_un of `len` bytes.
        let r = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_un).cast(),
                len,
            )
        };
        if r != 0 {
            return Err(Error::last_os("connect"));
        }
        Ok(Conn::new(fd))
    }

    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Read into `buf[len..upto]` with recvmsg, collecting any fds. Ok(None) = would block,
    /// Ok(Some(0)) = peer closed.
    fn read_some(&mut self, upto: usize) -> Result<Option<usize>> {
        let start = self.buf.len();
        self.buf.resize(upto, 0);
        let mut iov = libc::iovec {
            // SAFETY: start < upto = buf.len(), so the pointer is inside the buffer.
            iov_base: unsafe { self.buf.as_mut_ptr().add(start) }.cast(),
            iov_len: upto - start,
        };
        let mut cbuf = [0u64; CMSG_SPACE / 8];
        // SAFETY: msghdr is plain data; all-zero is valid.
        let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
        mh.msg_iov = &mut iov;
        mh.msg_iovlen = 1;
        mh.msg_control = cbuf.as_mut_ptr().cast();
        mh.msg_controllen = CMSG_SPACE as _;
        let n = recvmsg(self.fd.as_raw_fd(), &mut mh);
        let got = if n < 0 { 0 } else { n as usize };
        self.buf.truncate(start + got);
        let truncated = mh.msg_flags & libc::MSG_CTRUNC != 0;
        let received = take_fds(&mh);
        let over = self.fds.len() + received.len() > MAX_FDS;
        self.fds.extend(received);
        if truncated || over {
            return Err(Error::Protocol(
                "vhost-user protocol: too many file descriptors in one message".into(),
            ));
        }
        if n < 0 {
            let e = Error::last_os("recvmsg");
            return match e {
                Error::Os { errno, .. } if errno == libc::EAGAIN || errno == libc::EINTR => {
                    Ok(None)
                }
                e => Err(e),
            };
        }
        Ok(Some(got))
    }

    /// Receive the next whole message if it is available (never blocks). A protocol error
    /// is returned as Err: the caller should drop the connection.
    pub fn recv(&mut self) -> Result<Recv> {
        // Bounded: each pass either completes a stage or returns.
        for _ in 0..4 {
            let upto = if self.want == 0 {
                HEADER_SIZE
            } else {
                self.want
            };
            if self.buf.len() < upto {
                match self.read_some(upto)? {
                    None => return Ok(Recv::Pending),
                    Some(0) => return Ok(Recv::Closed),
                    Some(_) => {}
                }
                if self.buf.len() < upto {
                    return Ok(Recv::Pending);
                }
            }
            if self.want == 0 {
                let (_, _, size) = vhost_msg::decode_header(&self.buf)?;
                self.want = HEADER_SIZE + size;
                if size > 0 {
                    continue;
                }
            }
            let (request, flags, _) = vhost_msg::decode_header(&self.buf)?;
            let fds = std::mem::take(&mut self.fds);
            let body = vhost_msg::decode_body(request, flags, &self.buf[HEADER_SIZE..], fds.len());
            self.buf.clear();
            self.want = 0;
            return Ok(Recv::Message(
                Msg {
                    request,
                    flags,
                    body: body?,
                },
                fds,
            ));
        }
        Ok(Recv::Pending)
    }

    /// Send a message with `fds` attached (borrowed: the caller keeps them). Never waits for a
    /// peer that does not read: a full socket is EAGAIN (after at most ~10 ms when a message is
    /// half sent), and the caller should drop the connection, since the stream is then unusable.
    pub fn send(&self, m: &Msg, fds: &[RawFd]) -> Result<()> {
        if fds.len() > MAX_FDS {
            return Err(Error::InvalidArgument(format!(
                "{} fds exceed {MAX_FDS}",
                fds.len()
            )));
        }
        let bytes = vhost_msg::encode(m)?;
        let mut off = 0;
        let mut attach = fds;
        let mut waits = 0;
        while waits <= 10 {
            let n = sendmsg(self.fd.as_raw_fd(), &bytes[off..], attach);
            if n >= 0 {
                off += n as usize;
                attach = &[];
                if off == bytes.len() {
                    return Ok(());
                }
                continue;
            }
            match Error::last_os("sendmsg") {
                Error::Os { errno, .. } if errno == libc::EINTR => {}
                Error::Os { errno, .. } if errno == libc::EAGAIN && off > 0 => {
                    wait_writable(self.fd.as_raw_fd());
                    waits += 1;
                }
                e => return Err(e),
            }
        }
        Err(Error::Os {
            op: "sendmsg",
            errno: libc::EAGAIN,
        })
    }
}

fn wait_writable(fd: RawFd) {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: p is one valid pollfd.
    unsafe { libc::poll(&mut p, 1, 1) };
}

fn recvmsg(fd: RawFd, mh: &mut libc::msghdr) -> isize {
    // SAFETY: mh points at a live iovec and control buffer sized as declared in it.
    unsafe { libc::recvmsg(fd, mh, libc::MSG_CMSG_CLOEXEC | libc::MSG_DONTWAIT) }
}

/// Take ownership of every SCM_RIGHTS fd in a received message.
fn take_fds(mh: &libc::msghdr) -> Vec<OwnedFd> {
    let mut out = Vec::new();
    // SAFETY: mh was filled by recvmsg; the CMSG_* macros walk only its control buffer.
    let mut c = unsafe { libc::CMSG_FIRSTHDR(mh) };
    let mut guard = 0;
    while !c.is_null() && guard < 16 {
        guard += 1;
        // SAFETY: c is a valid cmsghdr inside the control buffer (CMSG_FIRSTHDR/NXTHDR).
        let (level, kind, len) = unsafe { ((*c).cmsg_level, (*c).cmsg_type, (*c).cmsg_len) };
        if level == libc::SOL_SOCKET && kind == libc::SCM_RIGHTS {
            // SAFETY: CMSG_LEN(0) is a pure computation.
            let header = unsafe { libc::CMSG_LEN(0) } as usize;
            let n = len.saturating_sub(header) / std::mem::size_of::<RawFd>();
            // SAFETY: the data of an SCM_RIGHTS cmsg is n ints; read unaligned to be safe.
            let data = unsafe { libc::CMSG_DATA(c) } as *const RawFd;
            for i in 0..n {
                // SAFETY: i < n ints inside this cmsg's data.
                let fd = unsafe { data.add(i).read_unaligned() };
                if fd >= 0 {
                    // SAFETY: the kernel installed this fd for us; nobody else owns it.
                    out.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        }
        // SAFETY: as for CMSG_FIRSTHDR.
        c = unsafe { libc::CMSG_NXTHDR(mh, c) };
    }
    out
}

fn sendmsg(fd: RawFd, bytes: &[u8], fds: &[RawFd]) -> isize {
    let mut iov = libc::iovec {
        iov_base: bytes.as_ptr() as *mut libc::c_void,
        iov_len: bytes.len(),
    };
    let mut cbuf = [0u64; CMSG_SPACE / 8];
    // SAFETY: msghdr is plain data; all-zero is valid.
    let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
    mh.msg_iov = &mut iov;
    mh.msg_iovlen = 1;
    if !fds.is_empty() {
        let data_len = std::mem::size_of_val(fds) as u32;
        // SAFETY: pure computation.
        let space = unsafe { libc::CMSG_SPACE(data_len) } as usize;
        mh.msg_control = cbuf.as_mut_ptr().cast();
        mh.msg_controllen = space as _;
        // SAFETY: the control buffer is CMSG_SPACE (128) >= space bytes (MAX_FDS ints).
        unsafe {
            let c = libc::CMSG_FIRSTHDR(&mh);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(data_len) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr(), libc::CMSG_DATA(c).cast(), fds.len());
        }
    }
    // SAFETY: mh points at live buffers for the duration of the call.
    unsafe { libc::sendmsg(fd, &mh, libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT) }
}

/// A nonblocking eventfd (kick/call/err notifiers).
pub fn eventfd() -> Result<OwnedFd> {
    // SAFETY: plain syscall.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    owned(fd, "eventfd")
}

/// Read and reset an eventfd's counter: 0 when it was not signalled (never blocks).
pub fn eventfd_read(fd: RawFd) -> Result<u64> {
    let mut v = 0u64;
    // SAFETY: reads 8 bytes into v.
    let n = unsafe { libc::read(fd, (&mut v as *mut u64).cast(), 8) };
    if n == 8 {
        return Ok(v);
    }
    match Error::last_os("read") {
        Error::Os { errno, .. } if errno == libc::EAGAIN => Ok(0),
        e => Err(e),
    }
}

/// Add `v` to an eventfd's counter (signals a call/kick).
pub fn eventfd_write(fd: RawFd, v: u64) -> Result<()> {
    // SAFETY: writes the 8 bytes of v.
    let n = unsafe { libc::write(fd, (&v as *const u64).cast(), 8) };
    if n == 8 {
        return Ok(());
    }
    match Error::last_os("write") {
        // The counter is saturated: the peer has a pending notification anyway.
        Error::Os { errno, .. } if errno == libc::EAGAIN => Ok(()),
        e => Err(e),
    }
}

/// Close an fd the caller owns (one received in a message).
pub fn close(fd: RawFd) -> Result<()> {
    // SAFETY: closing an fd the caller owns and will not use again.
    if unsafe { libc::close(fd) } != 0 {
        return Err(Error::last_os("close"));
    }
    Ok(())
}

/// Hand an owned fd to a caller that will close it with `close`.
pub fn into_raw(fd: OwnedFd) -> RawFd {
    fd.into_raw_fd()
}

/// Size of the file behind `fd` (memfd, hugetlbfs or regular file).
fn fd_size(fd: RawFd) -> Result<u64> {
    // SAFETY: stat is plain data; all-zero is a valid value to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid out-parameter; a bad fd just fails with EBADF.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(Error::last_os("fstat"));
    }
    Ok(st.st_size as u64)
}

/// Map `size` bytes of a guest memory region's fd at `offset`, shared and writable.
/// Returns the mapping and the delta of the region's first byte inside it (non-zero when
/// `offset` is not page aligned). The fd is reopened through /proc, so the caller still
/// owns (and closes) `fd`.
pub fn map_region(fd: RawFd, offset: u64, size: u64) -> Result<(Mapping, usize)> {
    let delta = (offset % PAGE_4K as u64) as usize;
    let len = size
        .checked_add(delta as u64)
        .filter(|&l| l > 0 && l <= (1u64 << 46))
        .ok_or_else(|| Error::InvalidArgument(format!("region size {size} out of range")))?;
    // A region reaching past the end of its file would fault (SIGBUS) on first touch.
    let end = offset
        .checked_add(size)
        .ok_or_else(|| Error::InvalidArgument("region end overflows".into()))?;
    let file = fd_size(fd)?;
    if end > file {
        return Err(Error::InvalidArgument(format!(
            "region [{offset}, {end}) reaches past the end of its file ({file} bytes)"
        )));
    }
    let path = format!("/proc/self/fd/{fd}");
    CString::new(path.clone()).map_err(|_| Error::InvalidArgument("bad fd".into()))?;
    let m = Mapping::file(&path, offset - delta as u64, len as usize)?;
    Ok((m, delta))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::HugepagePolicy;
    use crate::vhost_msg::{req, Body, MemRegion};

    fn pair() -> (Listener, Conn, Conn) {
        let path = format!(
            "/tmp/storkit-vhost-test-{}-{:?}.sock",
            std::process::id(),
            std::thread::current().id()
        );
        let l = Listener::bind(&path).unwrap();
        let c = Conn::connect(&path).unwrap();
        let s = l.accept().unwrap().unwrap();
        (l, c, s)
    }

    #[test]
    fn bind_refuses_a_live_listener_and_replaces_a_stale_file() {
        let path = format!("/tmp/storkit-vhost-test-live-{}.sock", std::process::id());
        let _ = std::fs::remove_file(&path);
        let live = Listener::bind(&path).unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "the socket file is this user's only");
        }
        match Listener::bind(&path) {
            Err(Error::Os { errno, .. }) => assert_eq!(errno, libc::EADDRINUSE),
            Err(e) => panic!("expected EADDRINUSE, got {e}"),
            Ok(_) => panic!("a second listener took over a live socket file"),
        }
        // The refused bind left the live listener's file in place: it still takes connections.
        let _c = Conn::connect(&path).unwrap();
        assert!(live.accept().unwrap().is_some());
        // A socket file nobody listens on any more (its owner died without unlinking it).
        let std_l = std::os::unix::net::UnixListener::bind(format!("{path}.stale")).unwrap();
        drop(std_l);
        let stale = format!("{path}.stale");
        assert!(std::fs::symlink_metadata(&stale).is_ok());
        let again = Listener::bind(&stale).unwrap();
        let _c2 = Conn::connect(&stale).unwrap();
        assert!(again.accept().unwrap().is_some());
        drop(again);
        drop(live);
        assert!(std::fs::symlink_metadata(&path).is_err());
    }

    fn recv_one(c: &mut Conn) -> (Msg, Vec<OwnedFd>) {
        for _ in 0..1000 {
            match c.recv().unwrap() {
                Recv::Message(m, f) => return (m, f),
                Recv::Pending => std::thread::sleep(std::time::Duration::from_millis(1)),
                Recv::Closed => panic!("closed"),
            }
        }
        panic!("no message");
    }

    #[test]
    fn messages_with_fds_and_shared_memory() {
        let (_l, c, mut s) = pair();
        assert!(matches!(s.recv().unwrap(), Recv::Pending));
        let mem = Mapping::dma(1 << 20, HugepagePolicy::Never).unwrap();
        // SAFETY: in-bounds write to the live mapping.
        unsafe { mem.as_ptr().add(8192 + 7).write(0x5a) };
        let region = MemRegion {
            guest_phys_addr: 0,
            memory_size: 1 << 20,
            userspace_addr: mem.as_ptr() as u64,
            mmap_offset: 0,
        };
        let msg = Msg {
            request: req::SET_MEM_TABLE,
            flags: 0,
            body: Body::Memory(vec![region]),
        };
        c.send(&msg, &[mem.fd()]).unwrap();
        let (got, fds) = recv_one(&mut s);
        assert_eq!(got.body, msg.body);
        assert_eq!(fds.len(), 1);
        let (m, delta) = map_region(fds[0].as_raw_fd(), 8192, 4096).unwrap();
        assert_eq!(delta, 0);
        // SAFETY: offset 7 of the 4 KiB mapping.
        assert_eq!(unsafe { m.as_ptr().add(7).read() }, 0x5a);
        let too_big = map_region(fds[0].as_raw_fd(), 8192, 1 << 21).unwrap_err();
        assert_eq!(too_big.code(), "EINVAL");
        let (m2, delta2) = map_region(fds[0].as_raw_fd(), 8192 + 7, 16).unwrap();
        assert_eq!(delta2, 7);
        // SAFETY: offset 7 of the mapping is the region's first byte.
        assert_eq!(unsafe { m2.as_ptr().add(delta2).read() }, 0x5a);
        drop(c);
        assert!(matches!(s.recv().unwrap(), Recv::Closed));
    }

    #[test]
    fn eventfds_count_and_never_block() {
        let e = eventfd().unwrap();
        assert_eq!(eventfd_read(e.as_raw_fd()).unwrap(), 0);
        eventfd_write(e.as_raw_fd(), 2).unwrap();
        eventfd_write(e.as_raw_fd(), 3).unwrap();
        assert_eq!(eventfd_read(e.as_raw_fd()).unwrap(), 5);
        assert_eq!(eventfd_read(e.as_raw_fd()).unwrap(), 0);
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        let (_l, c, mut s) = pair();
        let junk = [0xffu8; 64];
        assert_eq!(sendmsg(c.raw_fd(), &junk, &[]), 64);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(s.recv().err().unwrap().code(), "EPROTO");
    }

    #[test]
    fn split_messages_are_reassembled() {
        let (_l, c, mut s) = pair();
        let msg = Msg {
            request: req::SET_VRING_NUM,
            flags: vhost_msg::FLAG_VERSION,
            body: Body::State { index: 0, num: 128 },
        };
        let bytes = vhost_msg::encode(&msg).unwrap();
        for b in &bytes {
            assert_eq!(sendmsg(c.raw_fd(), std::slice::from_ref(b), &[]), 1);
            if let Recv::Message(m, _) = s.recv().unwrap() {
                assert_eq!(m, msg);
                return;
            }
        }
        let (m, _) = recv_one(&mut s);
        assert_eq!(m, msg);
    }
}
