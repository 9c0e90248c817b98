//! VFIO: a PCI device driven from user space behind an IOMMU (Linux's vfio-pci).
//!
//! One container per process, as SPDK and DPDK do: every group joins it, so one IO virtual
//! address space serves every device and a DMA region is mapped once for all of them. The
//! container gets its IOMMU (type1) with the first group; when the last device closes, its
//! group leaves and the kernel drops every mapping, so the table here is cleared with it.
//!
//! IO addresses are allocated here, not taken from virtual addresses: an emulated IOMMU's
//! address width (39 bits in QEMU's intel-iommu) is narrower than a user virtual address.
//! A region gets one contiguous IOVA range, aligned to its page size, so the IO address of
//! byte `o` is `base + o` and the IOMMU can use large pages.
//!
//! Devices are reached by handle (an integer any worker can hold); config space is read and
//! written through the device fd, BARs are mapped through their region info (honouring the
//! sparse-mmap capability, which keeps an MSI-X table out of reach).

use std::collections::HashMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::mem::Mapping;
use crate::{Error, Result};

const VFIO_TYPE: u32 = b';' as u32;
const VFIO_BASE: u32 = 100;

const fn io(nr: u32) -> libc::c_ulong {
    ((VFIO_TYPE << 8) | (VFIO_BASE + nr)) as libc::c_ulong
}

const GET_API_VERSION: libc::c_ulong = io(0);
const CHECK_EXTENSION: libc::c_ulong = io(1);
const SET_IOMMU: libc::c_ulong = io(2);
const GROUP_GET_STATUS: libc::c_ulong = io(3);
const GROUP_SET_CONTAINER: libc::c_ulong = io(4);
const GROUP_GET_DEVICE_FD: libc::c_ulong = io(6);
const DEVICE_GET_INFO: libc::c_ulong = io(7);
const DEVICE_GET_REGION_INFO: libc::c_ulong = io(8);
const DEVICE_GET_IRQ_INFO: libc::c_ulong = io(9);
const DEVICE_SET_IRQS: libc::c_ulong = io(10);
const DEVICE_RESET: libc::c_ulong = io(11);
const IOMMU_GET_INFO: libc::c_ulong = io(12);
const IOMMU_MAP_DMA: libc::c_ulong = io(13);
const IOMMU_UNMAP_DMA: libc::c_ulong = io(14);

const API_VERSION: i32 = 0;
const TYPE1_IOMMU: u32 = 1;
const TYPE1V2_IOMMU: u32 = 3;
const GROUP_FLAGS_VIABLE: u32 = 1;
const DEVICE_FLAGS_RESET: u32 = 1;
const DEVICE_FLAGS_PCI: u32 = 2;
const REGION_FLAG_MMAP: u32 = 4;
const REGION_FLAG_CAPS: u32 = 8;
const REGION_CAP_SPARSE_MMAP: u16 = 1;
const IOMMU_INFO_CAPS: u32 = 2;
const IOMMU_CAP_IOVA_RANGE: u16 = 1;
const DMA_MAP_READ_WRITE: u32 = 3;
const IRQ_SET_DATA_EVENTFD: u32 = 1 << 2;
const IRQ_SET_ACTION_TRIGGER: u32 = 1 << 5;

/// Region index of PCI config space (VFIO_PCI_CONFIG_REGION_INDEX).
pub const CONFIG_REGION: u32 = 7;
/// IRQ index through which the kernel asks for the device back (VFIO_PCI_REQ_IRQ_INDEX).
const REQ_IRQ: u32 = 4;

/// Where allocation of IO addresses starts: above the low 4 GiB, where reserved windows
/// (the x86 MSI range at 0xfee00000) live.
const IOVA_FLOOR: u64 = 1 << 32;
/// The address width assumed when the kernel reports no IOVA ranges (QEMU intel-iommu).
const IOVA_DEFAULT_END: u64 = 1 << 39;

fn ioctl_ptr<T>(fd: RawFd, req: libc::c_ulong, arg: *mut T, op: &'static str) -> Result<i32> {
    // SAFETY: every caller passes a pointer to a live, correctly sized argument block of the
    // layout `req` expects (argsz set), or null for requests that take no pointer.
    let r = unsafe { libc::ioctl(fd, req, arg) };
    if r < 0 {
        return Err(Error::last_os(op));
    }
    Ok(r)
}

