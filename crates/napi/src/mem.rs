//! DMA regions and MMIO windows: creation, handles, per-worker ArrayBuffer views.
//!
//! Node 20 cannot wrap native memory in a SharedArrayBuffer, so each worker wraps the
//! same pointer in its own external ArrayBuffer (a "view"). Each view holds one registry
//! reference, dropped by `memViewClose` (which also detaches the buffer) or, as a backstop,
//! by the buffer's GC finalizer or the worker's teardown; the registry makes the second of
//! those a no-op.

use std::ffi::c_void;
use std::ptr;

use napi::bindgen_prelude::{ArrayBuffer, BigInt, Float64Array, FromNapiValue, Object};
use napi::{sys, Env};
use napi_derive::napi;
use storkit_core::iova::AddressSpace;
use storkit_core::mem::{self, HugepagePolicy, Mapping};
use storkit_core::registry;

use crate::{to_napi, Coded, Result};

fn size_arg(name: &str, v: f64) -> Result<usize> {
    if !(v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= (1u64 << 48) as f64) {
        return Err(to_napi(storkit_core::Error::InvalidArgument(format!(
            "{name} must be a non-negative integer, got {v}"
        ))));
    }
    Ok(v as usize)
}

// Teardown backstops: when a worker's environment goes away, whatever it still owns is
// released and whatever views it still has are closed (both idempotent). The hooks are
// raw (function, id) pairs, ids are never reused, so an explicit release/close removes
// exactly its own hook and nothing accumulates in a long-lived worker.
unsafe extern "C" fn release_at_teardown(arg: *mut c_void) {
    registry::release(arg as usize as u32);
}

unsafe extern "C" fn close_at_teardown(arg: *mut c_void) {
    registry::close_view(arg as usize as u32);
}

type Hook = unsafe extern "C" fn(*mut c_void);

fn add_hook(env: &Env, hook: Hook, id: u32) -> Result<()> {
    // SAFETY: env is the live env of this call; the hook only touches the registry.
    let status = unsafe {
        sys::napi_add_env_cleanup_hook(env.raw(), Some(hook), id as usize as *mut c_void)
    };
    if status != sys::Status::napi_ok {
        return Err(napi::Error::new(
            crate::Code("EIO"),
            format!("napi_add_env_cleanup_hook failed ({status})"),
        ));
    }
    Ok(())
}

fn remove_hook(env: &Env, hook: Hook, id: u32) {
    // SAFETY: removing a (hook, id) pair this env never added is a no-op in Node.
    unsafe { sys::napi_remove_env_cleanup_hook(env.raw(), Some(hook), id as usize as *mut c_void) };
}

pub(crate) fn register_owned(env: &Env, m: Mapping) -> Result<u32> {
    let h = registry::register(m);
    if let Err(e) = add_hook(env, release_at_teardown, h) {
        registry::release(h);
        return Err(e);
    }
    Ok(h)
}

/// Create a DMA region of at least `size` bytes; `hugepages` is "auto", "require" or "never".
#[napi]
pub fn mem_create_dma(env: Env, size: f64, hugepages: String) -> Result<u32> {
    let policy = match hugepages.as_str() {
        "auto" => HugepagePolicy::Auto,
        "require" => HugepagePolicy::Require,
        "never" => HugepagePolicy::Never,
        other => {
            return Err(to_napi(storkit_core::Error::InvalidArgument(format!(
                "hugepages must be auto, require or never, got {other:?}"
            ))))
        }
    };
    let m = Mapping::dma(size_arg("size", size)?, policy).map_err(to_napi)?;
    register_owned(&env, m)
}

/// Create an anonymous shared region (stands in for a device BAR).
#[napi]
pub fn mem_create_shared(env: Env, size: f64) -> Result<u32> {
    let m = Mapping::shared_anon(size_arg("size", size)?).map_err(to_napi)?;
    register_owned(&env, m)
}

/// Map `length` bytes (0 = to the end) of a file at `offset` (4 KiB aligned).
#[napi]
pub fn mem_map_file(env: Env, path: String, offset: f64, length: f64) -> Result<u32> {
    let m = Mapping::file(
        &path,
        size_arg("offset", offset)? as u64,
        size_arg("length", length)?,
    )
    .map_err(to_napi)?;
    register_owned(&env, m)
}

