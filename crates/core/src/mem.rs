//! Memory mappings shared by every worker: DMA regions (hugepage or locked pages, with
//! their IO addresses) and MMIO windows (a file such as a PCI BAR resource, or an
//! anonymous shared region standing in for a device BAR).
//!
//! A `Mapping` owns its `mmap` and its fd; dropping it unmaps exactly once. Sharing and
//! lifetime across workers is the registry's job (`crate::registry`).

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::iova::{self, IoAddresses};
use crate::{Error, Result};

pub const PAGE_4K: usize = 4096;
pub const PAGE_2M: usize = 2 << 20;

// Not exported by libc for glibc targets (linux/memfd.h).
const MFD_CLOEXEC: libc::c_uint = 0x0001;
const MFD_HUGETLB: libc::c_uint = 0x0004;
const MFD_HUGE_2MB: libc::c_uint = 21 << 26;

/// Whether a DMA region may, must or must not use 2 MiB hugepages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HugepagePolicy {
    /// Hugepages when the system has enough reserved, else locked 4 KiB pages.
    Auto,
    /// Fail with ENOMEM when hugepages are not available.
    Require,
    /// Always 4 KiB pages.
    Never,
}

/// What backs a mapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backing {
    /// 2 MiB hugetlb pages: never swapped or migrated, physically contiguous per page.
    Hugepage2M,
    /// 4 KiB shmem pages locked with mlock.
    Locked4K,
    /// 4 KiB shmem pages that mlock refused (RLIMIT_MEMLOCK); the reason says why.
    Unlocked4K { reason: String },
    /// An anonymous shared region standing in for a device BAR.
    SharedAnon,
    /// A mapped file (a PCI BAR resource file, or a test file).
    File,
    /// A region of a device fd (a BAR through VFIO).
    Device,
}

impl Backing {
    pub fn name(&self) -> &'static str {
        match self {
            Backing::Hugepage2M => "hugepage-2m",
            Backing::Locked4K => "locked-4k",
            Backing::Unlocked4K { .. } => "unlocked-4k",
            Backing::SharedAnon => "shared-anon",
            Backing::File => "file",
            Backing::Device => "device",
        }
    }

    /// Whether the memory is DMA memory (a device may be given its IO addresses).
    pub fn is_dma(&self) -> bool {
        matches!(
            self,
            Backing::Hugepage2M | Backing::Locked4K | Backing::Unlocked4K { .. }
        )
    }
}

static MAPPINGS_CREATED: AtomicU64 = AtomicU64::new(0);
static MAPPINGS_FREED: AtomicU64 = AtomicU64::new(0);
static BYTES_MAPPED: AtomicU64 = AtomicU64::new(0);

/// Process-wide counters, so tests can prove each mapping is unmapped exactly once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MappingStats {
    pub created: u64,
    pub freed: u64,
    pub bytes_mapped: u64,
}

pub fn stats() -> MappingStats {
    MappingStats {
        created: MAPPINGS_CREATED.load(Ordering::SeqCst),
        freed: MAPPINGS_FREED.load(Ordering::SeqCst),
        bytes_mapped: BYTES_MAPPED.load(Ordering::SeqCst),
    }
}

/// One `mmap`ed range and the fd behind it.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    page_size: usize,
    backing: Backing,
    fd: OwnedFd,
    io: IoAddresses,
    /// Why hugepages were not used when they were allowed (empty otherwise).
    hugepage_fallback: Option<String>,
}

// SAFETY: the mapping is plain shared memory; every access through it is either a volatile
// access or a JS view whose concurrency is the caller's protocol. The pointer stays valid
// until Drop, which only runs when no Arc (and so no view) remains.
unsafe impl Send for Mapping {}
// SAFETY: as above; &Mapping exposes no interior mutability of its own.
unsafe impl Sync for Mapping {}

fn round_up(n: usize, to: usize) -> Result<usize> {
    n.checked_add(to - 1)
        .map(|v| v & !(to - 1))
        .ok_or_else(|| Error::InvalidArgument(format!("size {n} is too large")))
}

fn memfd(name: &str, flags: libc::c_uint) -> Result<OwnedFd> {
    let cname = CString::new(name).map_err(|_| Error::InvalidArgument("name has NUL".into()))?;
    // SAFETY: cname is a valid NUL-terminated string for the duration of the call.
    let fd = unsafe { libc::memfd_create(cname.as_ptr(), flags) };
    if fd < 0 {
        return Err(Error::last_os("memfd_create"));
    }
    // SAFETY: fd was just returned by the kernel and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn truncate(fd: &OwnedFd, len: usize) -> Result<()> {
    // SAFETY: fd is open; ftruncate has no memory-safety preconditions.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
        return Err(Error::last_os("ftruncate"));
    }
    Ok(())
}

