//! vhost-user wire format (QEMU docs/interop/vhost-user.rst): the 12-byte header, the
//! request codes and every payload layout storkit speaks, decoded and encoded in one place.
//!
//! Everything a peer sends is validated here before anyone uses it: payload sizes must
//! match the request exactly, counts are bounded, and the number of file descriptors must
//! be what the request carries.

use crate::{Error, Result};

/// Header: request u32, flags u32, payload size u32 (little endian, as QEMU sends).
pub const HEADER_SIZE: usize = 12;
/// Largest payload accepted (a config space message is the largest storkit handles).
pub const MAX_PAYLOAD: usize = 4096;
/// Memory regions in one SET_MEM_TABLE (VHOST_MEMORY_BASELINE_NREGIONS).
pub const MAX_REGIONS: usize = 8;
/// File descriptors one message may carry.
pub const MAX_FDS: usize = MAX_REGIONS;
/// Largest device config space GET/SET_CONFIG may address.
pub const MAX_CONFIG_SIZE: u32 = 256;

/// Header flags.
pub const FLAG_VERSION: u32 = 0x1;
pub const FLAG_REPLY: u32 = 0x4;
pub const FLAG_NEED_REPLY: u32 = 0x8;
const VERSION_MASK: u32 = 0x3;

/// Frontend → backend request codes.
pub mod req {
    pub const GET_FEATURES: u32 = 1;
    pub const SET_FEATURES: u32 = 2;
    pub const SET_OWNER: u32 = 3;
    pub const RESET_OWNER: u32 = 4;
    pub const SET_MEM_TABLE: u32 = 5;
    pub const SET_LOG_BASE: u32 = 6;
    pub const SET_LOG_FD: u32 = 7;
    pub const SET_VRING_NUM: u32 = 8;
    pub const SET_VRING_ADDR: u32 = 9;
    pub const SET_VRING_BASE: u32 = 10;
    pub const GET_VRING_BASE: u32 = 11;
    pub const SET_VRING_KICK: u32 = 12;
    pub const SET_VRING_CALL: u32 = 13;
    pub const SET_VRING_ERR: u32 = 14;
    pub const GET_PROTOCOL_FEATURES: u32 = 15;
    pub const SET_PROTOCOL_FEATURES: u32 = 16;
    pub const GET_QUEUE_NUM: u32 = 17;
    pub const SET_VRING_ENABLE: u32 = 18;
    pub const SET_BACKEND_REQ_FD: u32 = 21;
    pub const GET_CONFIG: u32 = 24;
    pub const SET_CONFIG: u32 = 25;
    pub const GET_INFLIGHT_FD: u32 = 31;
    pub const SET_INFLIGHT_FD: u32 = 32;
    pub const RESET_DEVICE: u32 = 34;
    pub const GET_MAX_MEM_SLOTS: u32 = 36;
    pub const ADD_MEM_REG: u32 = 37;
    pub const REM_MEM_REG: u32 = 38;
    pub const SET_STATUS: u32 = 39;
    pub const GET_STATUS: u32 = 40;
}

/// One guest memory region as SET_MEM_TABLE / ADD_MEM_REG describe it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemRegion {
    pub guest_phys_addr: u64,
    pub memory_size: u64,
    pub userspace_addr: u64,
    pub mmap_offset: u64,
}

/// The vring address message (all addresses are frontend user addresses).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VringAddr {
    pub index: u32,
    pub flags: u32,
    pub desc: u64,
    pub used: u64,
    pub avail: u64,
    pub log: u64,
}

/// GET/SET_INFLIGHT_FD payload.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Inflight {
    pub mmap_size: u64,
    pub mmap_offset: u64,
    pub num_queues: u16,
    pub queue_size: u16,
}

