//! A polled socket group (SPDK's sock/posix model): one level-triggered epoll set holding
//! listening sockets and their connections, polled with timeout 0 from a reactor poller.
//!
//! Node's `net` reads sockets from libuv callbacks, which a reactor only serves between loop
//! slices, and its stream machinery costs CPU per I/O. Here the reactor asks the kernel itself:
//! `poll` reports events into a caller-owned i32 array (accepting new connections natively on the
//! way), `recv` and `send` move bytes between the kernel and caller buffers. Nothing allocates per
//! call once the group has grown to its working set.
//!
//! A reactor that sleeps must still hear about its sockets: [`Waiter`] is a thread blocked in
//! epoll_wait on the group's epoll fd, armed one-shot just before the reactor sleeps.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::thread::JoinHandle;

use crate::net::{self, Listener};
use crate::{Error, Result};

/// Event flags reported by [`SockGroup::poll`].
pub const EV_IN: i32 = 1;
/// The socket can take more bytes (reported only while write interest is on).
pub const EV_OUT: i32 = 2;
/// The peer hung up (both directions, or reading hit the end after EPOLLRDHUP).
pub const EV_HUP: i32 = 4;
/// The socket has a pending error (reset, unreachable, ...): recv reports which.
pub const EV_ERR: i32 = 8;
/// `fd` is a connection just accepted on the listener in the third word.
pub const EV_ACCEPT: i32 = 16;
/// i32 words per event in the caller's array: fd, flags, listener fd (EV_ACCEPT) or 0.
pub const EVENT_WORDS: usize = 3;

/// The negative errno `recv`/`send` return when the socket has nothing (or no room) now.
pub const EAGAIN: isize = -(libc::EAGAIN as isize);

const READ_EVENTS: u32 = (libc::EPOLLIN | libc::EPOLLRDHUP) as u32;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Free,
    Listener,
    Conn,
}

/// One epoll set with its listeners and connections; closing the group closes them all.
pub struct SockGroup {
    epfd: i32,
    /// What each fd is (indexed by fd): a recv or send on an fd the group does not own is refused.
    kinds: Vec<Kind>,
    listeners: HashSet<i32>,
    conns: HashSet<i32>,
    events: Vec<libc::epoll_event>,
    waiter: Option<Waiter>,
}