/// Drop the owner's reference; the memory goes when the last view closes too.
/// Call it from the worker that created the region.
#[napi]
pub fn mem_release(env: Env, handle: u32) -> bool {
    remove_hook(&env, release_at_teardown, handle);
    registry::release(handle)
}

#[napi(object)]
pub struct MemInfo {
    pub size: f64,
    pub page_size: u32,
    /// "hugepage-2m", "locked-4k", "unlocked-4k", "shared-anon" or "file".
    pub backing: String,
    /// Why the region is not on hugepages / not locked, when it is not.
    pub note: Option<String>,
    /// The memfd or file descriptor behind the mapping.
    pub fd: i32,
    /// "physical", or "iova" once mapped into the VFIO container; absent when unavailable.
    pub io_space: Option<String>,
    /// Why there are no IO addresses.
    pub io_error: Option<String>,
    /// The errno-style code of `io_error`.
    pub io_error_code: Option<String>,
}

#[napi]
pub fn mem_info(handle: u32) -> Result<MemInfo> {
    let m = registry::get(handle).map_err(to_napi)?;
    let note = match m.backing() {
        mem::Backing::Unlocked4K { reason } => Some(reason.clone()),
        _ => m.hugepage_fallback().map(str::to_owned),
    };
    let (io_space, io_error) = match m.io_addresses() {
        _ if m.iova().is_some() => (Some("iova".to_owned()), None),
        storkit_core::iova::IoAddresses::Table { space, .. } => (
            Some(
                match space {
                    AddressSpace::Physical => "physical",
                    AddressSpace::Iova => "iova",
                }
                .to_owned(),
            ),
            None,
        ),
        storkit_core::iova::IoAddresses::Unavailable(e) => (None, Some(e.clone())),
    };
    Ok(MemInfo {
        size: m.len() as f64,
        page_size: m.page_size() as u32,
        backing: m.backing().name().to_owned(),
        note,
        fd: m.fd(),
        io_space,
        io_error: io_error.as_ref().map(|e| e.to_string()),
        io_error_code: io_error.as_ref().map(|e| e.code().to_owned()),
    })
}

/// IO address of each page of the region (one call per region; lookups are then JS
/// arithmetic). Throws EPERM where physical addresses are not readable.
#[napi]
pub fn mem_io_table(handle: u32) -> Result<Float64Array> {
    let m = registry::get(handle).map_err(to_napi)?;
    if let Some(base) = m.iova() {
        let page = m.page_size();
        return Ok(Float64Array::new(
            (0..m.len() / page)
                .map(|i| (base + (i * page) as u64) as f64)
                .collect::<Vec<_>>(),
        ));
    }
    match m.io_addresses() {
        storkit_core::iova::IoAddresses::Table { pages, .. } => Ok(Float64Array::new(
            pages.iter().map(|&p| p as f64).collect::<Vec<_>>(),
        )),
        storkit_core::iova::IoAddresses::Unavailable(e) => Err(to_napi(e.clone())),
    }
}

/// IO address of one byte of the region.
#[napi]
pub fn mem_io_address(handle: u32, offset: f64) -> Result<f64> {
    let m = registry::get(handle).map_err(to_napi)?;
    m.io_address(size_arg("offset", offset)?)
        .map(|a| a as f64)
        .map_err(to_napi)
}

unsafe extern "C" fn finalize_view(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    registry::close_view(hint as usize as u32);
}

/// Open a view of a live region in the calling worker: `{ buffer, view }`, where `buffer`
/// is an ArrayBuffer over the region's bytes and `view` the id `memViewClose` takes.
#[napi(ts_return_type = "{ buffer: ArrayBuffer; view: number }")]
pub fn mem_view<'env>(env: &'env Env, handle: u32) -> Result<Object<'env>> {
    let (view, m) = registry::open_view(handle).map_err(to_napi)?;
    let mut raw = ptr::null_mut();
    // SAFETY: the region stays mapped while the view id is registered; the finalizer (or
    // memViewClose, which detaches first) unregisters it, so V8 never sees freed memory.
    let status = unsafe {
        sys::napi_create_external_arraybuffer(
            env.raw(),
            m.as_ptr().cast(),
            m.len(),
            Some(finalize_view),
            view as usize as *mut c_void,
            &mut raw,
        )
    };
    if status != sys::Status::napi_ok {
        registry::close_view(view);
        return Err(napi::Error::new(
            crate::Code("EIO"),
            format!("napi_create_external_arraybuffer failed ({status})"),
        ));
    }
    // Close the view if this worker is torn down before the finalizer runs.
    if let Err(e) = add_hook(env, close_at_teardown, view) {
        registry::close_view(view);
        return Err(e);
    }
    let mut obj = Object::new(env).coded()?;
    // SAFETY: raw is the ArrayBuffer just created in this env.
    obj.set("buffer", unsafe {
        ArrayBuffer::from_napi_value(env.raw(), raw).coded()?
    })
    .coded()?;
    obj.set("view", view).coded()?;
    Ok(obj)
}