fn ioctl_val(fd: RawFd, req: libc::c_ulong, arg: libc::c_ulong, op: &'static str) -> Result<i32> {
    // SAFETY: requests called this way take an integer argument, not a pointer.
    let r = unsafe { libc::ioctl(fd, req, arg) };
    if r < 0 {
        return Err(Error::last_os(op));
    }
    Ok(r)
}

fn open(path: &str, flags: libc::c_int) -> Result<OwnedFd> {
    let c = CString::new(path).map_err(|_| Error::InvalidArgument("path has NUL".into()))?;
    // SAFETY: c is a valid C string for the call.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(Error::last_os("open"));
    }
    // SAFETY: fd was just opened and is owned only here.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A little-endian word of an info buffer the kernel filled in.
fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    b.get(off..off + 8)
        .map(|s| u64::from_le_bytes(s.try_into().unwrap()))
}

/// An INFO ioctl with a capability chain: call once with `head`, and again with the size
/// the kernel asked for when the chain did not fit. `head` starts with `argsz`.
fn info_with_caps(fd: RawFd, req: libc::c_ulong, head: &[u8], op: &'static str) -> Result<Vec<u8>> {
    let mut buf = head.to_vec();
    buf[0..4].copy_from_slice(&(head.len() as u32).to_le_bytes());
    ioctl_ptr(fd, req, buf.as_mut_ptr(), op)?;
    let want = u32_at(&buf, 0).unwrap_or(0) as usize;
    if want > buf.len() && want <= 1 << 16 {
        let mut big = vec![0u8; want];
        big[..head.len()].copy_from_slice(head);
        big[0..4].copy_from_slice(&(want as u32).to_le_bytes());
        ioctl_ptr(fd, req, big.as_mut_ptr(), op)?;
        buf = big;
    }
    Ok(buf)
}

/// The capabilities of an info buffer: `(id, offset)` pairs, following `next` links
/// (bounded, and only forward, so a bad chain cannot loop).
fn caps(buf: &[u8], first: u32) -> Vec<(u16, usize)> {
    let mut out = Vec::new();
    let mut off = first as usize;
    while off != 0 && off + 8 <= buf.len() && out.len() < 64 {
        let id = u16::from_le_bytes([buf[off], buf[off + 1]]);
        out.push((id, off));
        let next = u32_at(buf, off + 4).unwrap_or(0) as usize;
        if next <= off {
            break;
        }
        off = next;
    }
    out
}

/// First-fit allocator of IO virtual address ranges over the ranges the IOMMU accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IovaAllocator {
    /// Free ranges `[start, end)`, sorted and disjoint.
    free: Vec<(u64, u64)>,
}

impl IovaAllocator {
    /// `valid`: inclusive `(start, end)` ranges as the kernel reports them; nothing below
    /// `floor` is handed out.
    pub fn new(valid: &[(u64, u64)], floor: u64) -> IovaAllocator {
        let mut free: Vec<(u64, u64)> = valid
            .iter()
            .filter_map(|&(s, e)| {
                let s = s.max(floor);
                let end = e.saturating_add(1);
                (s < end).then_some((s, end))
            })
            .collect();
        free.sort_unstable();
        IovaAllocator { free }
    }

    /// `len` bytes aligned to `align` (a power of two), or None when nothing fits.
    pub fn alloc(&mut self, len: u64, align: u64) -> Option<u64> {
        if len == 0 || !align.is_power_of_two() {
            return None;
        }
        for i in 0..self.free.len() {
            let (s, e) = self.free[i];
            let Some(a) = s.checked_add(align - 1).map(|v| v & !(align - 1)) else {
                continue;
            };
            let Some(end) = a.checked_add(len) else {
                continue;
            };
            if end > e {
                continue;
            }
            let mut pieces = Vec::with_capacity(2);
            if a > s {
                pieces.push((s, a));
            }
            if end < e {
                pieces.push((end, e));
            }
            self.free.splice(i..=i, pieces);
            return Some(a);
        }
        None
    }

    /// Return `[start, start+len)`, merging with its neighbours.
    pub fn free(&mut self, start: u64, len: u64) {
        let end = start + len;
        let i = self.free.partition_point(|&(s, _)| s < start);
        self.free.insert(i, (start, end));
        if i + 1 < self.free.len() && self.free[i + 1].0 == end {
            self.free[i].1 = self.free[i + 1].1;
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].1 == start {
            self.free[i - 1].1 = self.free[i].1;
            self.free.remove(i);
        }
    }

    pub fn free_ranges(&self) -> &[(u64, u64)] {
        &self.free
    }
}

