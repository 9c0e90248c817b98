//! The polled socket group (storkit_core::sock) for reactor pollers.
//!
//! Plain functions over an External, like the ring (a napi class method call costs more), and
//! the hot-path ones (`sockGroupPoll`, `sockRecv`, `sockSend`) take typed arrays and numbers and
//! return a number: no JS object per call.

use napi::bindgen_prelude::{External, Function, Int32ArraySlice, Uint8ArraySlice};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;
use storkit_core::sock::SockGroup;

use crate::net::ReuseportListener;
use crate::{to_napi, Coded, Result};

/// A group behind a JS handle; closing it (or GC) closes every socket it holds.
pub struct SockGroupHandle {
    group: Option<SockGroup>,
}

fn closed() -> napi::Error<crate::Code> {
    to_napi(storkit_core::Error::InvalidArgument(
        "the socket group is closed".into(),
    ))
}

fn group(g: &External<SockGroupHandle>) -> Result<&SockGroup> {
    g.group.as_ref().ok_or_else(closed)
}

fn group_mut(g: &mut External<SockGroupHandle>) -> Result<&mut SockGroup> {
    g.group.as_mut().ok_or_else(closed)
}

/// A new, empty group.
#[napi]
pub fn sock_group_create() -> Result<External<SockGroupHandle>> {
    Ok(External::new(SockGroupHandle {
        group: Some(SockGroup::new().map_err(to_napi)?),
    }))
}

/// Listen on host:port through an SO_REUSEPORT socket owned by the group.
#[napi]
pub fn sock_group_listen(
    g: &mut External<SockGroupHandle>,
    host: String,
    port: u32,
    backlog: i32,
) -> Result<ReuseportListener> {
    let port = u16::try_from(port).map_err(|_| {
        to_napi(storkit_core::Error::InvalidArgument(format!(
            "port {port} > 65535"
        )))
    })?;
    let l = group_mut(g)?
        .listen(&host, port, backlog)
        .map_err(to_napi)?;
    Ok(ReuseportListener {
        fd: l.fd,
        address: l.addr.ip().to_string(),
        port: u32::from(l.addr.port()),
    })
}

/// Start a non-blocking connect to host:port (an IPv4 or IPv6 literal): the new connection's fd,
/// reported writable (SOCK_OUT) once the connect finished; `sockConnectError` says how.
/// `local_host`/`local_port`: bind the socket there first (the port alone binds the address
/// family's any-address); `priority`: its SO_PRIORITY, set before the connect.
#[napi]
pub fn sock_group_connect(
    g: &mut External<SockGroupHandle>,
    host: String,
    port: u32,
    local_host: Option<String>,
    local_port: Option<u32>,
    priority: Option<i32>,
) -> Result<i32> {
    let invalid = |m: String| to_napi(storkit_core::Error::InvalidArgument(m));
    let port16 = |p: u32| u16::try_from(p).map_err(|_| invalid(format!("port {p} > 65535")));
    let parse = |h: &str| -> Result<std::net::IpAddr> {
        h.parse()
            .map_err(|_| invalid(format!("'{h}' is not an IPv4 or IPv6 address")))
    };
    let ip = parse(&host)?;
    let port = port16(port)?;
    let local = match (local_host, local_port) {
        (None, None) => None,
        (h, p) => {
            let lip = match h {
                Some(h) => parse(&h)?,
                None if ip.is_ipv4() => std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
                None => std::net::IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED),
            };
            Some(std::net::SocketAddr::new(lip, port16(p.unwrap_or(0))?))
        }
    };
    let from = storkit_core::net::ConnectFrom { local, priority };
    group_mut(g)?
        .connect_from(&std::net::SocketAddr::new(ip, port), &from)
        .map_err(to_napi)
}

/// Set SO_PRIORITY of a socket fd that is not a group's (a node:net socket's).
#[napi]
pub fn socket_set_priority(fd: i32, prio: i32) -> Result<()> {
    storkit_core::net::set_priority(fd, prio).map_err(to_napi)
}

/// SO_PRIORITY of a socket fd that is not a group's.
#[napi]
pub fn socket_priority(fd: i32) -> Result<i32> {
    storkit_core::net::priority(fd).map_err(to_napi)
}

/// The outcome of a connect: 0, or a negative errno (-111 ECONNREFUSED, ...).
#[napi]
pub fn sock_connect_error(g: &External<SockGroupHandle>, fd: i32) -> Result<i32> {
    Ok(group(g)?.connect_error(fd) as i32)
}

/// Poll without waiting: events into `events` (3 words each: fd, flags, listener fd); returns
/// how many. New connections are accepted here.
#[napi]
pub fn sock_group_poll(
    g: &mut External<SockGroupHandle>,
    mut events: Int32ArraySlice<'_>,
) -> Result<u32> {
    // SAFETY: JS cannot run (and touch the array) while this native call holds the slice.
    let events = unsafe { events.as_mut() };
    group_mut(g)?
        .poll(events, 0)
        .map(|n| n as u32)
        .map_err(to_napi)
}

