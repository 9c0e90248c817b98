//! io_uring for the I/O path: one ring per reactor, buffers in DMA regions.
//!
//! Set up directly on the syscalls (no liburing, no io-uring crate) because JS polls the
//! completion queue itself: the CQ is memory the kernel writes, so a second, read-only
//! mapping of it lets an idle poll be one Atomics.load in JS instead of a napi call.
//! JS hands back how far it has read (`consume_to`) once per non-empty batch.
//!
//! The JS side fills a batch of fixed-size descriptors (layout below, one definition) and
//! hands the whole batch over in one call; completions come back the same way. Buffers
//! are named as (region slot, offset): the ring holds an `Arc` of every region it may do
//! I/O into, so a region cannot be unmapped while the kernel might still write into it,
//! and a region can only be removed from the ring when nothing is in flight.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use crate::mem::Mapping;
use crate::{Error, Result};

/// Descriptor layout, in f64 words (every field is an integer below 2^53):
/// `[op, fd, region slot, offset in region, length, file offset, user data, reserved]`.
pub const DESC_WORDS: usize = 8;
/// Completions as `reap` writes them, in f64 words: `[user data, result]` (bytes or -errno).
/// (The kernel's own CQE is 16 bytes: user data u64, result i32, flags u32.)
pub const CQE_WORDS: usize = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Nop = 0,
    Read = 1,
    Write = 2,
    Fsync = 3,
}

/// One decoded, validated descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoDesc {
    pub op: Op,
    pub fd: i32,
    pub region: u32,
    pub offset: u64,
    pub len: u32,
    pub file_offset: u64,
    pub user_data: u64,
}

fn int(words: &[f64], i: usize, what: &str, max: f64) -> Result<u64> {
    let v = words[i];
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= max {
        Ok(v as u64)
    } else {
        Err(Error::InvalidArgument(format!(
            "descriptor {what} {v} is out of range"
        )))
    }
}

impl IoDesc {
    /// Decode one descriptor from its `DESC_WORDS` words.
    pub fn decode(words: &[f64]) -> Result<IoDesc> {
        const SAFE: f64 = 9_007_199_254_740_991.0;
        let op = match int(words, 0, "op", 3.0)? {
            0 => Op::Nop,
            1 => Op::Read,
            2 => Op::Write,
            _ => Op::Fsync,
        };
        Ok(IoDesc {
            op,
            fd: int(words, 1, "fd", i32::MAX as f64)? as i32,
            region: int(words, 2, "region slot", u32::MAX as f64)? as u32,
            offset: int(words, 3, "offset", SAFE)?,
            len: int(words, 4, "length", u32::MAX as f64)? as u32,
            file_offset: int(words, 5, "file offset", SAFE)?,
            user_data: int(words, 6, "user data", SAFE)?,
        })
    }
}

// The kernel ABI (include/uapi/linux/io_uring.h), only what is used here.
#[repr(C)]
#[derive(Default)]
struct SqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    flags: u32,
    dropped: u32,
    array: u32,
    resv1: u32,
    user_addr: u64,
}

#[repr(C)]
#[derive(Default)]
struct CqOffsets {
    head: u32,
    tail: u32,
    ring_mask: u32,
    ring_entries: u32,
    overflow: u32,
    cqes: u32,
    flags: u32,
    resv1: u32,
    user_addr: u64,
}

#[repr(C)]
#[derive(Default)]
struct Params {
    sq_entries: u32,
    cq_entries: u32,
    flags: u32,
    sq_thread_cpu: u32,
    sq_thread_idle: u32,
    features: u32,
    wq_fd: u32,
    resv: [u32; 3],
    sq_off: SqOffsets,
    cq_off: CqOffsets,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Sqe {
    opcode: u8,
    flags: u8,
    ioprio: u16,
    fd: i32,
    off: u64,
    addr: u64,
    len: u32,
    rw_flags: u32,
    user_data: u64,
    buf_index: u16,
    personality: u16,
    splice_fd_in: i32,
    addr3: u64,
    pad: u64,
}

#[repr(C)]
struct Cqe {
    user_data: u64,
    res: i32,
    flags: u32,
}

const _: () = assert!(std::mem::size_of::<Params>() == 120);
const _: () = assert!(std::mem::size_of::<Sqe>() == 64);
const _: () = assert!(std::mem::size_of::<Cqe>() == 16);

const IORING_OFF_SQ_RING: i64 = 0;
const IORING_OFF_CQ_RING: i64 = 0x800_0000;
const IORING_OFF_SQES: i64 = 0x1000_0000;
const IORING_FEAT_SINGLE_MMAP: u32 = 1;
const IORING_FEAT_NODROP: u32 = 1 << 1;
const IORING_ENTER_GETEVENTS: u32 = 1;
const IORING_OP_NOP: u8 = 0;
const IORING_OP_FSYNC: u8 = 3;
const IORING_OP_READ: u8 = 22;
const IORING_OP_WRITE: u8 = 23;

/// Where JS finds things in its read-only mapping of the completion queue (byte offsets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CqLayout {
    pub head: u32,
    pub tail: u32,
    pub mask: u32,
    pub entries: u32,
    pub cqes: u32,
    /// Bytes to map.
    pub len: usize,
}

