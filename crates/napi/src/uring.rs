//! An io_uring per worker.
//!
//! Plain functions over an External rather than a napi class (a class method call costs
//! ~550 ns in Node 20, napi_unwrap), and no typed-array arguments: descriptors live in an
//! exchange buffer the ring owns, which JS sees once (`uringExchange`). Completions are
//! not copied at all: JS reads the kernel's completion queue through a read-only mapping
//! (`uringCompletions`) and reports how far it read (`uringConsumed`) once per batch, so
//! an idle poll costs no napi call.

use std::ffi::c_void;
use std::ptr;
use std::rc::Rc;

use napi::bindgen_prelude::{ArrayBuffer, External, FromNapiValue, Object};
use napi::{sys, Env};
use napi_derive::napi;
use storkit_core::registry;
use storkit_core::uring::{CqMapping, Ring, DESC_WORDS};

use crate::{to_napi, Coded, Result};

/// Descriptors (`sq_entries * DESC_WORDS` f64 words), shared by the ring and JS's
/// ArrayBuffer over them; freed when both have let go (Rc, one thread).
struct Exchange {
    words: *mut f64,
    len: usize,
}

impl Exchange {
    fn new(descs: usize) -> Exchange {
        let mut v = vec![0f64; descs * DESC_WORDS].into_boxed_slice();
        let words = v.as_mut_ptr();
        let len = v.len();
        std::mem::forget(v);
        Exchange { words, len }
    }

    /// The first `n` words (descriptors JS wrote before this call).
    fn words(&self, n: usize) -> &[f64] {
        assert!(n <= self.len, "exchange range 0..{n}");
        // SAFETY: in bounds; the buffer lives as long as self; JS cannot run (and write)
        // while a native call holds this slice.
        unsafe { std::slice::from_raw_parts(self.words, n) }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        // SAFETY: words/len came from the boxed slice forgotten in `new`.
        drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(self.words, self.len)) });
    }
}

/// The ring behind a JS handle; dropping it (close or GC) waits for in-flight I/O first.
pub struct UringHandle {
    ring: Option<Ring>,
    exchange: Rc<Exchange>,
}

fn ring(r: &mut External<UringHandle>) -> Result<&mut Ring> {
    r.ring.as_mut().ok_or_else(|| {
        to_napi(storkit_core::Error::InvalidArgument(
            "the ring is closed".into(),
        ))
    })
}

pub(crate) fn external_arraybuffer<'env>(
    env: &'env Env,
    data: *mut u8,
    len: usize,
    finalize: unsafe extern "C" fn(sys::napi_env, *mut c_void, *mut c_void),
    hint: *mut c_void,
) -> Result<ArrayBuffer<'env>> {
    let mut raw = ptr::null_mut();
    // SAFETY: the caller keeps `data` valid until `finalize(hint)` runs, which V8 does
    // only when it is done with the ArrayBuffer.
    let status = unsafe {
        sys::napi_create_external_arraybuffer(
            env.raw(),
            data.cast(),
            len,
            Some(finalize),
            hint,
            &mut raw,
        )
    };
    if status != sys::Status::napi_ok {
        return Err(napi::Error::new(
            crate::Code("EIO"),
            format!("napi_create_external_arraybuffer failed ({status})"),
        ));
    }
    // SAFETY: raw is the ArrayBuffer just created in this env.
    unsafe { ArrayBuffer::from_napi_value(env.raw(), raw) }.coded()
}

/// A ring with `entries` submission slots.
#[napi]
pub fn uring_create(entries: u32) -> Result<External<UringHandle>> {
    let ring = Ring::new(entries).map_err(to_napi)?;
    let exchange = Rc::new(Exchange::new(ring.sq_entries() as usize));
    Ok(External::new(UringHandle {
        ring: Some(ring),
        exchange,
    }))
}

unsafe extern "C" fn release_exchange(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: hint is the Rc leaked for this ArrayBuffer in uring_exchange.
    drop(unsafe { Rc::from_raw(hint as *const Exchange) });
}

/// The descriptor exchange buffer as an ArrayBuffer (`DESC_WORDS` f64 words per
/// descriptor). Call once per ring.
#[napi]
pub fn uring_exchange<'env>(
    env: &'env Env,
    r: &mut External<UringHandle>,
) -> Result<ArrayBuffer<'env>> {
    let ex = r.exchange.clone();
    let (data, len) = (ex.words.cast::<u8>(), ex.len * 8);
    let hint = Rc::into_raw(ex);
    external_arraybuffer(env, data, len, release_exchange, hint as *mut c_void).inspect_err(|_| {
        // SAFETY: not handed to V8, so the leaked Rc is still ours to drop.
        drop(unsafe { Rc::from_raw(hint) });
    })
}