fn map_shared(fd: RawFd, len: usize, offset: u64, flags: libc::c_int) -> Result<NonNull<u8>> {
    // SAFETY: a fresh mapping chosen by the kernel (addr null) cannot alias Rust memory.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | flags,
            fd,
            offset as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(Error::last_os("mmap"));
    }
    NonNull::new(p.cast()).ok_or_else(|| Error::last_os("mmap"))
}

fn lock(ptr: NonNull<u8>, len: usize) -> std::result::Result<(), String> {
    // SAFETY: [ptr, ptr+len) is a live mapping we own.
    if unsafe { libc::mlock(ptr.as_ptr().cast(), len) } == 0 {
        Ok(())
    } else {
        let e = Error::last_os("mlock");
        Err(format!(
            "{e}; raise RLIMIT_MEMLOCK (ulimit -l) or reserve hugepages"
        ))
    }
}

impl Mapping {
    /// A DMA region of at least `size` bytes (rounded up to its page size), zeroed,
    /// populated, pinned in memory where the system allows, with its IO addresses.
    pub fn dma(size: usize, policy: HugepagePolicy) -> Result<Mapping> {
        if size == 0 {
            return Err(Error::InvalidArgument("DMA region size must be > 0".into()));
        }
        let mut fallback = None;
        if policy != HugepagePolicy::Never {
            match Self::hugepage_region(size) {
                Ok(m) => return Ok(m),
                Err(e) if policy == HugepagePolicy::Require => return Err(e),
                Err(e) => fallback = Some(format!("no 2 MiB hugepages ({e})")),
            }
        }
        let len = round_up(size, PAGE_4K)?;
        let fd = memfd("storkit-dma", MFD_CLOEXEC)?;
        truncate(&fd, len)?;
        let ptr = map_shared(fd.as_raw_fd(), len, 0, libc::MAP_POPULATE)?;
        let backing = match lock(ptr, len) {
            Ok(()) => Backing::Locked4K,
            Err(reason) => Backing::Unlocked4K { reason },
        };
        Ok(Self::finish(ptr, len, PAGE_4K, backing, fd, fallback, true))
    }

    fn hugepage_region(size: usize) -> Result<Mapping> {
        let len = round_up(size, PAGE_2M)?;
        let fd = memfd("storkit-dma-huge", MFD_CLOEXEC | MFD_HUGETLB | MFD_HUGE_2MB)?;
        truncate(&fd, len)?;
        // hugetlb reserves the pages at mmap time, so a shortage is ENOMEM here, not SIGBUS later.
        let ptr = map_shared(fd.as_raw_fd(), len, 0, libc::MAP_POPULATE)?;
        Ok(Self::finish(
            ptr,
            len,
            PAGE_2M,
            Backing::Hugepage2M,
            fd,
            None,
            true,
        ))
    }

    /// An anonymous shared region (memfd) standing in for a device BAR.
    pub fn shared_anon(size: usize) -> Result<Mapping> {
        if size == 0 {
            return Err(Error::InvalidArgument("region size must be > 0".into()));
        }
        let len = round_up(size, PAGE_4K)?;
        let fd = memfd("storkit-bar", MFD_CLOEXEC)?;
        truncate(&fd, len)?;
        let ptr = map_shared(fd.as_raw_fd(), len, 0, libc::MAP_POPULATE)?;
        Ok(Self::finish(
            ptr,
            len,
            PAGE_4K,
            Backing::SharedAnon,
            fd,
            None,
            false,
        ))
    }

