//! io_uring for the I/O path: one ring per reactor, buffers in DMA regions.
//!
//! The JS side fills a batch of fixed-size descriptors (layout below, one definition) and
//! hands the whole batch over in one call; completions come back the same way. Buffers
//! are named as (region slot, offset): the ring holds an `Arc` of every region it may do
//! I/O into, so a region cannot be unmapped while the kernel might still write into it,
//! and a region can only be removed from the ring when nothing is in flight.

use std::sync::Arc;

use io_uring::{opcode, squeue, types, IoUring};

use crate::mem::Mapping;
use crate::{Error, Result};

/// Descriptor layout, in f64 words (every field is an integer below 2^53):
/// `[op, fd, region slot, offset in region, length, file offset, user data, reserved]`.
pub const DESC_WORDS: usize = 8;
/// Completion layout, in f64 words: `[user data, result]` (result: bytes or -errno).
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

pub struct Ring {
    ring: IoUring,
    regions: Vec<Option<Arc<Mapping>>>,
    inflight: u32,
    /// In-flight cap: the completion queue size, so completions can never overflow it.
    cap: u32,
    /// Entries of the batch being validated; reused so steady-state submits do not allocate.
    staged: Vec<squeue::Entry>,
}

impl Ring {
    /// A ring with `entries` submission slots (rounded up to a power of two by the kernel).
    pub fn new(entries: u32) -> Result<Ring> {
        if entries == 0 || entries > 4096 {
            return Err(Error::InvalidArgument(format!(
                "ring entries {entries} must be 1..=4096"
            )));
        }
        let ring = IoUring::new(entries).map_err(|e| Error::Os {
            op: "io_uring_setup",
            errno: e.raw_os_error().unwrap_or(libc::EIO),
        })?;
        let cap = ring.params().cq_entries();
        Ok(Ring {
            ring,
            regions: Vec::new(),
            inflight: 0,
            cap,
            staged: Vec::with_capacity(cap as usize),
        })
    }

    pub fn sq_entries(&self) -> u32 {
        self.ring.params().sq_entries()
    }

    pub fn cq_entries(&self) -> u32 {
        self.ring.params().cq_entries()
    }

    pub fn inflight(&self) -> u32 {
        self.inflight
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
        if self.inflight > 0 {
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

    fn entry(&self, d: &IoDesc) -> Result<squeue::Entry> {
        let fd = types::Fd(d.fd);
        let e = match d.op {
            Op::Nop => opcode::Nop::new().build(),
            Op::Fsync => opcode::Fsync::new(fd).build(),
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
                // SAFETY: offset + len <= region length was checked just above.
                let buf = unsafe { m.as_ptr().add(d.offset as usize) };
                if d.op == Op::Read {
                    opcode::Read::new(fd, buf, d.len)
                        .offset(d.file_offset)
                        .build()
                } else {
                    opcode::Write::new(fd, buf, d.len)
                        .offset(d.file_offset)
                        .build()
                }
            }
        };
        Ok(e.user_data(d.user_data))
    }

    /// Validate every descriptor of the batch (nothing is queued if one is bad), queue as
    /// many as fit (SQ space and the in-flight cap), and submit them with one syscall.
    /// Returns how many were accepted; the rest are the caller's to retry.
    pub fn submit(&mut self, descs: &[IoDesc]) -> Result<usize> {
        self.staged.clear();
        for d in descs {
            let e = self.entry(d)?;
            self.staged.push(e);
        }
        self.push_staged()
    }

    /// `submit` for a batch in the descriptor wire layout (`DESC_WORDS` per descriptor).
    pub fn submit_words(&mut self, words: &[f64]) -> Result<usize> {
        self.staged.clear();
        for w in words.chunks_exact(DESC_WORDS) {
            let e = self.entry(&IoDesc::decode(w)?)?;
            self.staged.push(e);
        }
        self.push_staged()
    }

    fn push_staged(&mut self) -> Result<usize> {
        let room = (self.cap - self.inflight) as usize;
        let mut queued = 0;
        {
            let mut sq = self.ring.submission();
            for e in self.staged.iter().take(room) {
                // SAFETY: every buffer lies in a region this ring holds an Arc of, and
                // regions cannot be removed while I/O is in flight (remove_region), nor can
                // the ring be dropped before in-flight I/O completes (Drop drains).
                if unsafe { sq.push(e) }.is_err() {
                    break;
                }
                queued += 1;
            }
        }
        self.inflight += queued as u32;
        if queued > 0 {
            self.ring.submit().map_err(|e| Error::Os {
                op: "io_uring_enter",
                errno: e.raw_os_error().unwrap_or(libc::EIO),
            })?;
        }
        Ok(queued)
    }

    /// Move up to `out.len() / CQE_WORDS` completions into `out` without a syscall.
    pub fn reap(&mut self, out: &mut [f64]) -> usize {
        let mut n = 0;
        for (cqe, slot) in self.ring.completion().zip(out.chunks_exact_mut(CQE_WORDS)) {
            slot[0] = cqe.user_data() as f64;
            slot[1] = cqe.result() as f64;
            n += 1;
        }
        self.inflight -= n as u32;
        n
    }

    /// Block until at least `min` completions are ready (tests and shutdown, not pollers).
    pub fn wait(&mut self, min: u32) -> Result<()> {
        let min = min.min(self.inflight) as usize;
        self.ring.submit_and_wait(min).map_err(|e| Error::Os {
            op: "io_uring_enter",
            errno: e.raw_os_error().unwrap_or(libc::EIO),
        })?;
        Ok(())
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // The kernel may still be writing into our regions: wait for everything before the
        // region Arcs go (which may unmap them).
        let mut sink = [0f64; 64];
        while self.inflight > 0 {
            if self.wait(1).is_err() {
                break;
            }
            self.reap(&mut sink);
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
        assert_eq!(r.remove_region(slot).unwrap_err().code(), "EBUSY");
        assert_eq!(drain(&mut r, 1), vec![(4, -libc::EBADF)]);
        r.remove_region(slot).unwrap();
        assert_eq!(r.remove_region(slot).unwrap_err().code(), "EINVAL");
    }

    #[test]
    fn caps_in_flight_at_the_completion_queue() {
        let mut r = Ring::new(2).unwrap();
        let cap = r.cap as usize;
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
