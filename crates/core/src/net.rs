//! Listening TCP sockets shared by several reactor workers.
//!
//! Node 20's `net.Server.listen()` cannot set SO_REUSEPORT, so each reactor
//! would get EADDRINUSE on a second listen. Here a socket is created with
//! SO_REUSEADDR and SO_REUSEPORT, bound and put in the listening state; the
//! caller (one per worker) hands the fd to `net.Server.listen({ fd })`, and the
//! kernel spreads incoming connections across every socket bound to the port.

use std::net::{IpAddr, SocketAddr};

use crate::{Error, Result};

/// A listening socket: its fd (owned by the caller from now on) and the
/// address it got (the port is the kernel's choice when 0 was asked for).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub fd: i32,
    pub addr: SocketAddr,
}

/// Create a TCP socket with SO_REUSEADDR + SO_REUSEPORT, bind it to
/// `host:port` and listen with `backlog`. The fd is non-blocking and
/// close-on-exec; close it with [`close_fd`] if it is never handed to Node.
pub fn reuseport_listen(host: &str, port: u16, backlog: i32) -> Result<Listener> {
    let ip: IpAddr = host
        .parse()
        .map_err(|_| Error::InvalidArgument(format!("'{host}' is not an IPv4 or IPv6 address")))?;
    if backlog < 1 {
        return Err(Error::InvalidArgument(format!(
            "backlog {backlog} must be >= 1"
        )));
    }
    let family = if ip.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let fd = socket(family)?;
    let r = setup(fd, SocketAddr::new(ip, port), backlog);
    match r {
        Ok(addr) => Ok(Listener { fd, addr }),
        Err(e) => {
            close_fd(fd);
            Err(e)
        }
    }
}

/// Start a non-blocking connect to `addr`: the fd of a socket whose connect is in progress (or,
/// on loopback, sometimes already done). The caller learns the outcome when the socket turns
/// writable, from [`socket_error`]. Refusals the kernel knows at once (no route, ...) are errors here.
pub fn connect_nonblocking(addr: &SocketAddr) -> Result<i32> {
    connect_nonblocking_from(addr, &ConnectFrom::default())
}

/// Where a connection comes from and how it is queued: set on the socket before it connects.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectFrom {
    /// The local address (and port, 0 for the kernel's choice) to bind first (SPDK's hostaddr,
    /// hostsvcid: spdk_sock_opts' src_addr, src_port).
    pub local: Option<SocketAddr>,
    /// SO_PRIORITY (SPDK's transport ID priority), 0-6 without privilege.
    pub priority: Option<i32>,
}

/// [`connect_nonblocking`] with a local address bound and SO_PRIORITY set before the connect.
pub fn connect_nonblocking_from(addr: &SocketAddr, from: &ConnectFrom) -> Result<i32> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let fd = socket(family)?;
    if let Err(e) = prepare(fd, from) {
        close_fd(fd);
        return Err(e);
    }
    let (ss, len) = to_raw(addr);
    // SAFETY: ss is a valid sockaddr of `len` bytes for the duration of the call.
    let rc = unsafe { libc::connect(fd, (&ss as *const libc::sockaddr_storage).cast(), len) };
    if rc == 0 {
        return Ok(fd);
    }
    let errno = std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO);
    match errno {
        // EINTR: the connect goes on asynchronously, as with EINPROGRESS.
        libc::EINPROGRESS | libc::EINTR => Ok(fd),
        _ => {
            close_fd(fd);
            Err(Error::Os {
                op: "connect",
                errno,
            })
        }
    }
}

fn prepare(fd: i32, from: &ConnectFrom) -> Result<()> {
    if let Some(p) = from.priority {
        set_priority(fd, p)?;
    }
    if let Some(local) = from.local {
        let (ss, len) = to_raw(&local);
        // SAFETY: ss is a valid sockaddr of `len` bytes for the duration of the call.
        let rc = unsafe { libc::bind(fd, (&ss as *const libc::sockaddr_storage).cast(), len) };
        if rc != 0 {
            return Err(Error::last_os("bind"));
        }
    }
    Ok(())
}

/// Set SO_PRIORITY of any socket fd (one Node opened too): the queueing class of what it sends.
pub fn set_priority(fd: i32, prio: i32) -> Result<()> {
    set_int_opt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_PRIORITY,
        prio,
        "setsockopt(SO_PRIORITY)",
    )
}

/// SO_PRIORITY of any socket fd.
pub fn priority(fd: i32) -> Result<i32> {
    get_int_opt(
        fd,
        libc::SOL_SOCKET,
        libc::SO_PRIORITY,
        "getsockopt(SO_PRIORITY)",
    )
}

/// The socket's pending error (SO_ERROR, which reading clears): 0, or the positive errno of a
/// failed connect or a reset.
pub fn socket_error(fd: i32) -> Result<i32> {
    get_int_opt(fd, libc::SOL_SOCKET, libc::SO_ERROR, "getsockopt(SO_ERROR)")
}

fn setup(fd: i32, addr: SocketAddr, backlog: i32) -> Result<SocketAddr> {
    set_flag(fd, libc::SO_REUSEADDR)?;
    set_flag(fd, libc::SO_REUSEPORT)?;
    if let SocketAddr::V6(_) = addr {
        set_v6only(fd)?;
    }
    bind(fd, &addr)?;
    listen(fd, backlog)?;
    local_addr(fd)
}

fn socket(family: i32) -> Result<i32> {
    // SAFETY: socket() has no memory-safety preconditions.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(Error::last_os("socket"));
    }
    Ok(fd)
}

