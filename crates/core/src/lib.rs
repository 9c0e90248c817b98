//! storkit-core: the native capabilities storkit needs that Node 20 lacks.
//!
//! This crate has no napi dependency (the binding lives in `storkit-napi`), so
//! everything here is testable with plain `cargo test`. `unsafe` is confined to
//! small functions, each with a `// SAFETY:` note.

pub mod cpu;
pub mod crc;
pub mod error;
pub mod iova;
pub mod mem;
pub mod mmio;
pub mod net;
pub mod pci;
pub mod registry;
pub mod sock;
pub mod time;
pub mod uring;
pub mod vfio;
pub mod vhost_msg;
pub mod vhost_sock;

pub use error::{Error, Result};