    /// Map `len` bytes of a file at `offset` (page aligned), shared and writable. `len` 0
    /// maps from `offset` to the end of the file.
    pub fn file(path: &str, offset: u64, len: usize) -> Result<Mapping> {
        if !offset.is_multiple_of(PAGE_4K as u64) {
            return Err(Error::InvalidArgument(format!(
                "offset {offset} is not 4 KiB aligned"
            )));
        }
        let cpath =
            CString::new(path).map_err(|_| Error::InvalidArgument("path has NUL".into()))?;
        // SAFETY: cpath is a valid C string; O_CLOEXEC keeps it out of children.
        let raw = unsafe { libc::open(cpath.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        if raw < 0 {
            return Err(Error::last_os("open"));
        }
        // SAFETY: raw was just opened and is owned only here.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let len = if len == 0 {
            let size = file_size(&fd)?;
            if size <= offset {
                return Err(Error::InvalidArgument(format!(
                    "offset {offset} is at or past the end of {path} ({size} bytes)"
                )));
            }
            (size - offset) as usize
        } else {
            len
        };
        let ptr = map_shared(fd.as_raw_fd(), len, offset, 0)?;
        Ok(Self::finish(
            ptr,
            len,
            PAGE_4K,
            Backing::File,
            fd,
            None,
            false,
        ))
    }

    /// Map `len` bytes of a device fd at `offset` (a VFIO region), shared and writable. The
    /// fd is duplicated: the mapping keeps the device open until it is unmapped.
    pub fn device(fd: RawFd, offset: u64, len: usize) -> Result<Mapping> {
        if len == 0 || !offset.is_multiple_of(PAGE_4K as u64) {
            return Err(Error::InvalidArgument(format!(
                "device region at {offset:#x} of {len} bytes is empty or not page aligned"
            )));
        }
        // SAFETY: F_DUPFD_CLOEXEC on an open fd has no memory preconditions.
        let raw = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
        if raw < 0 {
            return Err(Error::last_os("dup"));
        }
        // SAFETY: raw was just created and is owned only here.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        let ptr = map_shared(owned.as_raw_fd(), len, offset, 0)?;
        Ok(Self::finish(
            ptr,
            len,
            PAGE_4K,
            Backing::Device,
            owned,
            None,
            false,
        ))
    }

    fn finish(
        ptr: NonNull<u8>,
        len: usize,
        page_size: usize,
        backing: Backing,
        fd: OwnedFd,
        hugepage_fallback: Option<String>,
        dma: bool,
    ) -> Mapping {
        let io = if dma {
            iova::translate(ptr.as_ptr() as usize, len, page_size)
        } else {
            IoAddresses::Unavailable(Error::NotPermitted(
                "not DMA memory: MMIO mappings have no IO address".into(),
            ))
        };
        MAPPINGS_CREATED.fetch_add(1, Ordering::SeqCst);
        BYTES_MAPPED.fetch_add(len as u64, Ordering::SeqCst);
        Mapping {
            ptr,
            len,
            page_size,
            backing,
            fd,
            io,
            hugepage_fallback,
        }
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn page_size(&self) -> usize {
        self.page_size
    }
    pub fn backing(&self) -> &Backing {
        &self.backing
    }
    pub fn hugepage_fallback(&self) -> Option<&str> {
        self.hugepage_fallback.as_deref()
    }
    /// The memfd or file behind the mapping (kept open for sharing with other processes).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
    pub fn io_addresses(&self) -> &IoAddresses {
        &self.io
    }

    /// The IO address of byte `offset` of the mapping: in the VFIO container's IOVA space
    /// once the region is mapped there (`vfio::map_dma`), else the physical address.
    pub fn io_address(&self, offset: usize) -> Result<u64> {
        if offset >= self.len {
            return Err(Error::InvalidArgument(format!(
                "offset {offset} is beyond the region ({} bytes)",
                self.len
            )));
        }
        if let Some(base) = self.iova() {
            return Ok(base + offset as u64);
        }
        self.io.lookup(offset, self.page_size)
    }

    /// The region's IOVA base in the process's VFIO container, when it is mapped there.
    pub fn iova(&self) -> Option<u64> {
        if self.backing.is_dma() {
            crate::vfio::mapped_iova(self.ptr.as_ptr() as usize)
        } else {
            None
        }
    }

    /// Map the region into the process's VFIO container for device DMA (idempotent);
    /// returns its IOVA base. Only DMA memory can be mapped.
    pub fn map_iommu(&self) -> Result<u64> {
        if !self.backing.is_dma() {
            return Err(Error::InvalidArgument(format!(
                "a {} mapping is not DMA memory",
                self.backing.name()
            )));
        }
        crate::vfio::map_dma(self.ptr.as_ptr() as usize, self.len, self.page_size)
    }

    /// Map a device's own memory (a BAR mapped through VFIO) into the process's VFIO container,
    /// so that a device reaches it by IOVA: an NVMe controller's memory buffer, whose address
    /// the controller must be told (CMBMSC.CBA) and which no DMA buffer may overlap. Idempotent;
    /// returns the IOVA base.
    pub fn map_iommu_device(&self) -> Result<u64> {
        if !matches!(self.backing, Backing::Device) {
            return Err(Error::InvalidArgument(format!(
                "a {} mapping is not a device region",
                self.backing.name()
            )));
        }
        crate::vfio::map_dma(self.ptr.as_ptr() as usize, self.len, self.page_size)
    }
}

fn file_size(fd: &OwnedFd) -> Result<u64> {
    // SAFETY: stat is plain data; all-zero is a valid value to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fd is open and st is a valid out-parameter.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(Error::last_os("fstat"));
    }
    Ok(st.st_size as u64)
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // The IOMMU lets go of the pages before they are freed, so no device can reach them.
        if self.backing.is_dma() || matches!(self.backing, Backing::Device) {
            let _ = crate::vfio::unmap_dma(self.ptr.as_ptr() as usize);
        }
        // SAFETY: ptr/len is the mapping created in the constructor and unmapped only here;
        // Drop runs once, after the last Arc (and therefore the last view) is gone.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        MAPPINGS_FREED.fetch_add(1, Ordering::SeqCst);
        BYTES_MAPPED.fetch_sub(self.len as u64, Ordering::SeqCst);
    }
}