/// One region of a device (a BAR, the ROM, config space), from its region info.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegionInfo {
    pub index: u32,
    pub flags: u32,
    pub size: u64,
    /// Offset of the region in the device fd.
    pub offset: u64,
    /// The part that may be mmapped (`(offset in region, size)`), when any.
    pub mmap: Option<(u64, u64)>,
}

/// What the process's VFIO state knows about one open device.
#[derive(Debug)]
pub struct Device {
    fd: OwnedFd,
    pub bdf: String,
    pub group: u32,
    pub flags: u32,
    pub num_irqs: u32,
    pub regions: Vec<RegionInfo>,
    request: Mutex<Option<OwnedFd>>,
}

impl Device {
    fn region(&self, index: u32) -> Result<&RegionInfo> {
        self.regions
            .iter()
            .find(|r| r.index == index && r.size > 0)
            .ok_or_else(|| Error::InvalidArgument(format!("{} has no region {index}", self.bdf)))
    }

    fn config_at(&self, offset: u32, width: u32) -> Result<u64> {
        if !matches!(width, 1 | 2 | 4) || !offset.is_multiple_of(width) {
            return Err(Error::InvalidArgument(format!(
                "config access of {width} bytes at {offset:#x} is not naturally aligned"
            )));
        }
        let r = self.region(CONFIG_REGION)?;
        if u64::from(offset) + u64::from(width) > r.size {
            return Err(Error::InvalidArgument(format!(
                "config offset {offset:#x} is beyond config space ({} bytes)",
                r.size
            )));
        }
        Ok(r.offset + u64::from(offset))
    }

    /// Read 1, 2 or 4 bytes of config space.
    pub fn config_read(&self, offset: u32, width: u32) -> Result<u32> {
        let at = self.config_at(offset, width)?;
        let mut b = [0u8; 4];
        // SAFETY: b has room for `width` <= 4 bytes.
        let n = unsafe {
            libc::pread(
                self.fd.as_raw_fd(),
                b.as_mut_ptr().cast(),
                width as usize,
                at as libc::off_t,
            )
        };
        if n != width as isize {
            return Err(Error::last_os("pread config space"));
        }
        Ok(u32::from_le_bytes(b))
    }

    /// Write 1, 2 or 4 bytes of config space.
    pub fn config_write(&self, offset: u32, width: u32, value: u32) -> Result<()> {
        let at = self.config_at(offset, width)?;
        let b = value.to_le_bytes();
        // SAFETY: b holds at least `width` bytes.
        let n = unsafe {
            libc::pwrite(
                self.fd.as_raw_fd(),
                b.as_ptr().cast(),
                width as usize,
                at as libc::off_t,
            )
        };
        if n != width as isize {
            return Err(Error::last_os("pwrite config space"));
        }
        Ok(())
    }

    /// Map the mmappable part of BAR `index` (the part holding offset 0 when the region is
    /// sparse). Returns the mapping and the offset in the BAR it starts at.
    pub fn map_bar(&self, index: u32) -> Result<(Mapping, u64)> {
        if index > 5 {
            return Err(Error::InvalidArgument(format!("BAR index {index} > 5")));
        }
        let r = self.region(index)?;
        let (start, size) = r.mmap.ok_or_else(|| {
            Error::Unsupported(format!(
                "BAR{index} of {} cannot be mmapped (an I/O-port BAR?)",
                self.bdf
            ))
        })?;
        let m = Mapping::device(self.fd.as_raw_fd(), r.offset + start, size as usize)?;
        Ok((m, start))
    }

    /// Function-level reset (or whatever reset vfio-pci can do for this device).
    pub fn reset(&self) -> Result<()> {
        if self.flags & DEVICE_FLAGS_RESET == 0 {
            return Err(Error::Unsupported(format!(
                "{} offers no reset to VFIO (no FLR, PM or bus reset)",
                self.bdf
            )));
        }
        ioctl_val(self.fd.as_raw_fd(), DEVICE_RESET, 0, "VFIO_DEVICE_RESET")?;
        Ok(())
    }

