//! IO addresses of DMA memory: what a device would be given to reach a buffer.
//!
//! Without an IOMMU that is the physical address from /proc/self/pagemap (readable with
//! CAP_SYS_ADMIN, i.e. as root); with VFIO it is an IOVA the process maps itself
//! (`crate::vfio`, `Mapping::map_iommu`), which then takes precedence. Regions are translated once, per page, at creation: their pages are
//! hugetlb or mlocked and populated, so the translation stays valid and lookups are a
//! table index rather than a syscall.

use std::os::unix::fs::FileExt;

use crate::{Error, Result};

/// Which address space the IO addresses of a region live in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressSpace {
    /// CPU physical addresses (no IOMMU, or IOMMU in passthrough).
    Physical,
    /// Addresses in the process's VFIO container (a region mapped with `Mapping::map_iommu`).
    Iova,
}

/// The per-page IO addresses of a region, or why there are none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IoAddresses {
    Table {
        space: AddressSpace,
        /// IO address of the first byte of each page.
        pages: Vec<u64>,
    },
    Unavailable(Error),
}

impl IoAddresses {
    pub fn lookup(&self, offset: usize, page_size: usize) -> Result<u64> {
        match self {
            IoAddresses::Table { pages, .. } => pages
                .get(offset / page_size)
                .map(|base| base + (offset % page_size) as u64)
                .ok_or_else(|| Error::InvalidArgument(format!("offset {offset} is out of range"))),
            IoAddresses::Unavailable(e) => Err(e.clone()),
        }
    }

    pub fn space(&self) -> Option<AddressSpace> {
        match self {
            IoAddresses::Table { space, .. } => Some(*space),
            IoAddresses::Unavailable(_) => None,
        }
    }
}

const PM_PRESENT: u64 = 1 << 63;
const PM_PFN_MASK: u64 = (1 << 55) - 1;
const PAGEMAP_PAGE: usize = 4096;

/// Physical address of the 4 KiB page a pagemap entry describes.
pub fn decode_pagemap_entry(entry: u64) -> Result<u64> {
    if entry & PM_PRESENT == 0 {
        return Err(Error::Os {
            op: "pagemap: page not present",
            errno: libc::EFAULT,
        });
    }
    let pfn = entry & PM_PFN_MASK;
    if pfn == 0 {
        // The kernel hides frame numbers from processes without CAP_SYS_ADMIN.
        return Err(Error::NotPermitted(
            "physical addresses need CAP_SYS_ADMIN (run as root) or VFIO with an IOMMU".into(),
        ));
    }
    Ok(pfn * PAGEMAP_PAGE as u64)
}

/// Translate every `page_size` page of `[addr, addr+len)` through /proc/self/pagemap.
pub fn translate(addr: usize, len: usize, page_size: usize) -> IoAddresses {
    match translate_pages(addr, len, page_size) {
        Ok(pages) => IoAddresses::Table {
            space: AddressSpace::Physical,
            pages,
        },
        Err(e) => IoAddresses::Unavailable(e),
    }
}

fn translate_pages(addr: usize, len: usize, page_size: usize) -> Result<Vec<u64>> {
    let f = std::fs::File::open("/proc/self/pagemap").map_err(|e| Error::Os {
        op: "open /proc/self/pagemap",
        errno: e.raw_os_error().unwrap_or(libc::EIO),
    })?;
    let first = addr / PAGEMAP_PAGE;
    let count = len.div_ceil(PAGEMAP_PAGE);
    let mut raw = vec![0u8; count * 8];
    f.read_exact_at(&mut raw, (first * 8) as u64)
        .map_err(|e| Error::Os {
            op: "read /proc/self/pagemap",
            errno: e.raw_os_error().unwrap_or(libc::EIO),
        })?;
    let stride = page_size / PAGEMAP_PAGE;
    (0..len.div_ceil(page_size))
        .map(|p| {
            let i = p * stride * 8;
            decode_pagemap_entry(u64::from_le_bytes(raw[i..i + 8].try_into().unwrap()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_entries() {
        assert_eq!(
            decode_pagemap_entry(PM_PRESENT | 0x1234).unwrap(),
            0x1234 * 4096
        );
        assert_eq!(
            decode_pagemap_entry(PM_PRESENT).unwrap_err().code(),
            "EPERM"
        );
        assert!(decode_pagemap_entry(0x1234).is_err());
    }

    #[test]
    fn lookup_adds_the_offset_within_the_page() {
        let io = IoAddresses::Table {
            space: AddressSpace::Physical,
            pages: vec![0x10_0000, 0x50_0000],
        };
        assert_eq!(io.lookup(4096 + 7, 4096).unwrap(), 0x50_0007);
        assert!(io.lookup(3 * 4096, 4096).is_err());
        let none = IoAddresses::Unavailable(Error::NotPermitted("x".into()));
        assert_eq!(none.lookup(0, 4096).unwrap_err().code(), "EPERM");
    }
}
