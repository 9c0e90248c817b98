//! storkit-napi: the thin napi-rs layer over storkit-core. Logic lives in the
//! core crate; this crate converts arguments and errors and nothing more.
//! Errors carry a stable code (`EINVAL`, `EPERM`, ...) in `err.code` for TS.

#![deny(clippy::all)]
// napi-derive registers exports only outside `cfg(test)`, so tests see them as unused.
#![cfg_attr(test, allow(dead_code))]

mod cpu;
mod crc;
mod fast;
mod mem;
mod net;
mod pci;
mod sock;
mod time;
mod uring;
mod vhost;

use napi::{Error, Status};

/// Convert a core error into a JS error whose `code` is the stable short code.
pub(crate) fn to_napi(e: storkit_core::Error) -> Error {
    Error::new(Status::GenericFailure, format!("[{}] {e}", e.code()))
}