    /// Ask the kernel to signal an eventfd when it wants the device back (unbind or hot
    /// remove): the request notifier. Idempotent.
    pub fn enable_request_notifier(&self) -> Result<()> {
        let mut slot = self.request.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_some() {
            return Ok(());
        }
        if REQ_IRQ >= self.num_irqs {
            return Err(Error::Unsupported(format!(
                "{}: this kernel's vfio-pci has no request notifier",
                self.bdf
            )));
        }
        let mut info = [16u32, 0, REQ_IRQ, 0];
        ioctl_ptr(
            self.fd.as_raw_fd(),
            DEVICE_GET_IRQ_INFO,
            info.as_mut_ptr(),
            "VFIO_DEVICE_GET_IRQ_INFO",
        )?;
        if info[3] == 0 {
            return Err(Error::Unsupported(format!(
                "{}: no request notifier",
                self.bdf
            )));
        }
        // SAFETY: eventfd has no memory preconditions.
        let efd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if efd < 0 {
            return Err(Error::last_os("eventfd"));
        }
        // SAFETY: efd was just created and is owned only here.
        let efd = unsafe { OwnedFd::from_raw_fd(efd) };
        // struct vfio_irq_set + one s32 eventfd.
        let mut set = [
            24u32,
            IRQ_SET_DATA_EVENTFD | IRQ_SET_ACTION_TRIGGER,
            REQ_IRQ,
            0,
            1,
            efd.as_raw_fd() as u32,
        ];
        ioctl_ptr(
            self.fd.as_raw_fd(),
            DEVICE_SET_IRQS,
            set.as_mut_ptr(),
            "VFIO_DEVICE_SET_IRQS",
        )?;
        *slot = Some(efd);
        Ok(())
    }