/// A decoded payload. Which variant a request carries is fixed by `body_kind`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    Empty,
    U64(u64),
    /// SET_VRING_NUM/BASE/ENABLE, GET_VRING_BASE (request and reply).
    State {
        index: u32,
        num: u32,
    },
    Addr(VringAddr),
    /// SET_VRING_KICK/CALL/ERR: the queue index and whether no fd is attached.
    VringFd {
        index: u32,
        nofd: bool,
    },
    Memory(Vec<MemRegion>),
    /// ADD_MEM_REG / REM_MEM_REG.
    Region(MemRegion),
    Config {
        offset: u32,
        size: u32,
        flags: u32,
        data: Vec<u8>,
    },
    Inflight(Inflight),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Empty,
    U64,
    State,
    Addr,
    VringFd,
    Memory,
    Region,
    Config,
    Inflight,
    /// A request this codec does not know: the payload is kept undecoded only for its size.
    Unknown,
}

/// Payload layout of a request (`reply` selects the reply's layout).
fn body_kind(request: u32, reply: bool) -> Kind {
    use req::*;
    match (request, reply) {
        (GET_FEATURES | GET_PROTOCOL_FEATURES | GET_QUEUE_NUM | GET_MAX_MEM_SLOTS, false) => {
            Kind::Empty
        }
        (GET_FEATURES | GET_PROTOCOL_FEATURES | GET_QUEUE_NUM | GET_MAX_MEM_SLOTS, true) => {
            Kind::U64
        }
        (SET_FEATURES | SET_PROTOCOL_FEATURES | SET_STATUS | SET_LOG_BASE, _) => Kind::U64,
        // REPLY_ACK: any other request is acknowledged with a u64.
        (
            SET_VRING_NUM | SET_VRING_BASE | SET_VRING_ENABLE | SET_CONFIG | SET_INFLIGHT_FD,
            true,
        ) => Kind::U64,
        (GET_STATUS, false) => Kind::Empty,
        (GET_STATUS, true) => Kind::U64,
        (SET_OWNER | RESET_OWNER | RESET_DEVICE, false) => Kind::Empty,
        (SET_MEM_TABLE, false) => Kind::Memory,
        (ADD_MEM_REG | REM_MEM_REG, false) => Kind::Region,
        (SET_VRING_NUM | SET_VRING_BASE | SET_VRING_ENABLE, false) | (GET_VRING_BASE, _) => {
            Kind::State
        }
        (SET_VRING_ADDR, false) => Kind::Addr,
        (
            SET_VRING_KICK | SET_VRING_CALL | SET_VRING_ERR | SET_LOG_FD | SET_BACKEND_REQ_FD,
            false,
        ) => Kind::VringFd,
        (SET_CONFIG, false) | (GET_CONFIG, _) => Kind::Config,
        (SET_INFLIGHT_FD, false) | (GET_INFLIGHT_FD, _) => Kind::Inflight,
        // Any request may be acknowledged with a u64 (REPLY_ACK).
        (_, true) => Kind::U64,
        _ => Kind::Unknown,
    }
}

/// A whole message: header fields and the decoded payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    pub request: u32,
    pub flags: u32,
    pub body: Body,
}

