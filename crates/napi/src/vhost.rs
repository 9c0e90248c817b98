//! vhost-user: the control socket (listener and connections), its messages as plain JS
//! objects, eventfds, and guest memory regions mapped from received fds (registered like
//! any other mapping, so each worker opens its own ArrayBuffer view of it).
//!
//! File descriptors received in a message are handed to JS as numbers; the TS wrapper
//! owns them and closes each with `vhostCloseFd`.

use std::os::fd::{AsRawFd, IntoRawFd};

use napi::bindgen_prelude::{BigInt, Buffer};
use napi::Env;
use napi_derive::napi;
use storkit_core::vhost_msg::{self, Body, Inflight, MemRegion, Msg, VringAddr};
use storkit_core::vhost_sock::{self, Conn, Listener, Recv};
use storkit_core::Error;

use crate::{to_napi, Result};

/// Largest address JS numbers carry exactly.
const MAX_SAFE: u64 = (1 << 53) - 1;

fn safe(name: &str, v: u64) -> Result<f64> {
    if v > MAX_SAFE {
        return Err(to_napi(Error::Protocol(format!(
            "vhost-user protocol: {name} {v:#x} is beyond 2^53"
        ))));
    }
    Ok(v as f64)
}

fn from_f64(name: &str, v: f64) -> Result<u64> {
    if !(v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= MAX_SAFE as f64) {
        return Err(to_napi(Error::InvalidArgument(format!(
            "{name} must be an integer in 0..2^53, got {v}"
        ))));
    }
    Ok(v as u64)
}

#[napi(object)]
pub struct VhostMemRegion {
    pub guest_phys_addr: f64,
    pub memory_size: f64,
    pub userspace_addr: f64,
    pub mmap_offset: f64,
}

#[napi(object)]
pub struct VhostVringAddr {
    pub flags: u32,
    pub desc: f64,
    pub used: f64,
    pub avail: f64,
    pub log: f64,
}

#[napi(object)]
pub struct VhostConfig {
    pub offset: u32,
    pub size: u32,
    pub flags: u32,
    pub data: Buffer,
}

#[napi(object)]
pub struct VhostInflight {
    pub mmap_size: f64,
    pub mmap_offset: f64,
    pub num_queues: u32,
    pub queue_size: u32,
}

/// One vhost-user message. Exactly the fields of the request's payload are set:
/// `value` (u64 payloads: features, acks), `index`+`num` (vring state), `index`+`nofd`
/// (kick/call/err), `addr` (with `index`), `regions` (memory table, or one region for
/// ADD/REM_MEM_REG), `config`, `inflight`.
#[napi(object)]
pub struct VhostMessage {
    pub request: u32,
    pub flags: u32,
    pub fds: Vec<i32>,
    pub value: Option<BigInt>,
    pub index: Option<u32>,
    pub num: Option<u32>,
    pub nofd: Option<bool>,
    pub addr: Option<VhostVringAddr>,
    pub regions: Option<Vec<VhostMemRegion>>,
    pub config: Option<VhostConfig>,
    pub inflight: Option<VhostInflight>,
}

fn region_to_js(r: &MemRegion) -> Result<VhostMemRegion> {
    Ok(VhostMemRegion {
        guest_phys_addr: safe("guest_phys_addr", r.guest_phys_addr)?,
        memory_size: safe("memory_size", r.memory_size)?,
        userspace_addr: safe("userspace_addr", r.userspace_addr)?,
        mmap_offset: safe("mmap_offset", r.mmap_offset)?,
    })
}

fn region_from_js(r: &VhostMemRegion) -> Result<MemRegion> {
    Ok(MemRegion {
        guest_phys_addr: from_f64("guestPhysAddr", r.guest_phys_addr)?,
        memory_size: from_f64("memorySize", r.memory_size)?,
        userspace_addr: from_f64("userspaceAddr", r.userspace_addr)?,
        mmap_offset: from_f64("mmapOffset", r.mmap_offset)?,
    })
}

fn empty(request: u32, flags: u32, fds: Vec<i32>) -> VhostMessage {
    VhostMessage {
        request,
        flags,
        fds,
        value: None,
        index: None,
        num: None,
        nofd: None,
        addr: None,
        regions: None,
        config: None,
        inflight: None,
    }
}