/// setsockopt of an int option (`op` names it in the error).
pub(crate) fn set_int_opt(
    fd: i32,
    level: i32,
    opt: i32,
    value: i32,
    op: &'static str,
) -> Result<()> {
    let v: libc::c_int = value;
    // SAFETY: `v` outlives the call and its size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(Error::last_os(op));
    }
    Ok(())
}

/// getsockopt of an int option (`op` names it in the error).
pub(crate) fn get_int_opt(fd: i32, level: i32, opt: i32, op: &'static str) -> Result<i32> {
    let mut v: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: v and len outlive the call and len holds v's size.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            level,
            opt,
            (&mut v as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(Error::last_os(op));
    }
    Ok(v)
}

fn set_flag(fd: i32, opt: i32) -> Result<()> {
    set_int_opt(fd, libc::SOL_SOCKET, opt, 1, "setsockopt")
}

fn set_v6only(fd: i32) -> Result<()> {
    set_int_opt(
        fd,
        libc::IPPROTO_IPV6,
        libc::IPV6_V6ONLY,
        1,
        "setsockopt(IPV6_V6ONLY)",
    )
}

/// A sockaddr_storage holding `addr`, and its length.
fn to_raw(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

fn bind(fd: i32, addr: &SocketAddr) -> Result<()> {
    let (ss, len) = to_raw(addr);
    // SAFETY: ss is a valid sockaddr of `len` bytes for the duration of the call.
    let rc = unsafe { libc::bind(fd, (&ss as *const libc::sockaddr_storage).cast(), len) };
    if rc != 0 {
        return Err(Error::last_os("bind"));
    }
    Ok(())
}

fn listen(fd: i32, backlog: i32) -> Result<()> {
    // SAFETY: listen() has no memory-safety preconditions.
    if unsafe { libc::listen(fd, backlog) } != 0 {
        return Err(Error::last_os("listen"));
    }
    Ok(())
}

/// The address a socket is bound to.
pub fn local_addr(fd: i32) -> Result<SocketAddr> {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: ss has room for `len` bytes; the kernel writes at most that many.
    let rc = unsafe {
        libc::getsockname(
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(Error::last_os("getsockname"));
    }
    from_raw(&ss)
}

/// The address of a connected socket's peer.
pub fn peer_addr(fd: i32) -> Result<SocketAddr> {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: ss has room for `len` bytes; the kernel writes at most that many.
    let rc = unsafe {
        libc::getpeername(
            fd,
            (&mut ss as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(Error::last_os("getpeername"));
    }
    from_raw(&ss)
}

fn from_raw(ss: &libc::sockaddr_storage) -> Result<SocketAddr> {
    match ss.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Ok(SocketAddr::new(ip.into(), u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 =
                unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Ok(SocketAddr::new(ip.into(), u16::from_be(sin6.sin6_port)))
        }
        f => Err(Error::InvalidArgument(format!(
            "unexpected address family {f}"
        ))),
    }
}

/// Close an fd that was never handed over (errors are ignored: nothing to do).
pub fn close_fd(fd: i32) {
    if fd >= 0 {
        // SAFETY: the caller owns fd and does not use it afterwards.
        unsafe { libc::close(fd) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::os::fd::FromRawFd;

    #[test]
    fn two_listeners_share_a_port() {
        let a = reuseport_listen("127.0.0.1", 0, 16).unwrap();
        let port = a.addr.port();
        assert_ne!(port, 0);
        let b = reuseport_listen("127.0.0.1", port, 16).unwrap();
        assert_eq!(b.addr.port(), port);
        close_fd(a.fd);
        close_fd(b.fd);
    }

    #[test]
    fn plain_socket_on_the_port_is_refused() {
        let a = reuseport_listen("127.0.0.1", 0, 16).unwrap();
        let r = std::net::TcpListener::bind(("127.0.0.1", a.addr.port()));
        assert!(
            r.is_err(),
            "a socket without SO_REUSEPORT must not join the group"
        );
        close_fd(a.fd);
    }

    #[test]
    fn accepts_a_connection() {
        let l = reuseport_listen("127.0.0.1", 0, 16).unwrap();
        // SAFETY: l.fd is a listening socket we own; TcpListener takes ownership.
        let tl = unsafe { std::net::TcpListener::from_raw_fd(l.fd) };
        tl.set_nonblocking(false).unwrap();
        let mut c = TcpStream::connect(l.addr).unwrap();
        c.write_all(b"ping").unwrap();
        let (mut s, _) = tl.accept().unwrap();
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ping");
    }

    #[test]
    fn ipv6_loopback() {
        match reuseport_listen("::1", 0, 4) {
            Ok(l) => {
                assert!(l.addr.is_ipv6());
                close_fd(l.fd);
            }
            // Hosts without IPv6 say so with EADDRNOTAVAIL / EAFNOSUPPORT.
            Err(Error::Os { op, .. }) => assert!(op == "bind" || op == "socket"),
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn bad_arguments() {
        assert!(matches!(
            reuseport_listen("localhost", 0, 4),
            Err(Error::InvalidArgument(_))
        ));
        assert!(matches!(
            reuseport_listen("127.0.0.1", 0, 0),
            Err(Error::InvalidArgument(_))
        ));
        // 192.0.2.1 (TEST-NET-1) is not a local address.
        let e = reuseport_listen("192.0.2.1", 0, 4).unwrap_err();
        assert_eq!(e.code(), "EIO"); // EADDRNOTAVAIL has no short name of its own
    }
}