fn cvt(rc: i32, op: &'static str) -> Result<i32> {
    if rc < 0 {
        Err(Error::last_os(op))
    } else {
        Ok(rc)
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn epoll_ctl(epfd: i32, op: i32, fd: i32, events: u32) -> Result<()> {
    let mut ev = libc::epoll_event {
        events,
        u64: fd as u64,
    };
    // SAFETY: ev is a valid epoll_event for the duration of the call.
    let rc = unsafe { libc::epoll_ctl(epfd, op, fd, &mut ev) };
    cvt(rc, "epoll_ctl")?;
    Ok(())
}

fn epoll_create() -> Result<i32> {
    // SAFETY: epoll_create1 has no memory-safety preconditions.
    let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    cvt(fd, "epoll_create1")
}

/// epoll_wait into `evs` (its whole capacity); EINTR counts as no events.
fn epoll_wait(epfd: i32, evs: &mut Vec<libc::epoll_event>, timeout_ms: i32) -> Result<usize> {
    evs.clear();
    let cap = evs.capacity().min(i32::MAX as usize) as i32;
    // SAFETY: the kernel writes at most `cap` entries into the vector's spare capacity,
    // and set_len below covers only the ones it reported.
    let n = unsafe { libc::epoll_wait(epfd, evs.as_mut_ptr(), cap, timeout_ms) };
    if n < 0 {
        return if errno() == libc::EINTR {
            Ok(0)
        } else {
            Err(Error::last_os("epoll_wait"))
        };
    }
    // SAFETY: the kernel initialised the first n entries.
    unsafe { evs.set_len(n as usize) };
    Ok(n as usize)
}

fn set_nodelay(fd: i32) {
    // A failure only costs latency.
    let _ = net::set_int_opt(
        fd,
        libc::IPPROTO_TCP,
        libc::TCP_NODELAY,
        1,
        "setsockopt(TCP_NODELAY)",
    );
}

/// accept4 one pending connection: Ok(None) when the backlog is empty.
fn accept(lfd: i32) -> Result<Option<i32>> {
    loop {
        // SAFETY: null address pointers are allowed (the peer is not asked for).
        let fd = unsafe {
            libc::accept4(
                lfd,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if fd >= 0 {
            return Ok(Some(fd));
        }
        match errno() {
            libc::EINTR => continue,
            libc::EAGAIN => return Ok(None),
            // The connection died in the backlog: not the listener's failure, try the next.
            libc::ECONNABORTED | libc::EPROTO => continue,
            e => {
                return Err(Error::Os {
                    op: "accept4",
                    errno: e,
                })
            }
        }
    }
}

impl SockGroup {
    pub fn new() -> Result<SockGroup> {
        Ok(SockGroup {
            epfd: epoll_create()?,
            kinds: Vec::new(),
            listeners: HashSet::new(),
            conns: HashSet::new(),
            events: Vec::with_capacity(64),
            waiter: None,
        })
    }

    /// The group's epoll fd (readable while any member has an event).
    pub fn epoll_fd(&self) -> i32 {
        self.epfd
    }

    fn kind(&self, fd: i32) -> Kind {
        usize::try_from(fd)
            .ok()
            .and_then(|i| self.kinds.get(i).copied())
            .unwrap_or(Kind::Free)
    }

    fn set_kind(&mut self, fd: i32, k: Kind) {
        let i = fd as usize;
        if i >= self.kinds.len() {
            self.kinds.resize(i + 1, Kind::Free);
        }
        self.kinds[i] = k;
    }

    fn add(&mut self, fd: i32, kind: Kind) -> Result<()> {
        epoll_ctl(self.epfd, libc::EPOLL_CTL_ADD, fd, READ_EVENTS)?;
        self.set_kind(fd, kind);
        match kind {
            Kind::Listener => self.listeners.insert(fd),
            _ => self.conns.insert(fd),
        };
        Ok(())
    }

    /// Listen on `host:port` through an SO_REUSEPORT socket (see [`net::reuseport_listen`]),
    /// owned by the group from now on.
    pub fn listen(&mut self, host: &str, port: u16, backlog: i32) -> Result<Listener> {
        let l = net::reuseport_listen(host, port, backlog)?;
        if let Err(e) = self.add(l.fd, Kind::Listener) {
            net::close_fd(l.fd);
            return Err(e);
        }
        Ok(l)
    }

    /// Take an already connected non-blocking socket into the group (tests, handed-off fds).
    pub fn adopt(&mut self, fd: i32) -> Result<()> {
        if self.kind(fd) != Kind::Free {
            return Err(Error::InvalidArgument(format!("fd {fd} is in the group")));
        }
        self.add(fd, Kind::Conn)
    }

    /// Give a connection up without closing it: it leaves the epoll set and the group, and the
    /// fd is the caller's (to hand to another group, on another thread, with [`SockGroup::adopt`]).
    /// Write interest, if on, goes with the epoll registration; the adopter starts read-only.
    pub fn release(&mut self, fd: i32) -> Result<()> {
        if self.kind(fd) != Kind::Conn {
            return Err(Error::NotFound(format!(
                "fd {fd} is not a connection of the group"
            )));
        }
        epoll_ctl(self.epfd, libc::EPOLL_CTL_DEL, fd, 0)?;
        self.conns.remove(&fd);
        self.set_kind(fd, Kind::Free);
        Ok(())
    }

    /// Start a non-blocking connect to `addr` (TCP_NODELAY) and hold the socket as a connection
    /// with write interest on: EV_OUT reports the connect finished, [`SockGroup::connect_error`]
    /// then says how (a refusal usually also shows as EV_ERR | EV_HUP). Turn write interest off
    /// with `want_write(fd, false)` once connected.
    pub fn connect(&mut self, addr: &SocketAddr) -> Result<i32> {
        self.connect_from(addr, &net::ConnectFrom::default())
    }

    /// [`SockGroup::connect`] from a bound local address and/or with SO_PRIORITY set first.
    pub fn connect_from(&mut self, addr: &SocketAddr, from: &net::ConnectFrom) -> Result<i32> {
        let fd = net::connect_nonblocking_from(addr, from)?;
        set_nodelay(fd);
        if let Err(e) = epoll_ctl(
            self.epfd,
            libc::EPOLL_CTL_ADD,
            fd,
            READ_EVENTS | libc::EPOLLOUT as u32,
        ) {
            net::close_fd(fd);
            return Err(e);
        }
        self.set_kind(fd, Kind::Conn);
        self.conns.insert(fd);
        Ok(fd)
    }

    /// The outcome of a connect (SO_ERROR, cleared by reading it): 0 when connected, else the
    /// negative errno (-ECONNREFUSED, -ETIMEDOUT, ...). Meaningful once EV_OUT or EV_ERR came.
    pub fn connect_error(&self, fd: i32) -> isize {
        if let Err(e) = self.conn(fd) {
            return e;
        }
        match net::socket_error(fd) {
            Ok(v) => -(v as isize),
            Err(Error::Os { errno, .. }) => -(errno as isize),
            Err(_) => -(libc::EIO as isize),
        }
    }

    /// Events since the last poll, `EVENT_WORDS` words each, into `out`; returns how many.
    /// Pending connections on listeners are accepted here (as many as `out` has room for; the
    /// rest stay in the backlog for the next poll) and reported with EV_ACCEPT.
    pub fn poll(&mut self, out: &mut [i32], timeout_ms: i32) -> Result<usize> {
        let room = out.len() / EVENT_WORDS;
        if room == 0 {
            return Ok(0);
        }
        if self.events.capacity() < room {
            self.events.reserve(room - self.events.len());
        }
        let mut evs = std::mem::take(&mut self.events);
        let n = epoll_wait(self.epfd, &mut evs, timeout_ms.max(0));
        let r = n.and_then(|_| self.report(&evs, out, room));
        self.events = evs;
        r
    }

    fn report(&mut self, evs: &[libc::epoll_event], out: &mut [i32], room: usize) -> Result<usize> {
        let mut k = 0;
        for ev in evs {
            if k == room {
                break; // level-triggered: what is not reported now is reported next time
            }
            let fd = ev.u64 as i32;
            match self.kind(fd) {
                Kind::Listener => {
                    while k < room {
                        let Some(c) = accept(fd)? else { break };
                        set_nodelay(c);
                        if let Err(e) = self.add(c, Kind::Conn) {
                            net::close_fd(c);
                            return Err(e);
                        }
                        out[k * EVENT_WORDS] = c;
                        out[k * EVENT_WORDS + 1] = EV_ACCEPT;
                        out[k * EVENT_WORDS + 2] = fd;
                        k += 1;
                    }
                }
                Kind::Conn => {
                    let e = ev.events;
                    let mut f = 0;
                    if e & libc::EPOLLIN as u32 != 0 {
                        f |= EV_IN;
                    }
                    if e & libc::EPOLLOUT as u32 != 0 {
                        f |= EV_OUT;
                    }
                    if e & (libc::EPOLLHUP | libc::EPOLLRDHUP) as u32 != 0 {
                        f |= EV_HUP;
                    }
                    if e & libc::EPOLLERR as u32 != 0 {
                        f |= EV_ERR;
                    }
                    out[k * EVENT_WORDS] = fd;
                    out[k * EVENT_WORDS + 1] = f;
                    out[k * EVENT_WORDS + 2] = 0;
                    k += 1;
                }
                Kind::Free => {} // closed earlier in this batch
            }
        }
        Ok(k)
    }

    fn conn(&self, fd: i32) -> std::result::Result<(), isize> {
        if self.kind(fd) == Kind::Conn {
            Ok(())
        } else {
            Err(-(libc::EBADF as isize))
        }
    }

    /// Read into `buf`: bytes read, 0 at end of stream, or a negative errno ([`EAGAIN`] when
    /// nothing is there now, -EBADF for an fd the group does not hold as a connection).
    pub fn recv(&self, fd: i32, buf: &mut [u8]) -> isize {
        if let Err(e) = self.conn(fd) {
            return e;
        }
        loop {
            // SAFETY: buf is valid for writes of buf.len() bytes during the call.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n >= 0 {
                return n;
            }
            let e = errno();
            if e != libc::EINTR {
                return -(e as isize);
            }
        }
    }

    /// Send `buf`: bytes the kernel took (maybe fewer: turn write interest on and send the rest
    /// on EV_OUT), or a negative errno ([`EAGAIN`] when the send buffer is full).
    pub fn send(&self, fd: i32, buf: &[u8]) -> isize {
        if let Err(e) = self.conn(fd) {
            return e;
        }
        loop {
            // SAFETY: buf is valid for reads of buf.len() bytes during the call.
            let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
            if n >= 0 {
                return n;
            }
            let e = errno();
            if e != libc::EINTR {
                return -(e as isize);
            }
        }
    }

    /// Send several buffers in one sendmsg (gathered in order), as [`SockGroup::send`].
    pub fn sendv(&self, fd: i32, bufs: &[&[u8]]) -> isize {
        if let Err(e) = self.conn(fd) {
            return e;
        }
        let iov: Vec<libc::iovec> = bufs
            .iter()
            .take(libc::UIO_MAXIOV as usize)
            .map(|b| libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            })
            .collect();
        send_iov(fd, &iov)
    }

    /// NotFound unless `fd` is a connection of this group.
    fn check_conn(&self, fd: i32) -> Result<()> {
        if self.kind(fd) != Kind::Conn {
            return Err(Error::NotFound(format!(
                "fd {fd} is not a connection of the group"
            )));
        }
        Ok(())
    }

    /// Report EV_OUT for `fd` (after a partial send) or stop reporting it (all sent).
    pub fn want_write(&self, fd: i32, on: bool) -> Result<()> {
        self.check_conn(fd)?;
        let ev = if on {
            READ_EVENTS | libc::EPOLLOUT as u32
        } else {
            READ_EVENTS
        };
        epoll_ctl(self.epfd, libc::EPOLL_CTL_MOD, fd, ev)
    }

    /// Set a connection's SO_PRIORITY, the queueing class of the packets it sends (0-6 need no
    /// privilege; SPDK's `sock_priority`).
    pub fn set_priority(&self, fd: i32, prio: i32) -> Result<()> {
        self.check_conn(fd)?;
        net::set_int_opt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PRIORITY,
            prio,
            "setsockopt(SO_PRIORITY)",
        )
    }

    /// A connection's SO_PRIORITY.
    pub fn priority(&self, fd: i32) -> Result<i32> {
        self.check_conn(fd)?;
        net::get_int_opt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PRIORITY,
            "getsockopt(SO_PRIORITY)",
        )
    }

    /// Close a connection or a listener of the group (closing the fd drops it from the epoll set).
    pub fn close(&mut self, fd: i32) -> Result<()> {
        match self.kind(fd) {
            Kind::Free => return Err(Error::NotFound(format!("fd {fd} is not in the group"))),
            Kind::Listener => self.listeners.remove(&fd),
            Kind::Conn => self.conns.remove(&fd),
        };
        self.set_kind(fd, Kind::Free);
        net::close_fd(fd);
        Ok(())
    }

    /// The peer's address of a connection.
    pub fn peer_addr(&self, fd: i32) -> Result<SocketAddr> {
        self.check_conn(fd)?;
        net::peer_addr(fd)
    }

    /// The local address of a connection or listener.
    pub fn local_addr(&self, fd: i32) -> Result<SocketAddr> {
        if self.kind(fd) == Kind::Free {
            return Err(Error::NotFound(format!("fd {fd} is not in the group")));
        }
        net::local_addr(fd)
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Start the wake-up thread: `wake` runs on it each time an armed group has an event.
    pub fn start_waiter(&mut self, wake: Box<dyn Fn() + Send>) -> Result<()> {
        if self.waiter.is_some() {
            return Err(Error::InvalidArgument("the group has a waiter".into()));
        }
        self.waiter = Some(Waiter::new(self.epfd, wake)?);
        Ok(())
    }

    /// Arm the waiter (one shot): the next event of the group, or one pending now, calls `wake`.
    pub fn arm(&self) -> Result<()> {
        self.waiter.as_ref().map_or(Ok(()), Waiter::arm)
    }

    /// Disarm the waiter (the reactor is awake and polls for itself).
    pub fn disarm(&self) -> Result<()> {
        self.waiter.as_ref().map_or(Ok(()), Waiter::disarm)
    }
}

fn send_iov(fd: i32, iov: &[libc::iovec]) -> isize {
    // SAFETY: msghdr is plain data; all-zero is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iov.len();
    loop {
        // SAFETY: msg points at `iov`, whose buffers the caller keeps valid during the call.
        let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
        if n >= 0 {
            return n;
        }
        let e = errno();
        if e != libc::EINTR {
            return -(e as isize);
        }
    }
}

impl Drop for SockGroup {
    fn drop(&mut self) {
        // The waiter watches epfd: stop it before the fd number can be reused.
        self.waiter = None;
        for &fd in self.listeners.iter().chain(self.conns.iter()) {
            net::close_fd(fd);
        }
        net::close_fd(self.epfd);
    }
}

/// Wakes a sleeping reactor when its group has an event, without costing anything while it is
/// awake: a thread blocks in epoll_wait on its own epoll set, which holds the group's epoll fd
/// (interest off unless armed) and an eventfd to stop it. Arming re-enables the group's fd
/// one-shot (EPOLLONESHOT): an event already pending fires at once (level-triggered), so an
/// event between the reactor's last poll and the arm is not lost; after firing the interest is
/// off again until the next arm. A fire racing a disarm costs one spurious wake call.
pub struct Waiter {
    wepfd: i32,
    group_epfd: i32,
    stop_fd: i32,
    thread: Option<JoinHandle<()>>,
}

impl Waiter {
    fn new(group_epfd: i32, wake: Box<dyn Fn() + Send>) -> Result<Waiter> {
        let wepfd = epoll_create()?;
        let setup = || -> Result<i32> {
            // SAFETY: eventfd has no memory-safety preconditions.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            let stop_fd = cvt(fd, "eventfd")?;
            let r = epoll_ctl(wepfd, libc::EPOLL_CTL_ADD, group_epfd, 0)
                .and_then(|_| epoll_ctl(wepfd, libc::EPOLL_CTL_ADD, stop_fd, libc::EPOLLIN as u32));
            if let Err(e) = r {
                net::close_fd(stop_fd);
                return Err(e);
            }
            Ok(stop_fd)
        };
        let stop_fd = match setup() {
            Ok(fd) => fd,
            Err(e) => {
                net::close_fd(wepfd);
                return Err(e);
            }
        };
        let thread = std::thread::Builder::new()
            .name("sock-waiter".into())
            .spawn(move || {
                let mut evs = Vec::with_capacity(2);
                loop {
                    match epoll_wait(wepfd, &mut evs, -1) {
                        Ok(_) => {}
                        Err(_) => return,
                    }
                    for ev in &evs {
                        if ev.u64 as i32 == stop_fd {
                            return;
                        }
                        wake();
                    }
                }
            })
            .map_err(|_| Error::last_os("pthread_create"));
        match thread {
            Ok(t) => Ok(Waiter {
                wepfd,
                group_epfd,
                stop_fd,
                thread: Some(t),
            }),
            Err(e) => {
                net::close_fd(stop_fd);
                net::close_fd(wepfd);
                Err(e)
            }
        }
    }

    fn arm(&self) -> Result<()> {
        epoll_ctl(
            self.wepfd,
            libc::EPOLL_CTL_MOD,
            self.group_epfd,
            (libc::EPOLLIN | libc::EPOLLONESHOT) as u32,
        )
    }

    fn disarm(&self) -> Result<()> {
        epoll_ctl(self.wepfd, libc::EPOLL_CTL_MOD, self.group_epfd, 0)
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from `one`, which outlives the call.
        unsafe { libc::write(self.stop_fd, (&one as *const u64).cast(), 8) };
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        net::close_fd(self.stop_fd);
        net::close_fd(self.wepfd);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{ErrorKind, Read, Write};
    use std::net::TcpStream;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// Poll until `pred` holds for the events of one poll (or panic after 2 s).
    fn poll_until(g: &mut SockGroup, pred: impl Fn(&[i32]) -> bool) -> Vec<i32> {
        let mut out = [0i32; 64 * EVENT_WORDS];
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(2) {
            let n = g.poll(&mut out, 10).unwrap();
            let evs = out[..n * EVENT_WORDS].to_vec();
            if pred(&evs) {
                return evs;
            }
        }
        panic!("no such event within 2 s");
    }

    fn has(evs: &[i32], fd: i32, flag: i32) -> bool {
        evs.chunks(EVENT_WORDS)
            .any(|e| e[0] == fd && e[1] & flag != 0)
    }

    /// A listening group and one connection to it: (group, listener, client, accepted fd).
    fn pair() -> (SockGroup, Listener, TcpStream, i32) {
        let mut g = SockGroup::new().unwrap();
        let l = g.listen("127.0.0.1", 0, 16).unwrap();
        let c = TcpStream::connect(l.addr).unwrap();
        let evs = poll_until(&mut g, |e| e.chunks(EVENT_WORDS).any(|e| e[1] == EV_ACCEPT));
        assert_eq!(evs[2], l.fd);
        let fd = evs[0];
        (g, l, c, fd)
    }

    /// Poll until `fd` reports EV_OUT or EV_ERR; returns its flags.
    fn connected(g: &mut SockGroup, fd: i32) -> i32 {
        let evs = poll_until(g, |e| has(e, fd, EV_OUT | EV_ERR));
        evs.chunks(EVENT_WORDS)
            .find(|e| e[0] == fd)
            .map(|e| e[1])
            .unwrap()
    }

    #[test]
    fn connects_to_a_listener_and_moves_data_both_ways() {
        for host in ["127.0.0.1", "::1"] {
            let mut g = SockGroup::new().unwrap();
            let l = g.listen(host, 0, 16).unwrap();
            let fd = g.connect(&l.addr).unwrap();
            let mut accepted = None;
            let mut out_seen = false;
            let mut out = [0i32; 64 * EVENT_WORDS];
            let t = Instant::now();
            while (accepted.is_none() || !out_seen) && t.elapsed() < Duration::from_secs(2) {
                let n = g.poll(&mut out, 10).unwrap();
                for e in out[..n * EVENT_WORDS].chunks(EVENT_WORDS) {
                    if e[1] == EV_ACCEPT {
                        accepted = Some(e[0]);
                    } else if e[0] == fd && e[1] & EV_OUT != 0 {
                        out_seen = true;
                    }
                }
            }
            let a = accepted.expect("the listener accepted nothing");
            assert!(out_seen, "connect did not report writable");
            assert_eq!(g.connect_error(fd), 0);
            g.want_write(fd, false).unwrap();
            assert_eq!(g.peer_addr(fd).unwrap(), l.addr);
            assert_eq!(g.local_addr(fd).unwrap(), g.peer_addr(a).unwrap());
            assert_eq!(g.send(fd, b"ping"), 4);
            poll_until(&mut g, |e| has(e, a, EV_IN));
            let mut buf = [0u8; 8];
            assert_eq!(g.recv(a, &mut buf), 4);
            assert_eq!(&buf[..4], b"ping");
            assert_eq!(g.send(a, b"pong!"), 5);
            poll_until(&mut g, |e| has(e, fd, EV_IN));
            assert_eq!(g.recv(fd, &mut buf), 5);
            assert_eq!(&buf[..5], b"pong!");
            assert_eq!(g.connections(), 2);
            g.close(a).unwrap();
            poll_until(&mut g, |e| has(e, fd, EV_HUP | EV_IN));
            assert_eq!(g.recv(fd, &mut buf), 0);
        }
    }

    #[test]
    fn refused_connect_is_an_error() {
        // A port bound but not listening refuses connections and is not taken by anyone else.
        let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = s.local_addr().unwrap();
        drop(s);
        let mut g = SockGroup::new().unwrap();
        let fd = match g.connect(&addr) {
            Ok(fd) => fd,
            // The kernel may refuse a loopback connect at once.
            Err(Error::Os { errno, .. }) => {
                assert_eq!(errno, libc::ECONNREFUSED);
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let f = connected(&mut g, fd);
        assert_ne!(f & EV_ERR, 0, "flags {f}");
        assert_eq!(g.connect_error(fd), -(libc::ECONNREFUSED as isize));
        g.close(fd).unwrap();
        assert_eq!(g.connect_error(fd), -(libc::EBADF as isize));
    }

    #[test]
    fn accepts_reads_and_reports_eof() {
        let (mut g, l, mut c, fd) = pair();
        assert_eq!(g.peer_addr(fd).unwrap(), c.local_addr().unwrap());
        assert_eq!(g.local_addr(fd).unwrap(), l.addr);
        let mut buf = [0u8; 16];
        assert_eq!(g.recv(fd, &mut buf), EAGAIN);
        c.write_all(b"hello").unwrap();
        poll_until(&mut g, |e| has(e, fd, EV_IN));
        assert_eq!(g.recv(fd, &mut buf), 5);
        assert_eq!(&buf[..5], b"hello");
        assert_eq!(g.send(fd, b"world"), 5);
        let mut back = [0u8; 5];
        c.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"world");
        drop(c);
        poll_until(&mut g, |e| has(e, fd, EV_HUP | EV_IN));
        assert_eq!(g.recv(fd, &mut buf), 0);
        g.close(fd).unwrap();
        assert_eq!(g.connections(), 0);
        assert_eq!(g.recv(fd, &mut buf), -(libc::EBADF as isize));
    }

    #[test]
    fn sets_and_reads_a_connections_priority() {
        let (g, _l, _c, fd) = pair();
        assert_eq!(g.priority(fd).unwrap(), 0);
        g.set_priority(fd, 5).unwrap();
        assert_eq!(g.priority(fd).unwrap(), 5);
        assert!(g.set_priority(12345, 1).is_err());
    }

    #[test]
    fn partial_send_then_writable() {
        let (mut g, _l, c, fd) = pair();
        // Fill the socket until the kernel refuses: the client does not read yet.
        let chunk = vec![7u8; 1 << 20];
        let mut sent = 0usize;
        loop {
            let n = g.send(fd, &chunk);
            if n == EAGAIN {
                break;
            }
            assert!(n > 0, "send failed: {n}");
            sent += n as usize;
        }
        g.want_write(fd, true).unwrap();
        let mut out = [0i32; 64 * EVENT_WORDS];
        let n = g.poll(&mut out, 0).unwrap();
        assert!(
            !has(&out[..n * EVENT_WORDS], fd, EV_OUT),
            "full socket reported writable"
        );
        let reader = std::thread::spawn(move || {
            let mut c = c;
            let mut buf = vec![0u8; 1 << 16];
            let mut got = 0usize;
            while got < sent {
                got += c.read(&mut buf).unwrap();
            }
            got
        });
        poll_until(&mut g, |e| has(e, fd, EV_OUT));
        g.want_write(fd, false).unwrap();
        assert_eq!(reader.join().unwrap(), sent);
    }

    #[test]
    fn sendv_gathers_in_order() {
        let (mut g, _l, mut c, fd) = pair();
        assert_eq!(g.sendv(fd, &[b"ab", b"", b"cde"]), 5);
        let mut b = [0u8; 5];
        c.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"abcde");
        g.close(fd).unwrap();
    }

    #[test]
    fn reset_is_an_error_on_recv() {
        let (mut g, _l, c, fd) = pair();
        // SO_LINGER 0: close sends RST instead of FIN.
        let lg = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        use std::os::fd::AsRawFd;
        // SAFETY: lg outlives the call and its size is passed.
        let rc = unsafe {
            libc::setsockopt(
                c.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&lg as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        drop(c);
        poll_until(&mut g, |e| has(e, fd, EV_HUP | EV_ERR));
        let mut buf = [0u8; 8];
        assert_eq!(g.recv(fd, &mut buf), -(libc::ECONNRESET as isize));
        assert!(g.send(fd, b"x") < 0);
    }

    #[test]
    fn many_connections_accepted_within_room() {
        let mut g = SockGroup::new().unwrap();
        let l = g.listen("127.0.0.1", 0, 128).unwrap();
        let clients: Vec<TcpStream> = (0..40)
            .map(|_| TcpStream::connect(l.addr).unwrap())
            .collect();
        let mut fds = HashSet::new();
        let mut out = [0i32; 8 * EVENT_WORDS]; // room for 8 per poll: the rest wait in the backlog
        let t = Instant::now();
        while fds.len() < clients.len() && t.elapsed() < Duration::from_secs(2) {
            let n = g.poll(&mut out, 10).unwrap();
            assert!(n <= 8);
            for e in out[..n * EVENT_WORDS].chunks(EVENT_WORDS) {
                if e[1] == EV_ACCEPT {
                    assert!(fds.insert(e[0]));
                }
            }
        }
        assert_eq!(fds.len(), clients.len());
        assert_eq!(g.connections(), clients.len());
    }

    #[test]
    fn a_released_connection_moves_to_another_group_with_its_bytes() {
        let (mut g, _l, mut c, fd) = pair();
        c.write_all(b"login").unwrap();
        poll_until(&mut g, |e| has(e, fd, EV_IN));
        g.release(fd).unwrap();
        assert_eq!(g.connections(), 0);
        assert!(g.release(fd).is_err(), "released twice");
        assert!(g.close(fd).is_err(), "the group no longer owns it");
        // Nothing of it is reported by the group that gave it up.
        let mut out = [0i32; 8 * EVENT_WORDS];
        assert_eq!(g.poll(&mut out, 0).unwrap(), 0);
        let mut h = SockGroup::new().unwrap();
        h.adopt(fd).unwrap();
        let evs = poll_until(&mut h, |e| has(e, fd, EV_IN));
        assert!(has(&evs, fd, EV_IN));
        let mut buf = [0u8; 16];
        assert_eq!(h.recv(fd, &mut buf), 5);
        assert_eq!(&buf[..5], b"login");
        assert_eq!(h.send(fd, b"ok"), 2);
        let mut got = [0u8; 2];
        c.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"ok");
        h.close(fd).unwrap();
    }

    #[test]
    fn foreign_fds_are_refused() {
        let mut g = SockGroup::new().unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(g.recv(0, &mut buf), -(libc::EBADF as isize));
        assert_eq!(g.send(-1, b"x"), -(libc::EBADF as isize));
        assert!(g.close(0).is_err());
        assert!(g.want_write(1, true).is_err());
    }

    #[test]
    fn waiter_fires_once_per_arm() {
        let (mut g, _l, mut c, fd) = pair();
        let fired = Arc::new(AtomicUsize::new(0));
        let f = fired.clone();
        g.start_waiter(Box::new(move || {
            f.fetch_add(1, Ordering::SeqCst);
        }))
        .unwrap();
        // Not armed: an event does not fire.
        c.write_all(b"a").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(fired.load(Ordering::SeqCst), 0);
        // Armed with the event already pending: fires at once, and only once.
        g.arm().unwrap();
        let t = Instant::now();
        while fired.load(Ordering::SeqCst) == 0 && t.elapsed() < Duration::from_secs(2) {
            std::thread::yield_now();
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        let mut buf = [0u8; 4];
        assert_eq!(g.recv(fd, &mut buf), 1);
        // Armed with nothing pending, then disarmed: bytes arriving after do not fire.
        g.arm().unwrap();
        g.disarm().unwrap();
        c.write_all(b"b").unwrap();
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        assert_eq!(g.recv(fd, &mut buf), 1);
        // Armed while idle: the next bytes fire it.
        g.arm().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(fired.load(Ordering::SeqCst), 1);
        c.write_all(b"c").unwrap();
        let t = Instant::now();
        while fired.load(Ordering::SeqCst) == 1 && t.elapsed() < Duration::from_secs(2) {
            std::thread::yield_now();
        }
        assert_eq!(fired.load(Ordering::SeqCst), 2);
        drop(g); // stops and joins the waiter thread
        let e = c.read(&mut buf);
        assert!(
            matches!(e, Ok(0)) || matches!(e, Err(ref x) if x.kind() == ErrorKind::ConnectionReset)
        );
    }
}