fn to_js(m: Msg, fds: Vec<i32>) -> Result<VhostMessage> {
    let mut o = empty(m.request, m.flags, fds);
    match m.body {
        Body::Empty => {}
        Body::U64(v) => o.value = Some(BigInt::from(v)),
        Body::State { index, num } => {
            o.index = Some(index);
            o.num = Some(num);
        }
        Body::VringFd { index, nofd } => {
            o.index = Some(index);
            o.nofd = Some(nofd);
        }
        Body::Addr(a) => {
            o.index = Some(a.index);
            o.addr = Some(VhostVringAddr {
                flags: a.flags,
                desc: safe("desc", a.desc)?,
                used: safe("used", a.used)?,
                avail: safe("avail", a.avail)?,
                log: safe("log", a.log)?,
            });
        }
        Body::Memory(rs) => o.regions = Some(rs.iter().map(region_to_js).collect::<Result<_>>()?),
        Body::Region(r) => o.regions = Some(vec![region_to_js(&r)?]),
        Body::Config {
            offset,
            size,
            flags,
            data,
        } => {
            o.config = Some(VhostConfig {
                offset,
                size,
                flags,
                data: data.into(),
            })
        }
        Body::Inflight(i) => {
            o.inflight = Some(VhostInflight {
                mmap_size: safe("mmap_size", i.mmap_size)?,
                mmap_offset: safe("mmap_offset", i.mmap_offset)?,
                num_queues: u32::from(i.num_queues),
                queue_size: u32::from(i.queue_size),
            })
        }
    }
    Ok(o)
}

fn u64_of(v: &BigInt) -> Result<u64> {
    let (signed, x, lossless) = v.get_u64();
    if signed || !lossless {
        return Err(to_napi(Error::InvalidArgument(
            "value must fit an unsigned 64-bit integer".into(),
        )));
    }
    Ok(x)
}

fn from_js(o: &VhostMessage) -> Result<Msg> {
    let index = o.index.unwrap_or(0);
    let body = if let Some(rs) = &o.regions {
        let rs = rs.iter().map(region_from_js).collect::<Result<Vec<_>>>()?;
        match (o.request, rs.as_slice()) {
            (vhost_msg::req::ADD_MEM_REG | vhost_msg::req::REM_MEM_REG, [r]) => Body::Region(*r),
            _ => Body::Memory(rs),
        }
    } else if let Some(a) = &o.addr {
        Body::Addr(VringAddr {
            index,
            flags: a.flags,
            desc: from_f64("desc", a.desc)?,
            used: from_f64("used", a.used)?,
            avail: from_f64("avail", a.avail)?,
            log: from_f64("log", a.log)?,
        })
    } else if let Some(c) = &o.config {
        Body::Config {
            offset: c.offset,
            size: c.size,
            flags: c.flags,
            data: c.data.to_vec(),
        }
    } else if let Some(i) = &o.inflight {
        Body::Inflight(Inflight {
            mmap_size: from_f64("mmapSize", i.mmap_size)?,
            mmap_offset: from_f64("mmapOffset", i.mmap_offset)?,
            num_queues: u16::try_from(i.num_queues).unwrap_or(u16::MAX),
            queue_size: u16::try_from(i.queue_size).unwrap_or(u16::MAX),
        })
    } else if let Some(nofd) = o.nofd {
        Body::VringFd { index, nofd }
    } else if let Some(num) = o.num {
        Body::State { index, num }
    } else if let Some(v) = &o.value {
        Body::U64(u64_of(v)?)
    } else {
        Body::Empty
    };
    Ok(Msg {
        request: o.request,
        flags: o.flags,
        body,
    })
}

/// A listening vhost-user socket. `accept()` never blocks.
#[napi]
pub struct VhostListener {
    inner: Option<Listener>,
}

#[napi]
impl VhostListener {
    /// Bind and listen on `path` (a stale socket file there is replaced).
    #[napi(constructor)]
    pub fn new(path: String) -> Result<Self> {
        Ok(VhostListener {
            inner: Some(Listener::bind(&path).map_err(to_napi)?),
        })
    }

    /// The next pending connection, or null.
    #[napi]
    pub fn accept(&mut self) -> Result<Option<VhostConnection>> {
        let Some(l) = &self.inner else {
            return Err(to_napi(Error::InvalidArgument("listener is closed".into())));
        };
        Ok(l.accept()
            .map_err(to_napi)?
            .map(|c| VhostConnection { inner: Some(c) }))
    }