    /// Whether the kernel has asked for the device back since the last call (a
    /// non-blocking read of the request eventfd; false when no notifier is enabled).
    pub fn take_request(&self) -> Result<bool> {
        let slot = self.request.lock().unwrap_or_else(|p| p.into_inner());
        let Some(efd) = slot.as_ref() else {
            return Ok(false);
        };
        let mut v = 0u64;
        // SAFETY: reading 8 bytes into a u64.
        let n = unsafe { libc::read(efd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        if n == 8 {
            return Ok(v > 0);
        }
        let e = Error::last_os("read request eventfd");
        match e {
            Error::Os { errno, .. } if errno == libc::EAGAIN => Ok(false),
            e => Err(e),
        }
    }

    fn read_regions(fd: RawFd, count: u32) -> Result<Vec<RegionInfo>> {
        (0..count)
            .filter_map(|index| {
                let mut head = [0u8; 32];
                head[8..12].copy_from_slice(&index.to_le_bytes());
                // A region the device lacks (VGA on anything but a VGA card) is EINVAL: skip it.
                match info_with_caps(
                    fd,
                    DEVICE_GET_REGION_INFO,
                    &head,
                    "VFIO_DEVICE_GET_REGION_INFO",
                ) {
                    Ok(b) => Some(Ok((index, b))),
                    Err(Error::Os { errno, .. }) if errno == libc::EINVAL => None,
                    Err(e) => Some(Err(e)),
                }
            })
            .map(|r| {
                let (index, b) = r?;
                let flags = u32_at(&b, 4).unwrap_or(0);
                let size = u64_at(&b, 16).unwrap_or(0);
                let offset = u64_at(&b, 24).unwrap_or(0);
                let mut mmap = (flags & REGION_FLAG_MMAP != 0 && size > 0).then_some((0, size));
                if flags & REGION_FLAG_CAPS != 0 {
                    let first = u32_at(&b, 12).unwrap_or(0);
                    if let Some(&(_, at)) = caps(&b, first)
                        .iter()
                        .find(|(id, _)| *id == REGION_CAP_SPARSE_MMAP)
                    {
                        mmap = sparse_area_at_zero(&b, at);
                    }
                }
                Ok(RegionInfo {
                    index,
                    flags,
                    size,
                    offset,
                    mmap,
                })
            })
            .collect()
    }
}

/// Of a sparse-mmap capability at `at`, the area that starts at offset 0 (where an NVMe
/// controller's registers and doorbells are), or else the largest one.
fn sparse_area_at_zero(b: &[u8], at: usize) -> Option<(u64, u64)> {
    let n = u32_at(b, at + 8)? as usize;
    let areas: Vec<(u64, u64)> = (0..n.min(64))
        .filter_map(|i| Some((u64_at(b, at + 16 + i * 16)?, u64_at(b, at + 24 + i * 16)?)))
        .filter(|&(_, s)| s > 0)
        .collect();
    areas
        .iter()
        .copied()
        .find(|&(o, _)| o == 0)
        .or_else(|| areas.iter().copied().max_by_key(|&(_, s)| s))
}

struct Group {
    fd: OwnedFd,
    devices: u32,
}

struct DmaMap {
    iova: u64,
    len: u64,
}

struct State {
    container: Option<OwnedFd>,
    /// Set with the first group; cleared when the last group leaves.
    iova: Option<IovaAllocator>,
    groups: HashMap<u32, Group>,
    devices: HashMap<u32, Arc<Device>>,
    /// Regions mapped in the IOMMU, by the virtual address of their first byte.
    maps: HashMap<usize, DmaMap>,
    next_handle: u32,
}

static STATE: Mutex<Option<State>> = Mutex::new(None);

fn state() -> MutexGuard<'static, Option<State>> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

fn with<T>(f: impl FnOnce(&mut State) -> T) -> T {
    let mut g = state();
    f(g.get_or_insert_with(|| State {
        container: None,
        iova: None,
        groups: HashMap::new(),
        devices: HashMap::new(),
        maps: HashMap::new(),
        next_handle: 0,
    }))
}

/// Whether this machine can do VFIO at all (/dev/vfio/vfio exists).
pub fn available() -> bool {
    std::path::Path::new("/dev/vfio/vfio").exists()
}

fn no_vfio(e: Error) -> Error {
    match e {
        Error::Os { errno, .. } if errno == libc::ENOENT => Error::NoDevice(
            "/dev/vfio/vfio is missing: load vfio-pci and bind the device (storkit setup)".into(),
        ),
        e => e,
    }
}

impl State {
    fn container_fd(&mut self) -> Result<RawFd> {
        if let Some(fd) = &self.container {
            return Ok(fd.as_raw_fd());
        }
        let fd = open("/dev/vfio/vfio", libc::O_RDWR).map_err(no_vfio)?;
        let v = ioctl_val(fd.as_raw_fd(), GET_API_VERSION, 0, "VFIO_GET_API_VERSION")?;
        if v != API_VERSION {
            return Err(Error::Unsupported(format!(
                "VFIO API version {v}, expected {API_VERSION}"
            )));
        }
        let raw = fd.as_raw_fd();
        self.container = Some(fd);
        Ok(raw)
    }

    /// The group's fd, joined to the container (the IOMMU set with the first group).
    fn join_group(&mut self, group: u32, bdf: &str) -> Result<RawFd> {
        if let Some(g) = self.groups.get(&group) {
            return Ok(g.fd.as_raw_fd());
        }
        let cfd = self.container_fd()?;
        let gfd = open(&format!("/dev/vfio/{group}"), libc::O_RDWR).map_err(|e| match e {
            Error::Os { errno, .. } if errno == libc::EBUSY => Error::Busy(format!(
                "{bdf}: IOMMU group {group} is in use by another process"
            )),
            Error::Os { errno, .. } if errno == libc::ENOENT => Error::NoDevice(format!(
                "{bdf}: /dev/vfio/{group} is missing: bind the device to vfio-pci (storkit setup)"
            )),
            e => e,
        })?;
        let mut status = [8u32, 0];
        ioctl_ptr(
            gfd.as_raw_fd(),
            GROUP_GET_STATUS,
            status.as_mut_ptr(),
            "VFIO_GROUP_GET_STATUS",
        )?;
        if status[1] & GROUP_FLAGS_VIABLE == 0 {
            return Err(Error::Busy(format!(
                "{bdf}: IOMMU group {group} is not viable: bind every device of the group to vfio-pci (storkit setup)"
            )));
        }
        let mut c = cfd;
        ioctl_ptr(
            gfd.as_raw_fd(),
            GROUP_SET_CONTAINER,
            &mut c,
            "VFIO_GROUP_SET_CONTAINER",
        )?;
        if self.iova.is_none() {
            if let Err(e) = self.set_iommu(cfd) {
                // Leave the container as it was: no group, no IOMMU.
                drop(gfd);
                return Err(e);
            }
        }
        let raw = gfd.as_raw_fd();
        self.groups.insert(
            group,
            Group {
                fd: gfd,
                devices: 0,
            },
        );
        Ok(raw)
    }

    fn set_iommu(&mut self, cfd: RawFd) -> Result<()> {
        let kind = [TYPE1V2_IOMMU, TYPE1_IOMMU]
            .into_iter()
            .find(|&t| {
                ioctl_val(
                    cfd,
                    CHECK_EXTENSION,
                    t as libc::c_ulong,
                    "VFIO_CHECK_EXTENSION",
                )
                .unwrap_or(0)
                    > 0
            })
            .ok_or_else(|| Error::Unsupported("the VFIO container offers no type1 IOMMU".into()))?;
        ioctl_val(cfd, SET_IOMMU, kind as libc::c_ulong, "VFIO_SET_IOMMU")?;
        self.iova = Some(IovaAllocator::new(&iova_ranges(cfd), IOVA_FLOOR));
        Ok(())
    }
}

/// The IOVA ranges the container's IOMMU accepts (inclusive ends).
fn iova_ranges(cfd: RawFd) -> Vec<(u64, u64)> {
    let fallback = vec![(0, IOVA_DEFAULT_END - 1)];
    let Ok(b) = info_with_caps(cfd, IOMMU_GET_INFO, &[0u8; 24], "VFIO_IOMMU_GET_INFO") else {
        return fallback;
    };
    if u32_at(&b, 4).unwrap_or(0) & IOMMU_INFO_CAPS == 0 {
        return fallback;
    }
    let first = u32_at(&b, 16).unwrap_or(0);
    let Some(&(_, at)) = caps(&b, first)
        .iter()
        .find(|(id, _)| *id == IOMMU_CAP_IOVA_RANGE)
    else {
        return fallback;
    };
    let n = u32_at(&b, at + 8).unwrap_or(0) as usize;
    let ranges: Vec<(u64, u64)> = (0..n.min(256))
        .filter_map(|i| Some((u64_at(&b, at + 16 + i * 16)?, u64_at(&b, at + 24 + i * 16)?)))
        .collect();
    if ranges.is_empty() {
        fallback
    } else {
        ranges
    }
}

/// The IOMMU group of a PCI device, from sysfs.
pub fn iommu_group(bdf: &str) -> Result<u32> {
    let link =
        std::fs::read_link(format!("/sys/bus/pci/devices/{bdf}/iommu_group")).map_err(|_| {
            Error::NoDevice(format!(
                "{bdf} has no IOMMU group: no IOMMU (use uio_pci_generic) or no such device"
            ))
        })?;
    link.file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| Error::NoDevice(format!("{bdf}: unreadable IOMMU group link")))
}

/// Open a device bound to vfio-pci; returns its handle.
pub fn open_device(bdf: &str) -> Result<u32> {
    let group = iommu_group(bdf)?;
    let cbdf = CString::new(bdf).map_err(|_| Error::InvalidArgument("address has NUL".into()))?;
    with(|s| {
        let gfd = s.join_group(group, bdf)?;
        let result = (|| {
            // SAFETY: cbdf is a valid C string; the ioctl reads it and returns a new fd.
            let raw = unsafe { libc::ioctl(gfd, GROUP_GET_DEVICE_FD, cbdf.as_ptr()) };
            if raw < 0 {
                let e = Error::last_os("VFIO_GROUP_GET_DEVICE_FD");
                return Err(match e {
                    Error::Os { errno, .. } if errno == libc::EBUSY => Error::Busy(format!(
                        "{bdf} is already open (by this or another process)"
                    )),
                    e => e,
                });
            }
            // SAFETY: raw was just returned by the kernel and is owned only here.
            let fd = unsafe { OwnedFd::from_raw_fd(raw) };
            let mut info = [24u32, 0, 0, 0, 0, 0];
            ioctl_ptr(
                fd.as_raw_fd(),
                DEVICE_GET_INFO,
                info.as_mut_ptr(),
                "VFIO_DEVICE_GET_INFO",
            )?;
            if info[1] & DEVICE_FLAGS_PCI == 0 {
                return Err(Error::Unsupported(format!(
                    "{bdf} is not a vfio-pci device"
                )));
            }
            let regions = Device::read_regions(fd.as_raw_fd(), info[2].min(16))?;
            Ok(Device {
                fd,
                bdf: bdf.to_owned(),
                group,
                flags: info[1],
                num_irqs: info[3],
                regions,
                request: Mutex::new(None),
            })
        })();
        match result {
            Ok(dev) => {
                s.groups.get_mut(&group).expect("joined").devices += 1;
                s.next_handle += 1;
                s.devices.insert(s.next_handle, Arc::new(dev));
                Ok(s.next_handle)
            }
            Err(e) => {
                leave_group_if_unused(s, group);
                Err(e)
            }
        }
    })
}

fn leave_group_if_unused(s: &mut State, group: u32) {
    if s.groups.get(&group).is_some_and(|g| g.devices == 0) {
        s.groups.remove(&group);
    }
    if s.groups.is_empty() {
        // The kernel tore down the IOMMU with the last group, and every mapping with it.
        s.iova = None;
        s.maps.clear();
    }
}

/// The device behind a handle.
pub fn device(handle: u32) -> Result<Arc<Device>> {
    with(|s| s.devices.get(&handle).cloned())
        .ok_or_else(|| Error::NotFound(format!("no open VFIO device with handle {handle}")))
}

/// Close a device (its fd goes once the last `Arc` does). Returns false if already closed.
pub fn close_device(handle: u32) -> bool {
    let dev = with(|s| {
        let dev = s.devices.remove(&handle)?;
        if let Some(g) = s.groups.get_mut(&dev.group) {
            g.devices -= 1;
        }
        let group = dev.group;
        leave_group_if_unused(s, group);
        Some(dev)
    });
    dev.is_some()
}

/// Map `[vaddr, vaddr+len)` (a live DMA mapping) for device DMA, read and write; returns
/// its IO address. Idempotent: a region already mapped returns the same address.
pub fn map_dma(vaddr: usize, len: usize, align: usize) -> Result<u64> {
    with(|s| {
        if let Some(m) = s.maps.get(&vaddr) {
            return Ok(m.iova);
        }
        let cfd = match (&s.container, &s.iova) {
            (Some(c), Some(_)) => c.as_raw_fd(),
            _ => {
                return Err(Error::NoDevice(
                    "no VFIO device is open: the IOMMU is set up when the first device opens"
                        .into(),
                ))
            }
        };
        let alloc = s.iova.as_mut().expect("checked");
        let iova = alloc
            .alloc(len as u64, align.max(4096) as u64)
            .ok_or(Error::Os {
                op: "allocate an IO virtual address range",
                errno: libc::ENOSPC,
            })?;
        // struct vfio_iommu_type1_dma_map
        let mut arg = [0u64; 4];
        arg[0] = 32 | (u64::from(DMA_MAP_READ_WRITE) << 32);
        arg[1] = vaddr as u64;
        arg[2] = iova;
        arg[3] = len as u64;
        if let Err(e) = ioctl_ptr(cfd, IOMMU_MAP_DMA, arg.as_mut_ptr(), "VFIO_IOMMU_MAP_DMA") {
            s.iova.as_mut().expect("checked").free(iova, len as u64);
            return Err(e);
        }
        s.maps.insert(
            vaddr,
            DmaMap {
                iova,
                len: len as u64,
            },
        );
        Ok(iova)
    })
}

/// The IO address a region starting at `vaddr` is mapped at, if it is.
pub fn mapped_iova(vaddr: usize) -> Option<u64> {
    with(|s| s.maps.get(&vaddr).map(|m| m.iova))
}

/// Take a region out of the IOMMU (before its memory is unmapped). False if it was not
/// mapped.
pub fn unmap_dma(vaddr: usize) -> Result<bool> {
    with(|s| {
        let Some(m) = s.maps.remove(&vaddr) else {
            return Ok(false);
        };
        if let Some(c) = &s.container {
            // struct vfio_iommu_type1_dma_unmap
            let mut arg = [24u64, m.iova, m.len];
            ioctl_ptr(
                c.as_raw_fd(),
                IOMMU_UNMAP_DMA,
                arg.as_mut_ptr(),
                "VFIO_IOMMU_UNMAP_DMA",
            )?;
        }
        if let Some(a) = s.iova.as_mut() {
            a.free(m.iova, m.len);
        }
        Ok(true)
    })
}

/// Open devices and mapped regions, process-wide (for tests and status).
pub fn counts() -> (u32, u32) {
    with(|s| (s.devices.len() as u32, s.maps.len() as u32))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_match_the_kernel_header() {
        // _IO(';', 100 + n) from linux/vfio.h.
        assert_eq!(GET_API_VERSION, 0x3b64);
        assert_eq!(GROUP_GET_DEVICE_FD, 0x3b6a);
        assert_eq!(DEVICE_GET_REGION_INFO, 0x3b6c);
        assert_eq!(DEVICE_RESET, 0x3b6f);
        assert_eq!(IOMMU_MAP_DMA, 0x3b71);
        assert_eq!(IOMMU_UNMAP_DMA, 0x3b72);
    }

    #[test]
    fn allocator_honours_floor_ranges_and_alignment() {
        // Two valid ranges around an MSI-like hole, a floor inside the first.
        let mut a = IovaAllocator::new(
            &[(0, 0xfedf_ffff), (0xfef0_0000, 0x7f_ffff_ffff)],
            0x1000_0000,
        );
        assert_eq!(a.alloc(4096, 4096), Some(0x1000_0000));
        // 2 MiB alignment skips to the next 2 MiB boundary and leaves the gap free.
        assert_eq!(a.alloc(2 << 20, 2 << 20), Some(0x1020_0000));
        assert_eq!(a.alloc(4096, 4096), Some(0x1000_1000));
        // Too big for the first range: it comes from the second.
        let big = a.alloc(0x1_0000_0000, 4096).unwrap();
        assert!(big >= 0xfef0_0000);
        assert_eq!(a.alloc(0, 4096), None);
        assert_eq!(a.alloc(4096, 3), None);
        assert_eq!(a.alloc(1 << 40, 4096), None, "nothing fits");
    }

    #[test]
    fn allocator_free_coalesces_back_to_the_start() {
        let mut a = IovaAllocator::new(&[(0, (1 << 30) - 1)], 0);
        let before = a.clone();
        let x = a.alloc(8192, 4096).unwrap();
        let y = a.alloc(4096, 4096).unwrap();
        let z = a.alloc(1 << 20, 1 << 20).unwrap();
        a.free(y, 4096);
        a.free(x, 8192);
        a.free(z, 1 << 20);
        assert_eq!(a, before);
    }

    #[test]
    fn allocator_never_hands_out_overlapping_ranges() {
        // A tiny deterministic property test: random alloc/free, check disjointness.
        let mut a = IovaAllocator::new(&[(0x10_0000, 0x1_0000_0000)], 0);
        let mut live: Vec<(u64, u64)> = Vec::new();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..2000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if seed.is_multiple_of(3) && !live.is_empty() {
                let (s, l) = live.swap_remove((seed as usize / 3) % live.len());
                a.free(s, l);
            } else {
                let len = 4096 * (1 + seed % 64);
                let align = 4096u64 << (seed % 4);
                if let Some(s) = a.alloc(len, align) {
                    assert_eq!(s % align, 0);
                    assert!(live.iter().all(|&(o, ol)| s + len <= o || o + ol <= s));
                    live.push((s, len));
                }
            }
        }
        for (s, l) in live.drain(..) {
            a.free(s, l);
        }
        assert_eq!(a.free_ranges(), &[(0x10_0000, 0x1_0000_0001)]);
    }