unsafe extern "C" fn release_cq(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: hint is the Box leaked for this ArrayBuffer in uring_completions.
    drop(unsafe { Box::from_raw(hint as *mut CqMapping) });
}

/// The ring's completion queue, read-only: `{ buffer, head, tail, mask, entries, cqes }`,
/// where `buffer` maps the kernel's CQ ring and the others are byte offsets in it (head,
/// tail, mask: u32 words; cqes: 16-byte entries, user data u64 LE then result i32).
/// Writing to `buffer` faults: it is PROT_READ. It stays valid after the ring closes.
#[napi(
    ts_return_type = "{ buffer: ArrayBuffer; head: number; tail: number; mask: number; entries: number; cqes: number }"
)]
pub fn uring_completions<'env>(
    env: &'env Env,
    r: &mut External<UringHandle>,
) -> Result<Object<'env>> {
    let cq = Box::new(ring(r)?.map_completions().map_err(to_napi)?);
    let layout = cq.layout;
    let (data, len) = (cq.as_ptr(), cq.len());
    let hint = Box::into_raw(cq);
    let buffer =
        external_arraybuffer(env, data, len, release_cq, hint.cast()).inspect_err(|_| {
            // SAFETY: not handed to V8, so still ours.
            drop(unsafe { Box::from_raw(hint) });
        })?;
    let mut o = Object::new(env).coded()?;
    o.set("buffer", buffer).coded()?;
    o.set("head", layout.head).coded()?;
    o.set("tail", layout.tail).coded()?;
    o.set("mask", layout.mask).coded()?;
    o.set("entries", layout.entries).coded()?;
    o.set("cqes", layout.cqes).coded()?;
    Ok(o)
}

/// Report that JS has read completions up to CQ index `head` (frees their CQ slots).
#[napi]
pub fn uring_consumed(r: &mut External<UringHandle>, head: u32) -> Result<()> {
    ring(r)?.consume_to(head).map_err(to_napi)
}

/// Submission slots (a power of two).
#[napi]
pub fn uring_sq_entries(r: &mut External<UringHandle>) -> Result<u32> {
    Ok(ring(r)?.sq_entries())
}

/// Submitted I/Os whose completions have not been consumed.
#[napi]
pub fn uring_inflight(r: &mut External<UringHandle>) -> Result<u32> {
    Ok(ring(r)?.inflight())
}

/// Let the ring do I/O into a mapping (by handle); returns its slot. The ring keeps the
/// mapping alive until `uringRemoveRegion` or `uringClose`.
#[napi]
pub fn uring_add_region(r: &mut External<UringHandle>, handle: u32) -> Result<u32> {
    let m = registry::get(handle).map_err(to_napi)?;
    Ok(ring(r)?.add_region(m))
}

/// Forget a region slot (EBUSY while the kernel still has I/O of this ring).
#[napi]
pub fn uring_remove_region(r: &mut External<UringHandle>, slot: u32) -> Result<()> {
    ring(r)?.remove_region(slot).map_err(to_napi)
}

/// Submit the first `count` descriptors of the exchange buffer; returns how many were
/// accepted (fewer when the ring is full: retry the rest after reaping). A bad descriptor
/// throws EINVAL and nothing of the batch is submitted.
#[napi]
pub fn uring_submit(r: &mut External<UringHandle>, count: u32) -> Result<u32> {
    let ex = r.exchange.clone();
    let words = (count as usize)
        .checked_mul(DESC_WORDS)
        .filter(|&w| w <= ex.len)
        .ok_or_else(|| {
            to_napi(storkit_core::Error::InvalidArgument(format!(
                "{count} descriptors exceed the submission queue"
            )))
        })?;
    ring(r)?
        .submit_words(ex.words(words))
        .map(|n| n as u32)
        .map_err(to_napi)
}

/// Block until `min` completions are ready (tests, shutdown; pollers read the CQ).
#[napi]
pub fn uring_wait(r: &mut External<UringHandle>, min: u32) -> Result<()> {
    ring(r)?.wait(min).map_err(to_napi)
}

/// Wait for in-flight I/O, then release the ring and its regions. Idempotent.
#[napi]
pub fn uring_close(r: &mut External<UringHandle>) {
    r.ring = None;
}