/// One mmap of ring memory, unmapped on drop.
struct Map {
    ptr: NonNull<u8>,
    len: usize,
}

impl Map {
    fn new(fd: &OwnedFd, len: usize, offset: i64, prot: libc::c_int) -> Result<Map> {
        // SAFETY: a fresh kernel-chosen mapping of the ring fd cannot alias Rust memory.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(Error::last_os("mmap io_uring"));
        }
        NonNull::new(p.cast())
            .map(|ptr| Map { ptr, len })
            .ok_or_else(|| Error::last_os("mmap io_uring"))
    }

    /// A u32 the kernel shares with us, at a byte offset it gave (in bounds, 4-aligned).
    fn atomic(&self, off: u32) -> &AtomicU32 {
        assert!(off as usize + 4 <= self.len && off.is_multiple_of(4));
        // SAFETY: in bounds and aligned (asserted); the mapping outlives the borrow.
        unsafe { &*self.ptr.as_ptr().add(off as usize).cast::<AtomicU32>() }
    }
}

impl Drop for Map {
    fn drop(&mut self) {
        // SAFETY: ptr/len is exactly the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A read-only mapping of a ring's completion queue, for JS to poll. It keeps the ring's
/// memory alive by itself (an mmap holds the io_uring file), so it may outlive the `Ring`.
pub struct CqMapping {
    map: Map,
    pub layout: CqLayout,
}

impl CqMapping {
    pub fn as_ptr(&self) -> *mut u8 {
        self.map.ptr.as_ptr()
    }
    pub fn len(&self) -> usize {
        self.map.len
    }
    pub fn is_empty(&self) -> bool {
        self.map.len == 0
    }
}

fn enter(fd: &OwnedFd, to_submit: u32, min_complete: u32, flags: u32) -> Result<u32> {
    loop {
        // SAFETY: io_uring_enter with no argument pointer (sig = NULL, size 0).
        let r = unsafe {
            libc::syscall(
                libc::SYS_io_uring_enter,
                fd.as_raw_fd(),
                to_submit,
                min_complete,
                flags,
                std::ptr::null::<libc::c_void>(),
                0usize,
            )
        };
        if r >= 0 {
            return Ok(r as u32);
        }
        let e = Error::last_os("io_uring_enter");
        if !matches!(e, Error::Os { errno, .. } if errno == libc::EINTR) {
            return Err(e);
        }
    }
}

pub struct Ring {
    fd: OwnedFd,
    rings: Map,
    sqes: Map,
    sq_off: SqOffsets,
    cq: CqLayout,
    sq_entries: u32,
    /// Ring-owned copy of the SQ tail (only we write it).
    sq_tail: u32,
    /// I/Os accepted since creation (wrapping, like the kernel's indices).
    submitted: u32,
    regions: Vec<Option<Arc<Mapping>>>,
    /// Entries of the batch being validated; reused so steady-state submits do not allocate.
    staged: Vec<Sqe>,
}

// SAFETY: the ring is used from one thread at a time (&mut self for everything that
// touches the queues); the raw pointers are to kernel-shared memory owned by `rings`/`sqes`.
unsafe impl Send for Ring {}

impl Ring {
    /// A ring with `entries` submission slots (rounded up to a power of two by the kernel).
    pub fn new(entries: u32) -> Result<Ring> {
        if entries == 0 || entries > 4096 {
            return Err(Error::InvalidArgument(format!(
                "ring entries {entries} must be 1..=4096"
            )));
        }
        let mut p = Params::default();
        // SAFETY: p is a valid, zeroed io_uring_params the kernel fills in.
        let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, entries, &mut p as *mut Params) };
        if fd < 0 {
            return Err(Error::last_os("io_uring_setup"));
        }
        // SAFETY: fd was just returned by io_uring_setup and is owned only here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        let need = IORING_FEAT_SINGLE_MMAP | IORING_FEAT_NODROP;
        if p.features & need != need {
            return Err(Error::NotPermitted(
                "io_uring lacks SINGLE_MMAP/NODROP (kernel 5.5+ needed)".into(),
            ));
        }
        let sq_len = p.sq_off.array as usize + p.sq_entries as usize * 4;
        let cq_len = p.cq_off.cqes as usize + p.cq_entries as usize * std::mem::size_of::<Cqe>();
        let rings = Map::new(
            &fd,
            sq_len.max(cq_len),
            IORING_OFF_SQ_RING,
            libc::PROT_READ | libc::PROT_WRITE,
        )?;
        let sqes = Map::new(
            &fd,
            p.sq_entries as usize * std::mem::size_of::<Sqe>(),
            IORING_OFF_SQES,
            libc::PROT_READ | libc::PROT_WRITE,
        )?;
        let cq = CqLayout {
            head: p.cq_off.head,
            tail: p.cq_off.tail,
            mask: p.cq_off.ring_mask,
            entries: p.cq_entries,
            cqes: p.cq_off.cqes,
            len: cq_len,
        };
        let sq_tail = rings.atomic(p.sq_off.tail).load(Ordering::Relaxed);
        Ok(Ring {
            fd,
            rings,
            sqes,
            sq_entries: p.sq_entries,
            sq_off: p.sq_off,
            cq,
            sq_tail,
            submitted: 0,
            regions: Vec::new(),
            staged: Vec::with_capacity(p.sq_entries as usize),
        })
    }