/// Detach `buffer` and close its view. Returns false if the view was already closed.
#[napi]
pub fn mem_view_close(env: Env, buffer: ArrayBuffer, view: u32) -> Result<bool> {
    let Some(m) = registry::view_mapping(view) else {
        return Ok(false);
    };
    if buffer.is_empty() && buffer.is_detached().coded()? {
        remove_hook(&env, close_at_teardown, view);
        return Ok(registry::close_view(view));
    }
    if buffer.as_ptr() != m.as_ptr().cast_const() {
        return Err(to_napi(storkit_core::Error::InvalidArgument(format!(
            "buffer is not view {view}"
        ))));
    }
    drop(m);
    buffer.detach().coded()?;
    remove_hook(&env, close_at_teardown, view);
    Ok(registry::close_view(view))
}

#[napi(object)]
pub struct MemStats {
    /// Mappings ever created / unmapped in this process.
    pub created: f64,
    pub freed: f64,
    pub bytes_mapped: f64,
    /// Handles still owned, and views open, process-wide.
    pub owned: u32,
    pub views: u32,
}

#[napi]
pub fn mem_stats() -> MemStats {
    let s = mem::stats();
    let (owned, views) = registry::counts();
    MemStats {
        created: s.created as f64,
        freed: s.freed as f64,
        bytes_mapped: s.bytes_mapped as f64,
        owned,
        views,
    }
}

#[napi(object)]
pub struct MemState {
    pub owned: bool,
    pub views: u32,
    pub live: bool,
}

#[napi]
pub fn mem_state(handle: u32) -> MemState {
    let s = registry::state(handle);
    MemState {
        owned: s.owned,
        views: s.views,
        live: s.live,
    }
}

/// Free 2 MiB hugepages reserved on the system.
#[napi]
pub fn hugepages_free() -> f64 {
    mem::free_hugepages() as f64
}

fn mapped(handle: u32) -> Result<std::sync::Arc<Mapping>> {
    registry::get(handle).map_err(to_napi)
}

#[napi]
pub fn mmio_read32(handle: u32, offset: u32) -> Result<u32> {
    storkit_core::mmio::read32(&*mapped(handle)?, offset as usize).map_err(to_napi)
}

#[napi]
pub fn mmio_write32(handle: u32, offset: u32, value: u32) -> Result<()> {
    storkit_core::mmio::write32(&*mapped(handle)?, offset as usize, value).map_err(to_napi)
}

#[napi]
pub fn mmio_read64(handle: u32, offset: u32) -> Result<BigInt> {
    storkit_core::mmio::read64(&*mapped(handle)?, offset as usize)
        .map(BigInt::from)
        .map_err(to_napi)
}

#[napi]
pub fn mmio_write64(handle: u32, offset: u32, value: BigInt) -> Result<()> {
    let (signed, v, lossless) = value.get_u64();
    if signed || !lossless {
        return Err(to_napi(storkit_core::Error::InvalidArgument(
            "value must fit in an unsigned 64-bit integer".into(),
        )));
    }
    storkit_core::mmio::write64(&*mapped(handle)?, offset as usize, v).map_err(to_napi)
}

/// Write a doorbell: a full fence, then a volatile 32-bit store.
#[napi]
pub fn mmio_doorbell32(handle: u32, offset: u32, value: u32) -> Result<()> {
    storkit_core::mmio::doorbell32(&*mapped(handle)?, offset as usize, value).map_err(to_napi)
}