/// Read into `buf`: bytes read, 0 at end of stream, or a negative errno (-11 EAGAIN).
#[napi]
pub fn sock_recv(
    g: &External<SockGroupHandle>,
    fd: i32,
    mut buf: Uint8ArraySlice<'_>,
) -> Result<i32> {
    // SAFETY: JS cannot run (and touch the buffer) while this native call holds the slice.
    let buf = unsafe { buf.as_mut() };
    Ok(group(g)?.recv(fd, buf) as i32)
}

/// Send `buf[off, off + len)`: bytes taken, or a negative errno (-11 EAGAIN).
#[napi]
pub fn sock_send(
    g: &External<SockGroupHandle>,
    fd: i32,
    buf: &[u8],
    off: u32,
    len: u32,
) -> Result<i32> {
    let (off, len) = (off as usize, len as usize);
    let b = off
        .checked_add(len)
        .and_then(|end| buf.get(off..end))
        .ok_or_else(|| {
            to_napi(storkit_core::Error::InvalidArgument(format!(
                "range {off}+{len} exceeds the {}-byte buffer",
                buf.len()
            )))
        })?;
    Ok(group(g)?.send(fd, b) as i32)
}

/// Send `bufs[0][off..]` then the rest of `bufs` in one sendmsg (at most UIO_MAXIOV of them):
/// bytes taken, or a negative errno (-11 EAGAIN).
#[napi]
pub fn sock_sendv(
    g: &External<SockGroupHandle>,
    fd: i32,
    bufs: Vec<Uint8ArraySlice<'_>>,
    off: u32,
) -> Result<i32> {
    let off = off as usize;
    let mut parts: Vec<&[u8]> = bufs.iter().map(|b| b.as_ref()).collect();
    if let Some(first) = parts.first_mut() {
        *first = first.get(off..).ok_or_else(|| {
            to_napi(storkit_core::Error::InvalidArgument(format!(
                "offset {off} exceeds the first {}-byte buffer",
                first.len()
            )))
        })?;
    }
    Ok(group(g)?.sendv(fd, &parts) as i32)
}

/// Report writability of `fd` (after a partial send), or stop.
#[napi]
pub fn sock_want_write(g: &External<SockGroupHandle>, fd: i32, on: bool) -> Result<()> {
    group(g)?.want_write(fd, on).map_err(to_napi)
}

/// Set a connection's SO_PRIORITY.
#[napi]
pub fn sock_set_priority(g: &External<SockGroupHandle>, fd: i32, prio: i32) -> Result<()> {
    group(g)?.set_priority(fd, prio).map_err(to_napi)
}

/// A connection's SO_PRIORITY.
#[napi]
pub fn sock_priority(g: &External<SockGroupHandle>, fd: i32) -> Result<i32> {
    group(g)?.priority(fd).map_err(to_napi)
}

/// Close a connection or listener of the group.
#[napi]
pub fn sock_close(g: &mut External<SockGroupHandle>, fd: i32) -> Result<()> {
    group_mut(g)?.close(fd).map_err(to_napi)
}

/// Give a connection of the group up without closing it (the fd is the caller's to hand on).
#[napi]
pub fn sock_release(g: &mut External<SockGroupHandle>, fd: i32) -> Result<()> {
    group_mut(g)?.release(fd).map_err(to_napi)
}

/// Take a connected non-blocking socket (one another group released) into the group.
#[napi]
pub fn sock_adopt(g: &mut External<SockGroupHandle>, fd: i32) -> Result<()> {
    group_mut(g)?.adopt(fd).map_err(to_napi)
}

/// `[address, port, localAddress, localPort]` of a connection.
#[napi(ts_return_type = "[string, number, string, number]")]
pub fn sock_addresses(
    g: &External<SockGroupHandle>,
    fd: i32,
) -> Result<(String, u32, String, u32)> {
    let g = group(g)?;
    let p = g.peer_addr(fd).map_err(to_napi)?;
    let l = g.local_addr(fd).map_err(to_napi)?;
    Ok((
        p.ip().to_string(),
        u32::from(p.port()),
        l.ip().to_string(),
        u32::from(l.port()),
    ))
}

/// Start the group's wake-up thread: `wake` runs on this JS thread each time the armed group
/// has an event. The callback does not keep the event loop alive.
#[napi]
pub fn sock_group_start_waiter(
    g: &mut External<SockGroupHandle>,
    wake: Function<(), ()>,
) -> Result<()> {
    let tsfn = wake
        .build_threadsafe_function::<()>()
        .weak::<true>()
        .callee_handled::<false>()
        .build()
        .coded()?;
    group_mut(g)?
        .start_waiter(Box::new(move || {
            // NonBlocking: the queue is unbounded, and a wake-up lost to a closing env is moot.
            tsfn.call((), ThreadsafeFunctionCallMode::NonBlocking);
        }))
        .map_err(to_napi)
}

/// Arm the waiter once (the reactor is about to sleep).
#[napi]
pub fn sock_group_arm(g: &External<SockGroupHandle>) -> Result<()> {
    group(g)?.arm().map_err(to_napi)
}

/// Disarm the waiter (the reactor is awake).
#[napi]
pub fn sock_group_disarm(g: &External<SockGroupHandle>) -> Result<()> {
    group(g)?.disarm().map_err(to_napi)
}

/// Close every socket of the group and stop its waiter. Idempotent.
#[napi]
pub fn sock_group_close(g: &mut External<SockGroupHandle>) {
    g.group = None;
}