    pub fn sq_entries(&self) -> u32 {
        self.sq_entries
    }

    pub fn cq_entries(&self) -> u32 {
        self.cq.entries
    }

    fn cq_head(&self) -> u32 {
        self.rings.atomic(self.cq.head).load(Ordering::Acquire)
    }

    fn cq_tail(&self) -> u32 {
        self.rings.atomic(self.cq.tail).load(Ordering::Acquire)
    }

    /// Submitted I/Os whose completions have not been consumed.
    pub fn inflight(&self) -> u32 {
        self.submitted.wrapping_sub(self.cq_head())
    }

    /// Submitted I/Os the kernel has not completed yet (may still touch their buffers).
    /// Completions parked in the kernel's overflow list are not counted as done.
    fn in_kernel(&self) -> u32 {
        self.submitted.wrapping_sub(self.cq_tail())
    }

    /// Let the ring do I/O into a region; returns the slot descriptors name it by.
    pub fn add_region(&mut self, m: Arc<Mapping>) -> u32 {
        let slot = match self.regions.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.regions.push(None);
                self.regions.len() - 1
            }
        };
        self.regions[slot] = Some(m);
        slot as u32
    }

    /// Forget a region. EBUSY while any I/O is in flight (it might target this region).
    pub fn remove_region(&mut self, slot: u32) -> Result<()> {
        if self.in_kernel() > 0 {
            return Err(Error::Os {
                op: "remove a region from a ring with I/O in flight",
                errno: libc::EBUSY,
            });
        }
        match self.regions.get_mut(slot as usize) {
            Some(r @ Some(_)) => {
                *r = None;
                Ok(())
            }
            _ => Err(Error::InvalidArgument(format!("no region in slot {slot}"))),
        }
    }

    fn sqe(&self, d: &IoDesc) -> Result<Sqe> {
        let mut e = Sqe {
            fd: d.fd,
            user_data: d.user_data,
            ..Sqe::default()
        };
        match d.op {
            Op::Nop => {
                e.opcode = IORING_OP_NOP;
                e.fd = -1;
            }
            Op::Fsync => e.opcode = IORING_OP_FSYNC,
            Op::Read | Op::Write => {
                let m = self
                    .regions
                    .get(d.region as usize)
                    .and_then(Option::as_ref)
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!("no region in slot {}", d.region))
                    })?;
                let end = d.offset.checked_add(d.len as u64);
                if d.len == 0 || end.is_none_or(|e| e > m.len() as u64) {
                    return Err(Error::InvalidArgument(format!(
                        "buffer {}+{} is outside region slot {} ({} bytes)",
                        d.offset,
                        d.len,
                        d.region,
                        m.len()
                    )));
                }
                e.opcode = if d.op == Op::Read {
                    IORING_OP_READ
                } else {
                    IORING_OP_WRITE
                };
                e.addr = m.as_ptr() as u64 + d.offset;
                e.len = d.len;
                e.off = d.file_offset;
            }
        }
        Ok(e)
    }

    /// Validate every descriptor of the batch (nothing is queued if one is bad), queue as
    /// many as fit (SQ space and the in-flight cap), and submit them with one syscall.
    /// Returns how many were accepted; the rest are the caller's to retry.
    pub fn submit(&mut self, descs: &[IoDesc]) -> Result<usize> {
        self.staged.clear();
        for d in descs {
            let e = self.sqe(d)?;
            self.staged.push(e);
        }
        self.push_staged()
    }

    /// `submit` for a batch in the descriptor wire layout (`DESC_WORDS` per descriptor).
    pub fn submit_words(&mut self, words: &[f64]) -> Result<usize> {
        self.staged.clear();
        for w in words.chunks_exact(DESC_WORDS) {
            let e = self.sqe(&IoDesc::decode(w)?)?;
            self.staged.push(e);
        }
        self.push_staged()
    }

    fn push_staged(&mut self) -> Result<usize> {
        let sq_head = self.rings.atomic(self.sq_off.head).load(Ordering::Acquire);
        let sq_room = self.sq_entries - self.sq_tail.wrapping_sub(sq_head);
        // Never more unconsumed completions than the CQ holds.
        let cq_room = self.cq.entries - self.inflight();
        let n = (self.staged.len() as u32).min(sq_room).min(cq_room);
        let mask = self
            .rings
            .atomic(self.sq_off.ring_mask)
            .load(Ordering::Relaxed);
        let array = self.sq_off.array;
        for e in &self.staged[..n as usize] {
            let idx = self.sq_tail & mask;
            // SAFETY: idx <= mask < sq_entries, the size of the SQE array; the kernel does
            // not read this slot until the tail store below publishes it.
            unsafe {
                self.sqes
                    .ptr
                    .as_ptr()
                    .cast::<Sqe>()
                    .add(idx as usize)
                    .write(*e)
            };
            self.rings
                .atomic(array + 4 * idx)
                .store(idx, Ordering::Relaxed);
            self.sq_tail = self.sq_tail.wrapping_add(1);
        }
        if n == 0 {
            return Ok(0);
        }
        // Publish the entries, then tell the kernel. Every buffer lies in a region the ring
        // holds an Arc of; regions cannot be removed while I/O is in the kernel, and Drop
        // waits for it all.
        self.rings
            .atomic(self.sq_off.tail)
            .store(self.sq_tail, Ordering::Release);
        self.submitted = self.submitted.wrapping_add(n);
        let mut pending = n;
        while pending > 0 {
            pending -= enter(&self.fd, pending, 0, 0)?.min(pending);
        }
        Ok(n as usize)
    }

    /// Move up to `out.len() / CQE_WORDS` completions into `out` (no syscall). For Rust
    /// callers; JS reads its read-only mapping and calls `consume_to` instead.
    pub fn reap(&mut self, out: &mut [f64]) -> usize {
        let head = self.cq_head();
        let ready = self.cq_tail().wrapping_sub(head) as usize;
        let n = ready.min(out.len() / CQE_WORDS);
        let mask = self.rings.atomic(self.cq.mask).load(Ordering::Relaxed);
        for i in 0..n {
            let idx = (head.wrapping_add(i as u32) & mask) as usize;
            // SAFETY: idx <= mask < cq_entries; the Acquire load of the tail above makes
            // the kernel's CQE writes visible.
            let c = unsafe {
                self.rings
                    .ptr
                    .as_ptr()
                    .add(self.cq.cqes as usize)
                    .cast::<Cqe>()
                    .add(idx)
                    .read()
            };
            out[2 * i] = c.user_data as f64;
            out[2 * i + 1] = c.res as f64;
        }
        self.rings
            .atomic(self.cq.head)
            .store(head.wrapping_add(n as u32), Ordering::Release);
        n
    }

    /// Record that completions up to `head` (the CQ index JS read to) are consumed.
    /// EINVAL if that is behind the current head or beyond what the kernel posted.
    pub fn consume_to(&mut self, head: u32) -> Result<()> {
        let cur = self.cq_head();
        let posted = self.cq_tail().wrapping_sub(cur);
        if head.wrapping_sub(cur) > posted {
            return Err(Error::InvalidArgument(format!(
                "completion head {head} is outside {cur}..={}",
                cur.wrapping_add(posted)
            )));
        }
        self.rings
            .atomic(self.cq.head)
            .store(head, Ordering::Release);
        Ok(())
    }

    /// A read-only mapping of the completion queue for JS, and where things are in it.
    pub fn map_completions(&self) -> Result<CqMapping> {
        Ok(CqMapping {
            map: Map::new(&self.fd, self.cq.len, IORING_OFF_CQ_RING, libc::PROT_READ)?,
            layout: self.cq,
        })
    }

    /// Block until at least `min` completions are ready to consume (tests and shutdown,
    /// not pollers).
    pub fn wait(&mut self, min: u32) -> Result<()> {
        let min = min.min(self.inflight());
        if min > 0 {
            enter(&self.fd, 0, min, IORING_ENTER_GETEVENTS)?;
        }
        Ok(())
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // The kernel may still be reading or writing our regions: wait until it has
        // completed everything before the region Arcs go (which may unmap them). Consuming
        // as we go lets completions parked in the overflow list reach the CQ.
        while self.in_kernel() > 0 {
            let tail = self.cq_tail();
            self.rings
                .atomic(self.cq.head)
                .store(tail, Ordering::Release);
            if enter(&self.fd, 0, 1, IORING_ENTER_GETEVENTS).is_err() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::HugepagePolicy;
    use std::os::fd::AsRawFd;

    fn desc(op: Op, fd: i32, offset: u64, len: u32, file_offset: u64, user_data: u64) -> IoDesc {
        IoDesc {
            op,
            fd,
            region: 0,
            offset,
            len,
            file_offset,
            user_data,
        }
    }

    fn drain(r: &mut Ring, n: usize) -> Vec<(u64, i32)> {
        let mut got = Vec::new();
        let mut out = [0f64; 16];
        while got.len() < n {
            r.wait(1).unwrap();
            let k = r.reap(&mut out);
            got.extend(out[..k * 2].chunks(2).map(|c| (c[0] as u64, c[1] as i32)));
        }
        got.sort();
        got
    }

    #[test]
    fn decodes_and_rejects_descriptors() {
        let d = IoDesc::decode(&[1.0, 5.0, 2.0, 4096.0, 512.0, 8192.0, 77.0, 0.0]).unwrap();
        assert_eq!(
            d,
            IoDesc {
                region: 2,
                ..desc(Op::Read, 5, 4096, 512, 8192, 77)
            }
        );
        for bad in [
            [4.0, 5.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
            [1.0, -1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0],
            [1.0, 5.0, 0.0, 0.5, 1.0, 0.0, 0.0, 0.0],
            [1.0, 5.0, 0.0, 0.0, f64::NAN, 0.0, 0.0, 0.0],
        ] {
            assert_eq!(IoDesc::decode(&bad).unwrap_err().code(), "EINVAL");
        }
    }

    #[test]
    fn writes_then_reads_a_file_through_a_dma_region() {
        let path = std::env::temp_dir().join(format!("storkit-uring-{}", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        let fd = file.as_raw_fd();
        let m = Arc::new(Mapping::dma(16384, HugepagePolicy::Never).unwrap());
        // SAFETY: 16 KiB mapping, nothing else touches it during the test.
        let bytes = unsafe { std::slice::from_raw_parts_mut(m.as_ptr(), m.len()) };
        bytes[..8192]
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = (i % 251) as u8);
        let mut r = Ring::new(8).unwrap();
        assert_eq!(r.add_region(m.clone()), 0);
        let n = r
            .submit(&[
                desc(Op::Write, fd, 0, 4096, 4096, 1),
                desc(Op::Write, fd, 4096, 4096, 0, 2),
            ])
            .unwrap();
        assert_eq!(n, 2);
        assert_eq!(drain(&mut r, 2), vec![(1, 4096), (2, 4096)]);
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(&on_disk[4096..], &bytes[..4096]);
        assert_eq!(&on_disk[..4096], &bytes[4096..8192]);
        r.submit(&[
            desc(Op::Read, fd, 8192, 8192, 0, 3),
            desc(Op::Fsync, fd, 0, 0, 0, 4),
        ])
        .unwrap();
        assert_eq!(drain(&mut r, 2), vec![(3, 8192), (4, 0)]);
        assert_eq!(&bytes[8192..], &on_disk[..]);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn refuses_bad_buffers_whole_batch_and_busy_removal() {
        let m = Arc::new(Mapping::dma(4096, HugepagePolicy::Never).unwrap());
        let mut r = Ring::new(4).unwrap();
        let slot = r.add_region(m);
        let bad = [
            desc(Op::Nop, -1, 0, 0, 0, 1),
            desc(Op::Read, 0, 4000, 200, 0, 2),
        ];
        assert_eq!(r.submit(&bad).unwrap_err().code(), "EINVAL");
        assert_eq!(r.inflight(), 0, "nothing of a bad batch is queued");
        let other = IoDesc {
            region: 9,
            ..desc(Op::Read, 0, 0, 1, 0, 3)
        };
        assert_eq!(r.submit(&[other]).unwrap_err().code(), "EINVAL");
        // A bad fd is the kernel's to report, as a completion.
        r.submit(&[desc(Op::Read, 999_999, 0, 512, 0, 4)]).unwrap();
        assert_eq!(drain(&mut r, 1), vec![(4, -libc::EBADF)]);
        // A read from an empty pipe stays in the kernel until someone writes.
        let mut p = [0i32; 2];
        // SAFETY: p is a valid out-array of two fds.
        assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
        r.submit(&[desc(Op::Read, p[0], 0, 8, 0, 5)]).unwrap();
        assert_eq!(r.remove_region(slot).unwrap_err().code(), "EBUSY");
        // SAFETY: writing 3 bytes from a static buffer to the pipe we own.
        assert_eq!(unsafe { libc::write(p[1], b"abc".as_ptr().cast(), 3) }, 3);
        assert_eq!(drain(&mut r, 1), vec![(5, 3)]);
        // SAFETY: closing the pipe fds created above.
        unsafe {
            libc::close(p[0]);
            libc::close(p[1]);
        }
        r.remove_region(slot).unwrap();
        assert_eq!(r.remove_region(slot).unwrap_err().code(), "EINVAL");
    }

    #[test]
    fn completions_read_through_the_read_only_mapping() {
        let mut r = Ring::new(4).unwrap();
        let cq = r.map_completions().unwrap();
        let l = cq.layout;
        let at = |off: u32| {
            // SAFETY: offsets from the kernel's layout, inside the mapping.
            unsafe { (*cq.as_ptr().add(off as usize).cast::<AtomicU32>()).load(Ordering::Acquire) }
        };
        assert_eq!(at(l.tail), 0);
        r.submit(&[
            desc(Op::Nop, -1, 0, 0, 0, 11),
            desc(Op::Nop, -1, 0, 0, 0, 12),
        ])
        .unwrap();
        r.wait(2).unwrap();
        assert_eq!(at(l.tail), 2);
        let mask = at(l.mask);
        let ud = |i: u32| {
            // SAFETY: CQE i (masked) lies inside the mapping.
            unsafe {
                cq.as_ptr()
                    .add(l.cqes as usize + 16 * (i & mask) as usize)
                    .cast::<u64>()
                    .read_volatile()
            }
        };
        let mut seen = [ud(0), ud(1)];
        seen.sort();
        assert_eq!(seen, [11, 12]);
        assert_eq!(r.inflight(), 2);
        assert_eq!(r.consume_to(3).unwrap_err().code(), "EINVAL");
        r.consume_to(2).unwrap();
        assert_eq!(r.inflight(), 0);
        assert_eq!(at(l.head), 2);
        assert_eq!(
            r.consume_to(1).unwrap_err().code(),
            "EINVAL",
            "no going back"
        );
        drop(r);
        assert_eq!(at(l.tail), 2, "the mapping outlives the ring");
    }

    #[test]
    fn caps_in_flight_at_the_completion_queue() {
        let mut r = Ring::new(2).unwrap();
        let cap = r.cq_entries() as usize;
        let nops: Vec<_> = (0..cap as u64 + 5)
            .map(|i| desc(Op::Nop, -1, 0, 0, 0, i))
            .collect();
        let mut accepted = 0;
        while accepted < cap {
            let n = r.submit(&nops[accepted..]).unwrap();
            assert!(n > 0);
            accepted += n;
        }
        assert_eq!(r.inflight() as usize, cap);
        assert_eq!(
            r.submit(&nops[accepted..]).unwrap(),
            0,
            "full: caller retries"
        );
        assert_eq!(drain(&mut r, cap).len(), cap);
        assert_eq!(r.inflight(), 0);
    }
}
