//! PCI devices through VFIO (container, group, device, BARs, config space, reset, request
//! notifier), IOMMU mappings of DMA regions, and device claims. Logic in storkit-core's
//! `vfio` and `pci`; this converts arguments.

use std::ffi::c_void;
use std::os::fd::IntoRawFd;

use napi::{sys, Env};
use napi_derive::napi;
use storkit_core::{pci, registry, vfio};

use crate::mem::register_owned;
use crate::{to_napi, Result};

/// Whether /dev/vfio/vfio exists here.
#[napi]
pub fn vfio_available() -> bool {
    vfio::available()
}

unsafe extern "C" fn close_device_at_teardown(arg: *mut c_void) {
    vfio::close_device(arg as usize as u32);
}

/// Open a device bound to vfio-pci (joining the process's container); returns its handle.
/// Closed by `vfioClose`, or when the worker that opened it exits.
#[napi]
pub fn vfio_open(env: Env, bdf: String) -> Result<u32> {
    let h = vfio::open_device(&bdf).map_err(to_napi)?;
    // SAFETY: env is this call's live env; the hook only touches the VFIO table.
    let status = unsafe {
        sys::napi_add_env_cleanup_hook(
            env.raw(),
            Some(close_device_at_teardown),
            h as usize as *mut c_void,
        )
    };
    if status != sys::Status::napi_ok {
        vfio::close_device(h);
        return Err(napi::Error::new(
            crate::Code("EIO"),
            format!("napi_add_env_cleanup_hook failed ({status})"),
        ));
    }
    Ok(h)
}

/// Close a device. Returns false if it was already closed.
#[napi]
pub fn vfio_close(env: Env, handle: u32) -> bool {
    // SAFETY: removing a (hook, id) pair this env may not have added is a no-op.
    unsafe {
        sys::napi_remove_env_cleanup_hook(
            env.raw(),
            Some(close_device_at_teardown),
            handle as usize as *mut c_void,
        )
    };
    vfio::close_device(handle)
}

#[napi(object)]
pub struct VfioRegion {
    pub index: u32,
    pub flags: u32,
    pub size: f64,
    pub offset: f64,
    /// The mmappable part (offset in the region, size), absent when none.
    pub mmap_offset: Option<f64>,
    pub mmap_size: Option<f64>,
}

#[napi(object)]
pub struct VfioDeviceInfo {
    pub bdf: String,
    pub group: u32,
    pub flags: u32,
    pub can_reset: bool,
    pub num_irqs: u32,
    pub regions: Vec<VfioRegion>,
}

#[napi]
pub fn vfio_device_info(handle: u32) -> Result<VfioDeviceInfo> {
    let d = vfio::device(handle).map_err(to_napi)?;
    Ok(VfioDeviceInfo {
        bdf: d.bdf.clone(),
        group: d.group,
        flags: d.flags,
        can_reset: d.flags & 1 != 0,
        num_irqs: d.num_irqs,
        regions: d
            .regions
            .iter()
            .map(|r| VfioRegion {
                index: r.index,
                flags: r.flags,
                size: r.size as f64,
                offset: r.offset as f64,
                mmap_offset: r.mmap.map(|m| m.0 as f64),
                mmap_size: r.mmap.map(|m| m.1 as f64),
            })
            .collect(),
    })
}

#[napi(object)]
pub struct VfioBar {
    /// The mapping's handle (an MMIO window: `MmioRegion.attach`).
    pub region: u32,
    /// Where in the BAR the mapping starts.
    pub offset: f64,
}

/// Map BAR `index` of an open device; the mapping is owned by the calling worker.
#[napi]
pub fn vfio_map_bar(env: Env, handle: u32, index: u32) -> Result<VfioBar> {
    let d = vfio::device(handle).map_err(to_napi)?;
    let (m, offset) = d.map_bar(index).map_err(to_napi)?;
    Ok(VfioBar {
        region: register_owned(&env, m)?,
        offset: offset as f64,
    })
}