    /// Stop listening and remove the socket file. Idempotent.
    #[napi]
    pub fn close(&mut self) {
        self.inner = None;
    }
}

/// One vhost-user connection (either side). `recv()` never blocks.
#[napi]
pub struct VhostConnection {
    inner: Option<Conn>,
}

impl VhostConnection {
    fn conn(&mut self) -> Result<&mut Conn> {
        self.inner
            .as_mut()
            .ok_or_else(|| to_napi(Error::InvalidArgument("connection is closed".into())))
    }
}

#[napi]
impl VhostConnection {
    /// Connect to a backend listening on `path`.
    #[napi(factory)]
    pub fn connect(path: String) -> Result<Self> {
        Ok(VhostConnection {
            inner: Some(Conn::connect(&path).map_err(to_napi)?),
        })
    }

    /// The next whole message, or null when none is complete; `closed` turns true when the
    /// peer hung up. A malformed message throws EINVAL: drop the connection then.
    #[napi]
    pub fn recv(&mut self) -> Result<Option<VhostMessage>> {
        let c = self.conn()?;
        match c.recv().map_err(to_napi)? {
            Recv::Pending => Ok(None),
            Recv::Closed => {
                self.inner = None;
                Ok(None)
            }
            Recv::Message(m, fds) => {
                let raw: Vec<i32> = fds.into_iter().map(IntoRawFd::into_raw_fd).collect();
                let out = to_js(m, raw.clone());
                if out.is_err() {
                    raw.iter().for_each(|&fd| {
                        let _ = vhost_sock::close(fd);
                    });
                }
                out.map(Some)
            }
        }
    }

    /// Send a message with `fds` attached (the caller keeps its fds).
    #[napi]
    pub fn send(&mut self, msg: VhostMessage) -> Result<()> {
        let m = from_js(&msg)?;
        self.conn()?.send(&m, &msg.fds).map_err(to_napi)
    }

    /// True once the peer hung up or `close()` ran.
    #[napi(getter)]
    pub fn closed(&self) -> bool {
        self.inner.is_none()
    }

    /// The socket's fd (diagnostics).
    #[napi(getter)]
    pub fn fd(&self) -> i32 {
        self.inner.as_ref().map_or(-1, |c| c.raw_fd().as_raw_fd())
    }

    /// Close the connection. Idempotent.
    #[napi]
    pub fn close(&mut self) {
        self.inner = None;
    }
}

/// A new nonblocking eventfd (the caller owns it; close with `vhostCloseFd`).
#[napi]
pub fn vhost_eventfd() -> Result<i32> {
    Ok(vhost_sock::into_raw(
        vhost_sock::eventfd().map_err(to_napi)?,
    ))
}

/// Read and reset an eventfd: 0 when it was not signalled.
#[napi]
pub fn vhost_eventfd_read(fd: i32) -> Result<f64> {
    vhost_sock::eventfd_read(fd)
        .map(|v| v as f64)
        .map_err(to_napi)
}

/// Signal an eventfd (a vring call or kick).
#[napi]
pub fn vhost_eventfd_write(fd: i32) -> Result<()> {
    vhost_sock::eventfd_write(fd, 1).map_err(to_napi)
}

/// Close an fd received in a message or made by `vhostEventfd`.
#[napi]
pub fn vhost_close_fd(fd: i32) -> Result<()> {
    vhost_sock::close(fd).map_err(to_napi)
}

#[napi(object)]
pub struct VhostMappedRegion {
    /// Registry handle (open a view with the usual region machinery).
    pub handle: u32,
    /// Offset of the region's first byte inside the mapping.
    pub delta: u32,
}

/// Map `size` bytes of a memory region's fd at `offset` (shared, writable) and register
/// the mapping; the caller still owns and closes `fd`.
#[napi]
pub fn vhost_map_region(env: Env, fd: i32, offset: f64, size: f64) -> Result<VhostMappedRegion> {
    let (m, delta) =
        vhost_sock::map_region(fd, from_f64("offset", offset)?, from_f64("size", size)?)
            .map_err(to_napi)?;
    let handle = crate::mem::register_owned(&env, m)?;
    Ok(VhostMappedRegion {
        handle,
        delta: delta as u32,
    })
}