    #[test]
    fn caps_follow_links_forward_only() {
        let mut b = vec![0u8; 64];
        b[16] = 1; // id 1 at 16, next 40
        b[20..24].copy_from_slice(&40u32.to_le_bytes());
        b[40] = 2; // id 2 at 40, next 16 (backwards: ends the walk)
        b[44..48].copy_from_slice(&16u32.to_le_bytes());
        assert_eq!(caps(&b, 16), vec![(1, 16), (2, 40)]);
        assert_eq!(caps(&b, 60), vec![], "a cap that does not fit is ignored");
    }

    #[test]
    fn sparse_mmap_prefers_the_area_at_zero() {
        let mut b = vec![0u8; 8 + 8 + 3 * 16];
        b[8..12].copy_from_slice(&3u32.to_le_bytes());
        let areas = [(0x3000u64, 0x1000u64), (0, 0x2000), (0x8000, 0x8000)];
        for (i, (o, s)) in areas.iter().enumerate() {
            b[16 + i * 16..24 + i * 16].copy_from_slice(&o.to_le_bytes());
            b[24 + i * 16..32 + i * 16].copy_from_slice(&s.to_le_bytes());
        }
        assert_eq!(sparse_area_at_zero(&b, 0), Some((0, 0x2000)));
        b[16 + 16..24 + 16].copy_from_slice(&0x1000u64.to_le_bytes());
        assert_eq!(
            sparse_area_at_zero(&b, 0),
            Some((0x8000, 0x8000)),
            "else the largest"
        );
    }

    #[test]
    fn without_a_device_mapping_dma_says_why() {
        if counts().0 > 0 {
            return;
        }
        let e = map_dma(0x1000, 4096, 4096).unwrap_err();
        assert_eq!(e.code(), "ENODEV");
        assert!(!unmap_dma(0x1000).unwrap());
        assert_eq!(device(12345).unwrap_err().code(), "ENOENT");
    }

    #[test]
    fn a_missing_device_names_the_fix() {
        let e = open_device("0000:ff:1f.7").unwrap_err();
        assert_eq!(e.code(), "ENODEV");
        assert!(
            e.to_string().contains("uio_pci_generic") || e.to_string().contains("storkit setup")
        );
    }
}
