use napi::bindgen_prelude::Uint8Array;
use napi_derive::napi;

// Single-buffer CRC32C is `crc32cRange` in fast.rs (a raw callback, no per-call borrow scope).

/// CRC32C over several buffers as if concatenated.
#[napi(js_name = "crc32cList")]
pub fn crc32c_list(bufs: Vec<Uint8Array>, seed: Option<u32>) -> u32 {
    storkit_core::crc::crc32c_list(seed.unwrap_or(0), bufs.iter().map(|b| &b[..]))
}

/// Whether CRC32C runs on the CPU's CRC32 instruction.
#[napi(js_name = "crc32cHardware")]
pub fn crc32c_hardware() -> bool {
    storkit_core::crc::hardware_accelerated()
}
