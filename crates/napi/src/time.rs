use std::cell::RefCell;
use std::ffi::c_void;

use napi::bindgen_prelude::ArrayBuffer;
use napi::{sys, Env};
use napi_derive::napi;

use crate::Result;

use crate::uring::external_arraybuffer;

/// CPU time this thread has used, in nanoseconds (excludes time spent descheduled).
#[napi]
pub fn thread_cpu_ns() -> f64 {
    storkit_core::time::thread_cpu_ns() as f64
}

/// Current tick count as a double: exact below 2^53 ticks (years at GHz rates).
#[napi]
pub fn ticks() -> f64 {
    storkit_core::time::ticks() as f64
}

thread_local! {
    /// The live cells of this thread: usually one, more when a second copy of the JS module
    /// made its own (each must keep seeing the clock move).
    static CELLS: RefCell<Vec<*mut f64>> = const { RefCell::new(Vec::new()) };
}

unsafe extern "C" fn release_cell(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    let p = hint as *mut f64;
    CELLS.with(|c| c.borrow_mut().retain(|&x| x != p));
    // SAFETY: hint is the box leaked for this ArrayBuffer in tick_cell; V8 is done with it.
    drop(unsafe { Box::from_raw(p) });
}

/// An 8-byte ArrayBuffer that `ticksStore` writes the tick count into, on this thread.
/// A napi double return is a fresh heap number per call (TSC counts are not small
/// integers); a store into memory JS already sees allocates nothing. Call once per worker.
#[napi]
pub fn tick_cell(env: &Env) -> Result<ArrayBuffer<'_>> {
    let p = Box::into_raw(Box::new(0f64));
    CELLS.with(|c| c.borrow_mut().push(p));
    external_arraybuffer(env, p.cast(), 8, release_cell, p.cast())
}

/// Write the current tick count into this thread's tick cell (see `tickCell`).
#[napi]
pub fn ticks_store() {
    let t = storkit_core::time::ticks() as f64;
    CELLS.with(|c| {
        for &p in c.borrow().iter() {
            // SAFETY: p is a live box of this thread's tick cells (removed by its finalizer).
            unsafe { *p = t };
        }
    });
}

/// Ticks per second.
#[napi]
pub fn tick_rate() -> f64 {
    storkit_core::time::tick_rate() as f64
}

/// "tsc" or "monotonic".
#[napi]
pub fn tick_source() -> &'static str {
    match storkit_core::time::tick_source() {
        storkit_core::time::TickSource::Tsc => "tsc",
        storkit_core::time::TickSource::Monotonic => "monotonic",
    }
}