/// Read 1, 2 or 4 bytes of config space.
#[napi]
pub fn vfio_config_read(handle: u32, offset: u32, width: u32) -> Result<u32> {
    vfio::device(handle)
        .and_then(|d| d.config_read(offset, width))
        .map_err(to_napi)
}

/// Write 1, 2 or 4 bytes of config space.
#[napi]
pub fn vfio_config_write(handle: u32, offset: u32, width: u32, value: u32) -> Result<()> {
    vfio::device(handle)
        .and_then(|d| d.config_write(offset, width, value))
        .map_err(to_napi)
}

/// Reset the function (VFIO_DEVICE_RESET: FLR where the device has it).
#[napi]
pub fn vfio_reset(handle: u32) -> Result<()> {
    vfio::device(handle)
        .and_then(|d| d.reset())
        .map_err(to_napi)
}

/// Have the kernel signal when it wants the device back (unbind, hot remove).
#[napi]
pub fn vfio_enable_request_notifier(handle: u32) -> Result<()> {
    vfio::device(handle)
        .and_then(|d| d.enable_request_notifier())
        .map_err(to_napi)
}

/// Whether the kernel asked for the device back since the last call (one read syscall).
#[napi]
pub fn vfio_take_request(handle: u32) -> Result<bool> {
    vfio::device(handle)
        .and_then(|d| d.take_request())
        .map_err(to_napi)
}

/// Map a DMA region into the process's IOMMU container (idempotent); returns its IOVA base.
#[napi]
pub fn mem_map_iommu(handle: u32) -> Result<f64> {
    let m = registry::get(handle).map_err(to_napi)?;
    m.map_iommu().map(|a| a as f64).map_err(to_napi)
}

/// Map a device region (a BAR mapped through VFIO) into the process's IOMMU container, for a
/// device to reach by IOVA (an NVMe controller memory buffer); returns its IOVA base.
#[napi]
pub fn mem_map_iommu_device(handle: u32) -> Result<f64> {
    let m = registry::get(handle).map_err(to_napi)?;
    m.map_iommu_device().map(|a| a as f64).map_err(to_napi)
}

/// Take a DMA region out of the IOMMU. False if it was not mapped.
#[napi]
pub fn mem_unmap_iommu(handle: u32) -> Result<bool> {
    let m = registry::get(handle).map_err(to_napi)?;
    vfio::unmap_dma(m.as_ptr() as usize).map_err(to_napi)
}

#[napi(object)]
pub struct VfioCounts {
    pub devices: u32,
    pub mappings: u32,
}

/// Open VFIO devices and IOMMU-mapped regions, process-wide.
#[napi]
pub fn vfio_counts() -> VfioCounts {
    let (devices, mappings) = vfio::counts();
    VfioCounts { devices, mappings }
}

/// Claim a device for this process (a lock file in `dir`); returns the fd that holds the
/// claim (close it with `closeFd` to release). EBUSY names the holder.
#[napi]
pub fn pci_claim(dir: String, bdf: String) -> Result<i32> {
    pci::claim(&dir, &bdf)
        .map(|fd| fd.into_raw_fd())
        .map_err(to_napi)
}

/// Register a device model at `address` (its share as JSON), process-wide.
#[napi]
pub fn pci_model_register(address: String, share: String) -> Result<()> {
    pci::model_register(&address, &share).map_err(to_napi)
}

#[napi]
pub fn pci_model_unregister(address: String) -> bool {
    pci::model_unregister(&address)
}

/// Open the model at `address`: its share JSON, null when there is none; EBUSY when open.
#[napi]
pub fn pci_model_open(address: String) -> Result<Option<String>> {
    pci::model_open(&address).map_err(to_napi)
}

#[napi]
pub fn pci_model_close(address: String) {
    pci::model_close(&address);
}
