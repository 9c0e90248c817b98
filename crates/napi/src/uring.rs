//! An io_uring per worker, as a napi class. One call submits a whole batch of descriptors
//! (`storkit_core::uring::DESC_WORDS` f64 words each) and one call reaps a batch of
//! completions, so the napi cost is paid per batch, not per I/O.

use napi::bindgen_prelude::Float64Array;
use napi_derive::napi;
use storkit_core::registry;
use storkit_core::uring::{Ring, CQE_WORDS, DESC_WORDS};

use crate::to_napi;

#[napi]
pub struct Uring {
    ring: Option<Ring>,
}

impl Uring {
    fn ring(&mut self) -> napi::Result<&mut Ring> {
        self.ring.as_mut().ok_or_else(|| {
            to_napi(storkit_core::Error::InvalidArgument(
                "the ring is closed".into(),
            ))
        })
    }
}

#[napi]
impl Uring {
    /// A ring with `entries` submission slots.
    #[napi(constructor)]
    pub fn new(entries: u32) -> napi::Result<Self> {
        Ok(Uring {
            ring: Some(Ring::new(entries).map_err(to_napi)?),
        })
    }

    /// Submission slots (a power of two).
    #[napi(getter)]
    pub fn sq_entries(&mut self) -> napi::Result<u32> {
        Ok(self.ring()?.sq_entries())
    }

    /// Submitted I/Os whose completions have not been reaped.
    #[napi(getter)]
    pub fn inflight(&mut self) -> napi::Result<u32> {
        Ok(self.ring()?.inflight())
    }

    /// Let the ring do I/O into a mapping (by handle); returns its slot. The ring keeps
    /// the mapping alive until `removeRegion` or `close`.
    #[napi]
    pub fn add_region(&mut self, handle: u32) -> napi::Result<u32> {
        let m = registry::get(handle).map_err(to_napi)?;
        Ok(self.ring()?.add_region(m))
    }

    /// Forget a region slot (EBUSY while I/O is in flight).
    #[napi]
    pub fn remove_region(&mut self, slot: u32) -> napi::Result<()> {
        self.ring()?.remove_region(slot).map_err(to_napi)
    }

    /// Submit the first `count` descriptors of `descs`; returns how many were accepted
    /// (fewer when the ring is full: retry the rest after reaping). A bad descriptor
    /// throws EINVAL and nothing of the batch is submitted.
    #[napi]
    pub fn submit(&mut self, descs: Float64Array, count: u32) -> napi::Result<u32> {
        let words = (count as usize)
            .checked_mul(DESC_WORDS)
            .filter(|&w| w <= descs.len())
            .ok_or_else(|| {
                to_napi(storkit_core::Error::InvalidArgument(format!(
                    "{count} descriptors do not fit in {} words",
                    descs.len()
                )))
            })?;
        self.ring()?
            .submit_words(&descs[..words])
            .map(|n| n as u32)
            .map_err(to_napi)
    }

    /// Copy ready completions into `out` as (user data, result) pairs; returns how many.
    /// No syscall.
    #[napi]
    pub fn reap(&mut self, mut out: Float64Array) -> napi::Result<u32> {
        let ring = self.ring()?;
        // SAFETY: `out` is a live typed array owned by the caller; nothing else accesses
        // it while this synchronous call runs on the JS thread.
        let slots = unsafe { out.as_mut() };
        let n = slots.len() / CQE_WORDS;
        Ok(ring.reap(&mut slots[..n * CQE_WORDS]) as u32)
    }

    /// Block until `min` completions are ready (tests, shutdown; pollers use `reap`).
    #[napi]
    pub fn wait(&mut self, min: u32) -> napi::Result<()> {
        self.ring()?.wait(min).map_err(to_napi)
    }

    /// Wait for in-flight I/O, then release the ring and its regions. Idempotent.
    #[napi]
    pub fn close(&mut self) {
        self.ring = None;
    }
}
