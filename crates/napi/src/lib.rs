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

/// A JS error's `code`: the errno-style name of what went wrong (`EINVAL`, `EPERM`, `EPROTO`, ...),
/// the one code set the TypeScript packages share (@storkit/errors).
pub struct Code(pub &'static str);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        self.0
    }
}

/// What every exported function returns: its errors reach JS as `Error` objects whose `code`
/// property is the errno-style code and whose message says what failed (no code in the text).
pub type Result<T> = std::result::Result<T, napi::Error<Code>>;

/// Convert a core error into a JS error with its stable code.
pub(crate) fn to_napi(e: storkit_core::Error) -> napi::Error<Code> {
    napi::Error::new(Code(e.code()), e.to_string())
}

/// A napi-rs error (an argument of the wrong type or shape, a failed napi call) as one with a
/// code: EINVAL.
pub(crate) fn from_napi(e: napi::Error) -> napi::Error<Code> {
    napi::Error::new(Code("EINVAL"), e.reason.clone())
}

/// `?` on napi-rs's own results inside functions that return [`Result`].
pub(crate) trait Coded<T> {
    fn coded(self) -> Result<T>;
}

impl<T> Coded<T> for napi::Result<T> {
    fn coded(self) -> Result<T> {
        self.map_err(from_napi)
    }
}