/// Free 2 MiB hugepages the kernel has reserved (from /proc/meminfo), 0 if unknown.
pub fn free_hugepages() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("HugePages_Free:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iova::{AddressSpace, IoAddresses};
    use std::sync::Mutex;

    // Tests that change the system's hugepage reservation must not overlap.
    static HUGEPAGES: Mutex<()> = Mutex::new(());
    const NR: &str = "/proc/sys/vm/nr_hugepages";

    fn set_nr_hugepages(n: u64) -> bool {
        std::fs::write(NR, n.to_string()).is_ok()
    }

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    #[test]
    fn small_pages_are_locked_zeroed_and_shared_through_the_fd() {
        let m = Mapping::dma(10_000, HugepagePolicy::Never).unwrap();
        assert_eq!(m.len(), 12_288);
        assert_eq!(m.page_size(), PAGE_4K);
        assert!(matches!(
            m.backing(),
            Backing::Locked4K | Backing::Unlocked4K { .. }
        ));
        // SAFETY: in-bounds reads and writes of the live mapping.
        let s = unsafe { std::slice::from_raw_parts_mut(m.as_ptr(), m.len()) };
        assert!(s.iter().all(|&b| b == 0));
        s[5000] = 42;
        // A second mapping of the memfd sees the same bytes (what vhost peers will do).
        let again = map_shared(m.fd(), m.len(), 0, 0).unwrap();
        // SAFETY: again maps m.len() bytes.
        assert_eq!(unsafe { *again.as_ptr().add(5000) }, 42);
        // SAFETY: unmapping the extra mapping created above.
        unsafe { libc::munmap(again.as_ptr().cast(), m.len()) };
    }

    #[test]
    fn io_addresses_as_root_and_a_clear_error_otherwise() {
        let m = Mapping::dma(3 * PAGE_4K, HugepagePolicy::Never).unwrap();
        if is_root() {
            assert_eq!(m.io_addresses().space(), Some(AddressSpace::Physical));
            let a = m.io_address(PAGE_4K + 5).unwrap();
            assert_eq!(a % PAGE_4K as u64, 5);
            assert_ne!(a, 0);
        } else {
            assert!(matches!(m.io_addresses(), IoAddresses::Unavailable(_)));
            assert_eq!(m.io_address(0).unwrap_err().code(), "EPERM");
        }
        assert_eq!(m.io_address(3 * PAGE_4K).unwrap_err().code(), "EINVAL");
    }

    #[test]
    fn counters_see_each_free_once() {
        let before = stats();
        let m = Mapping::dma(1, HugepagePolicy::Never).unwrap();
        drop(m);
        let after = stats();
        // Other tests run concurrently, so only lower bounds hold here.
        assert!(after.created > before.created);
        assert!(after.freed > before.freed);
    }

    #[test]
    fn hugepage_path_and_its_fallback() {
        let _g = HUGEPAGES.lock().unwrap();
        if !is_root() {
            return;
        }
        let saved: u64 = std::fs::read_to_string(NR).unwrap().trim().parse().unwrap();
        // With none free: Auto falls back and says why; Require fails.
        set_nr_hugepages(0);
        if free_hugepages() == 0 {
            let m = Mapping::dma(PAGE_2M, HugepagePolicy::Auto).unwrap();
            assert_eq!(m.backing(), &Backing::Locked4K);
            assert!(m.hugepage_fallback().unwrap().contains("ENOMEM"));
            let e = Mapping::dma(PAGE_2M, HugepagePolicy::Require).unwrap_err();
            assert_eq!(e.code(), "ENOMEM");
        }
        assert!(set_nr_hugepages(saved.max(2)));
        let m = Mapping::dma(PAGE_2M + 1, HugepagePolicy::Auto).unwrap();
        assert_eq!(m.backing(), &Backing::Hugepage2M);
        assert_eq!(m.len(), PAGE_2M * 2);
        let a = m.io_address(PAGE_2M + 4096).unwrap();
        let IoAddresses::Table { pages, .. } = m.io_addresses() else {
            panic!("no io table")
        };
        assert_eq!(pages.len(), 2);
        assert_eq!(pages[0] % PAGE_2M as u64, 0, "hugepages are 2 MiB aligned");
        assert_eq!(a, pages[1] + 4096);
        drop(m);
        set_nr_hugepages(saved);
    }
}