fn proto(msg: String) -> Error {
    Error::Protocol(format!("vhost-user protocol: {msg}"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// The three header words, validated: version 1 and a payload of at most `MAX_PAYLOAD`.
pub fn decode_header(h: &[u8]) -> Result<(u32, u32, usize)> {
    if h.len() < HEADER_SIZE {
        return Err(proto(format!("short header ({} bytes)", h.len())));
    }
    let (request, flags, size) = (u32_at(h, 0), u32_at(h, 4), u32_at(h, 8) as usize);
    if flags & VERSION_MASK != FLAG_VERSION {
        return Err(proto(format!(
            "request {request}: version {} (want 1)",
            flags & VERSION_MASK
        )));
    }
    if size > MAX_PAYLOAD {
        return Err(proto(format!(
            "request {request}: payload of {size} bytes exceeds {MAX_PAYLOAD}"
        )));
    }
    Ok((request, flags, size))
}

fn expect_size(request: u32, p: &[u8], want: usize) -> Result<()> {
    if p.len() != want {
        return Err(proto(format!(
            "request {request}: payload is {} bytes, want {want}",
            p.len()
        )));
    }
    Ok(())
}

fn region_at(p: &[u8], at: usize) -> MemRegion {
    MemRegion {
        guest_phys_addr: u64_at(p, at),
        memory_size: u64_at(p, at + 8),
        userspace_addr: u64_at(p, at + 16),
        mmap_offset: u64_at(p, at + 24),
    }
}

/// Decode a payload and check the fd count it must come with. `reply` is the header's
/// reply flag.
pub fn decode_body(request: u32, flags: u32, p: &[u8], nfds: usize) -> Result<Body> {
    let reply = flags & FLAG_REPLY != 0;
    let kind = body_kind(request, reply);
    let body = match kind {
        Kind::Empty => {
            // QEMU sends a u64 0 with some "empty" requests (e.g. RESET_OWNER); accept 0 or 8.
            if !p.is_empty() && p.len() != 8 {
                return Err(proto(format!(
                    "request {request}: unexpected {}-byte payload",
                    p.len()
                )));
            }
            Body::Empty
        }
        Kind::U64 => {
            expect_size(request, p, 8)?;
            Body::U64(u64_at(p, 0))
        }
        Kind::State => {
            expect_size(request, p, 8)?;
            Body::State {
                index: u32_at(p, 0),
                num: u32_at(p, 4),
            }
        }
        Kind::Addr => {
            expect_size(request, p, 40)?;
            Body::Addr(VringAddr {
                index: u32_at(p, 0),
                flags: u32_at(p, 4),
                desc: u64_at(p, 8),
                used: u64_at(p, 16),
                avail: u64_at(p, 24),
                log: u64_at(p, 32),
            })
        }
        Kind::VringFd => {
            expect_size(request, p, 8)?;
            let v = u64_at(p, 0);
            Body::VringFd {
                index: (v & 0xff) as u32,
                nofd: v & 0x100 != 0,
            }
        }
        Kind::Memory => {
            if p.len() < 8 {
                return Err(proto(format!("request {request}: short memory table")));
            }
            let n = u32_at(p, 0) as usize;
            if n == 0 || n > MAX_REGIONS {
                return Err(proto(format!(
                    "memory table with {n} regions (1..={MAX_REGIONS})"
                )));
            }
            expect_size(request, p, 8 + 32 * n)?;
            Body::Memory((0..n).map(|i| region_at(p, 8 + 32 * i)).collect())
        }
        Kind::Region => {
            expect_size(request, p, 40)?;
            Body::Region(region_at(p, 8))
        }
        Kind::Config => {
            if p.len() < 12 {
                return Err(proto(format!("request {request}: short config message")));
            }
            let (offset, size, cflags) = (u32_at(p, 0), u32_at(p, 4), u32_at(p, 8));
            let end = offset.checked_add(size);
            if !matches!(end, Some(e) if e <= MAX_CONFIG_SIZE) {
                return Err(proto(format!(
                    "config access at {offset}+{size} is outside {MAX_CONFIG_SIZE} bytes"
                )));
            }
            expect_size(request, p, 12 + size as usize)?;
            Body::Config {
                offset,
                size,
                flags: cflags,
                data: p[12..].to_vec(),
            }
        }
        Kind::Inflight => {
            // 20 bytes of fields; QEMU sends the C struct with its tail padding (24).
            if p.len() != 20 {
                expect_size(request, p, 24)?;
            }
            Body::Inflight(Inflight {
                mmap_size: u64_at(p, 0),
                mmap_offset: u64_at(p, 8),
                num_queues: u16_at(p, 16),
                queue_size: u16_at(p, 18),
            })
        }
        Kind::Unknown => Body::Empty,
    };
    let want_fds = match (&body, request) {
        (Body::Memory(r), _) => r.len(),
        (Body::Region(_), req::ADD_MEM_REG) => 1,
        (Body::VringFd { nofd, .. }, _) => usize::from(!*nofd),
        (Body::Inflight(_), req::SET_INFLIGHT_FD) => 1,
        (_, req::SET_LOG_BASE) if !reply => 1,
        (Body::Inflight(_), req::GET_INFLIGHT_FD) if reply => 1,
        // REM_MEM_REG may carry the fd of the region being removed (QEMU sends it).
        (Body::Region(_), req::REM_MEM_REG) => nfds.min(1),
        _ => 0,
    };
    if nfds != want_fds {
        return Err(proto(format!(
            "request {request} came with {nfds} file descriptors, want {want_fds}"
        )));
    }
    Ok(body)
}

fn put32(v: &mut Vec<u8>, x: u32) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn put64(v: &mut Vec<u8>, x: u64) {
    v.extend_from_slice(&x.to_le_bytes());
}

fn put_region(v: &mut Vec<u8>, r: &MemRegion) {
    put64(v, r.guest_phys_addr);
    put64(v, r.memory_size);
    put64(v, r.userspace_addr);
    put64(v, r.mmap_offset);
}

/// Encode a whole message (header + payload). The payload must fit `MAX_PAYLOAD`.
pub fn encode(m: &Msg) -> Result<Vec<u8>> {
    let mut v = Vec::with_capacity(HEADER_SIZE + 64);
    put32(&mut v, m.request);
    put32(&mut v, (m.flags & !VERSION_MASK) | FLAG_VERSION);
    put32(&mut v, 0);
    match &m.body {
        Body::Empty => {}
        Body::U64(x) => put64(&mut v, *x),
        Body::State { index, num } => {
            put32(&mut v, *index);
            put32(&mut v, *num);
        }
        Body::Addr(a) => {
            put32(&mut v, a.index);
            put32(&mut v, a.flags);
            for x in [a.desc, a.used, a.avail, a.log] {
                put64(&mut v, x);
            }
        }
        Body::VringFd { index, nofd } => {
            if *index > 0xff {
                return Err(proto(format!("vring index {index} does not fit 8 bits")));
            }
            put64(&mut v, u64::from(*index) | if *nofd { 0x100 } else { 0 });
        }
        Body::Memory(rs) => {
            if rs.is_empty() || rs.len() > MAX_REGIONS {
                return Err(proto(format!("{} regions (1..={MAX_REGIONS})", rs.len())));
            }
            put32(&mut v, rs.len() as u32);
            put32(&mut v, 0);
            rs.iter().for_each(|r| put_region(&mut v, r));
        }
        Body::Region(r) => {
            put64(&mut v, 0);
            put_region(&mut v, r);
        }
        Body::Config {
            offset,
            size,
            flags,
            data,
        } => {
            if data.len() != *size as usize || *size > MAX_CONFIG_SIZE {
                return Err(proto(format!(
                    "config size {size} with {} data bytes",
                    data.len()
                )));
            }
            put32(&mut v, *offset);
            put32(&mut v, *size);
            put32(&mut v, *flags);
            v.extend_from_slice(data);
        }
        Body::Inflight(i) => {
            put64(&mut v, i.mmap_size);
            put64(&mut v, i.mmap_offset);
            v.extend_from_slice(&i.num_queues.to_le_bytes());
            v.extend_from_slice(&i.queue_size.to_le_bytes());
            v.extend_from_slice(&[0; 4]); // struct padding, as QEMU lays it out
        }
    }
    let size = v.len() - HEADER_SIZE;
    if size > MAX_PAYLOAD {
        return Err(proto(format!("payload of {size} bytes")));
    }
    v[8..12].copy_from_slice(&(size as u32).to_le_bytes());
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(request: u32, flags: u32, body: Body, nfds: usize) {
        let m = Msg {
            request,
            flags,
            body,
        };
        let bytes = encode(&m).unwrap();
        let (r, f, size) = decode_header(&bytes).unwrap();
        assert_eq!(size, bytes.len() - HEADER_SIZE);
        let body = decode_body(r, f, &bytes[HEADER_SIZE..], nfds).unwrap();
        assert_eq!(body, m.body, "request {request}");
    }

    #[test]
    fn every_payload_roundtrips() {
        let r = MemRegion {
            guest_phys_addr: 0xc0000,
            memory_size: 0x1ff40000,
            userspace_addr: 0x7f00_000c_0000,
            mmap_offset: 0xc0000,
        };
        roundtrip(req::SET_FEATURES, 0, Body::U64(1 << 32 | 1 << 30), 0);
        roundtrip(req::GET_FEATURES, FLAG_REPLY, Body::U64(u64::MAX), 0);
        roundtrip(req::GET_FEATURES, 0, Body::Empty, 0);
        roundtrip(req::SET_VRING_NUM, 0, Body::State { index: 1, num: 256 }, 0);
        roundtrip(
            req::SET_VRING_ADDR,
            0,
            Body::Addr(VringAddr {
                index: 0,
                flags: 1,
                desc: 1,
                used: 2,
                avail: 3,
                log: 4,
            }),
            0,
        );
        roundtrip(
            req::SET_VRING_KICK,
            0,
            Body::VringFd {
                index: 3,
                nofd: false,
            },
            1,
        );
        roundtrip(
            req::SET_VRING_CALL,
            0,
            Body::VringFd {
                index: 3,
                nofd: true,
            },
            0,
        );
        roundtrip(req::SET_MEM_TABLE, 0, Body::Memory(vec![r, r]), 2);
        roundtrip(req::ADD_MEM_REG, 0, Body::Region(r), 1);
        roundtrip(
            req::GET_CONFIG,
            FLAG_REPLY,
            Body::Config {
                offset: 0,
                size: 4,
                flags: 0,
                data: vec![1, 2, 3, 4],
            },
            0,
        );
        roundtrip(
            req::GET_INFLIGHT_FD,
            0,
            Body::Inflight(Inflight {
                mmap_size: 0,
                mmap_offset: 0,
                num_queues: 2,
                queue_size: 128,
            }),
            0,
        );
    }

    #[test]
    fn acks_are_u64_even_for_vring_requests() {
        roundtrip(req::SET_VRING_NUM, FLAG_REPLY, Body::U64(0), 0);
        roundtrip(req::SET_CONFIG, FLAG_REPLY, Body::U64(1), 0);
        roundtrip(
            req::GET_VRING_BASE,
            FLAG_REPLY,
            Body::State { index: 1, num: 7 },
            0,
        );
    }

    #[test]
    fn hostile_payloads_are_rejected() {
        let mut h = vec![0u8; 12];
        h[0] = 1;
        h[4] = 2; // version 2
        assert!(decode_header(&h).is_err());
        h[4] = 1;
        h[8..12].copy_from_slice(&((MAX_PAYLOAD as u32) + 1).to_le_bytes());
        assert!(decode_header(&h).is_err());
        // Wrong sizes, too many regions, fd count mismatch, config out of range.
        assert!(decode_body(req::SET_VRING_NUM, 1, &[0; 7], 0).is_err());
        let mut mem = vec![0u8; 8 + 32 * 9];
        mem[0] = 9;
        assert!(decode_body(req::SET_MEM_TABLE, 1, &mem, 9).is_err());
        let mut mem = vec![0u8; 8 + 32];
        mem[0] = 1;
        assert!(decode_body(req::SET_MEM_TABLE, 1, &mem, 0).is_err());
        assert!(decode_body(req::SET_MEM_TABLE, 1, &mem, 1).is_ok());
        assert!(decode_body(req::SET_VRING_KICK, 1, &[0; 8], 0).is_err());
        let mut cfg = vec![0u8; 12 + 8];
        cfg[0..4].copy_from_slice(&250u32.to_le_bytes());
        cfg[4..8].copy_from_slice(&8u32.to_le_bytes());
        assert!(decode_body(req::GET_CONFIG, 1, &cfg, 0).is_err());
        cfg[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode_body(req::GET_CONFIG, 1, &cfg, 0).is_err());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 80) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (x >> (i % 8 * 8)) as u8).collect();
            let req = (x >> 40) as u32 % 45;
            let _ = decode_body(req, (x >> 20) as u32 & 0xf, &bytes, (x % 3) as usize);
        }
    }
}
