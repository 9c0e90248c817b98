//! An io_uring per worker. One call submits a whole batch of descriptors
//! (`storkit_core::uring::DESC_WORDS` f64 words each) and one call reaps a batch of
//! completions, so the napi cost is paid per batch, not per I/O.
//!
//! Plain functions over an External rather than a napi class (a class method call costs
//! ~550 ns in Node 20, napi_unwrap), and no typed-array arguments: descriptors and
//! completions live in an exchange buffer the ring owns, which JS sees once, through an
//! external ArrayBuffer (`uringExchange`). `reap` runs in every poller iteration.

use std::ffi::c_void;
use std::ptr;
use std::rc::Rc;

use napi::bindgen_prelude::{ArrayBuffer, External, FromNapiValue};
use napi::{sys, Env, Status};
use napi_derive::napi;
use storkit_core::registry;
use storkit_core::uring::{Ring, CQE_WORDS, DESC_WORDS};

use crate::to_napi;

/// Descriptors (`sq_entries * DESC_WORDS` words) then completions (`cq_entries *
/// CQE_WORDS` words). Shared by the ring and JS's ArrayBuffer over it; freed when both
/// have let go (Rc, one thread).
struct Exchange {
    words: *mut f64,
    len: usize,
    cqe_start: usize,
}

impl Exchange {
    fn new(descs: usize, cqes: usize) -> Exchange {
        let mut v = vec![0f64; descs * DESC_WORDS + cqes * CQE_WORDS].into_boxed_slice();
        let words = v.as_mut_ptr();
        let len = v.len();
        std::mem::forget(v);
        Exchange {
            words,
            len,
            cqe_start: descs * DESC_WORDS,
        }
    }

    fn check(&self, from: usize, to: usize) {
        assert!(from <= to && to <= self.len, "exchange range {from}..{to}");
    }

    /// Words `from..to`, read-only (descriptors JS wrote before this call).
    fn words(&self, from: usize, to: usize) -> &[f64] {
        self.check(from, to);
        // SAFETY: in bounds; the buffer lives as long as self; JS cannot run (and write)
        // while a native call holds this slice.
        unsafe { std::slice::from_raw_parts(self.words.add(from), to - from) }
    }

    /// Where the completion words start, and how many there are.
    fn completions(&self) -> (*mut f64, usize) {
        // SAFETY: cqe_start <= len by construction.
        (
            unsafe { self.words.add(self.cqe_start) },
            self.len - self.cqe_start,
        )
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        // SAFETY: words/len came from the boxed slice forgotten in `new`.
        drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(self.words, self.len)) });
    }
}

/// The ring behind a JS handle; dropping it (close or GC) drains in-flight I/O first.
pub struct UringHandle {
    ring: Option<Ring>,
    exchange: Rc<Exchange>,
}

fn ring(r: &mut External<UringHandle>) -> napi::Result<&mut Ring> {
    r.ring.as_mut().ok_or_else(|| {
        to_napi(storkit_core::Error::InvalidArgument(
            "the ring is closed".into(),
        ))
    })
}

/// A ring with `entries` submission slots.
#[napi]
pub fn uring_create(entries: u32) -> napi::Result<External<UringHandle>> {
    let ring = Ring::new(entries).map_err(to_napi)?;
    let exchange = Rc::new(Exchange::new(
        ring.sq_entries() as usize,
        ring.cq_entries() as usize,
    ));
    Ok(External::new(UringHandle {
        ring: Some(ring),
        exchange,
    }))
}

unsafe extern "C" fn release_exchange(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: hint is the Rc leaked for this ArrayBuffer in uring_exchange.
    drop(unsafe { Rc::from_raw(hint as *const Exchange) });
}

/// The exchange buffer as an ArrayBuffer: descriptors at word 0 (`DESC_WORDS` each), then
/// completions (`CQE_WORDS` each) at word `sqEntries * DESC_WORDS`. Call once per ring.
#[napi]
pub fn uring_exchange<'env>(
    env: &'env Env,
    r: &mut External<UringHandle>,
) -> napi::Result<ArrayBuffer<'env>> {
    let ex = r.exchange.clone();
    let (data, len) = (ex.words, ex.len * 8);
    let hint = Rc::into_raw(ex);
    let mut raw = ptr::null_mut();
    // SAFETY: the buffer stays allocated while the Rc leaked into `hint` lives, which the
    // finalizer drops only when V8 is done with the ArrayBuffer.
    let status = unsafe {
        sys::napi_create_external_arraybuffer(
            env.raw(),
            data.cast(),
            len,
            Some(release_exchange),
            hint as *mut c_void,
            &mut raw,
        )
    };
    if status != sys::Status::napi_ok {
        // SAFETY: the ArrayBuffer was not created, so the hint is still ours to drop.
        drop(unsafe { Rc::from_raw(hint) });
        return Err(napi::Error::new(
            Status::GenericFailure,
            format!("napi_create_external_arraybuffer failed ({status})"),
        ));
    }
    // SAFETY: raw is the ArrayBuffer just created in this env.
    unsafe { ArrayBuffer::from_napi_value(env.raw(), raw) }
}

/// Submission slots (a power of two).
#[napi]
pub fn uring_sq_entries(r: &mut External<UringHandle>) -> napi::Result<u32> {
    Ok(ring(r)?.sq_entries())
}

/// Submitted I/Os whose completions have not been reaped.
#[napi]
pub fn uring_inflight(r: &mut External<UringHandle>) -> napi::Result<u32> {
    Ok(ring(r)?.inflight())
}

/// Let the ring do I/O into a mapping (by handle); returns its slot. The ring keeps the
/// mapping alive until `uringRemoveRegion` or `uringClose`.
#[napi]
pub fn uring_add_region(r: &mut External<UringHandle>, handle: u32) -> napi::Result<u32> {
    let m = registry::get(handle).map_err(to_napi)?;
    Ok(ring(r)?.add_region(m))
}

/// Forget a region slot (EBUSY while I/O is in flight).
#[napi]
pub fn uring_remove_region(r: &mut External<UringHandle>, slot: u32) -> napi::Result<()> {
    ring(r)?.remove_region(slot).map_err(to_napi)
}

/// Submit the first `count` descriptors of the exchange buffer; returns how many were
/// accepted (fewer when the ring is full: retry the rest after reaping). A bad descriptor
/// throws EINVAL and nothing of the batch is submitted.
#[napi]
pub fn uring_submit(r: &mut External<UringHandle>, count: u32) -> napi::Result<u32> {
    let ex = r.exchange.clone();
    let words = (count as usize)
        .checked_mul(DESC_WORDS)
        .filter(|&w| w <= ex.cqe_start)
        .ok_or_else(|| {
            to_napi(storkit_core::Error::InvalidArgument(format!(
                "{count} descriptors exceed the submission queue"
            )))
        })?;
    ring(r)?
        .submit_words(ex.words(0, words))
        .map(|n| n as u32)
        .map_err(to_napi)
}

/// Copy ready completions into the exchange buffer as (user data, result) pairs; returns
/// how many. No syscall.
#[napi]
pub fn uring_reap(r: &mut External<UringHandle>) -> napi::Result<u32> {
    let ex = r.exchange.clone();
    let (p, n) = ex.completions();
    // SAFETY: in bounds of the live exchange buffer (ex holds it); the only slice of these
    // words during this synchronous call, and JS cannot run until it returns.
    let out = unsafe { std::slice::from_raw_parts_mut(p, n) };
    Ok(ring(r)?.reap(out) as u32)
}

/// Block until `min` completions are ready (tests, shutdown; pollers use `uringReap`).
#[napi]
pub fn uring_wait(r: &mut External<UringHandle>, min: u32) -> napi::Result<()> {
    ring(r)?.wait(min).map_err(to_napi)
}

/// Wait for in-flight I/O, then release the ring and its regions. Idempotent.
#[napi]
pub fn uring_close(r: &mut External<UringHandle>) {
    r.ring = None;
}
