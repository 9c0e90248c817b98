//! Volatile 32/64-bit access to a mapping, as a driver does to device registers.
//! Every access is bounds- and alignment-checked: a misaligned access to a BAR can fault
//! or tear, so it is rejected rather than attempted.

use std::sync::atomic::{fence, Ordering};

use crate::mem::Mapping;
use crate::{Error, Result};

fn check(m: &Mapping, offset: usize, width: usize) -> Result<*mut u8> {
    if !offset.is_multiple_of(width) {
        return Err(Error::InvalidArgument(format!(
            "offset {offset} is not {width}-byte aligned"
        )));
    }
    if offset.checked_add(width).is_none_or(|end| end > m.len()) {
        return Err(Error::InvalidArgument(format!(
            "offset {offset} + {width} is beyond the mapping ({} bytes)",
            m.len()
        )));
    }
    // SAFETY: offset + width <= len was checked above.
    Ok(unsafe { m.as_ptr().add(offset) })
}

pub fn read32(m: &Mapping, offset: usize) -> Result<u32> {
    let p = check(m, offset, 4)?;
    // SAFETY: p is in bounds and 4-byte aligned (the mapping is page aligned).
    Ok(unsafe { p.cast::<u32>().read_volatile() })
}

pub fn write32(m: &Mapping, offset: usize, v: u32) -> Result<()> {
    let p = check(m, offset, 4)?;
    // SAFETY: as in read32.
    unsafe { p.cast::<u32>().write_volatile(v) };
    Ok(())
}

pub fn read64(m: &Mapping, offset: usize) -> Result<u64> {
    let p = check(m, offset, 8)?;
    // SAFETY: p is in bounds and 8-byte aligned.
    Ok(unsafe { p.cast::<u64>().read_volatile() })
}

pub fn write64(m: &Mapping, offset: usize, v: u64) -> Result<()> {
    let p = check(m, offset, 8)?;
    // SAFETY: as in read64.
    unsafe { p.cast::<u64>().write_volatile(v) };
    Ok(())
}

/// A doorbell: every earlier store (queue entries in DMA memory) is made visible before
/// the device can see the new tail, like SPDK's spdk_wmb() + spdk_mmio_write_4().
pub fn doorbell32(m: &Mapping, offset: usize, v: u32) -> Result<()> {
    let p = check(m, offset, 4)?;
    fence(Ordering::SeqCst);
    // SAFETY: as in read32.
    unsafe { p.cast::<u32>().write_volatile(v) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_and_rejects_bad_offsets() {
        let m = Mapping::shared_anon(4096).unwrap();
        write32(&m, 8, 0xdead_beef).unwrap();
        write64(&m, 16, 0x0123_4567_89ab_cdef).unwrap();
        doorbell32(&m, 4092, 7).unwrap();
        assert_eq!(read32(&m, 8).unwrap(), 0xdead_beef);
        assert_eq!(read64(&m, 16).unwrap(), 0x0123_4567_89ab_cdef);
        assert_eq!(read32(&m, 4092).unwrap(), 7);
        assert_eq!(read32(&m, 2).unwrap_err().code(), "EINVAL");
        assert_eq!(read64(&m, 4092).unwrap_err().code(), "EINVAL");
        assert_eq!(write32(&m, 4096, 0).unwrap_err().code(), "EINVAL");
        assert!(read64(&m, usize::MAX - 7).is_err());
    }

    #[test]
    fn file_mapping_writes_reach_the_file() {
        let path = std::env::temp_dir().join(format!("storkit-mmio-{}", std::process::id()));
        std::fs::write(&path, vec![0u8; 8192]).unwrap();
        {
            let m = Mapping::file(path.to_str().unwrap(), 4096, 0).unwrap();
            assert_eq!(m.len(), 4096);
            write32(&m, 0, 0x0403_0201).unwrap();
            assert_eq!(m.io_address(0).unwrap_err().code(), "EPERM");
        }
        let data = std::fs::read(&path).unwrap();
        assert_eq!(&data[4096..4100], &[1, 2, 3, 4]);
        assert!(Mapping::file(path.to_str().unwrap(), 100, 0).is_err());
        assert!(Mapping::file(path.to_str().unwrap(), 8192, 0).is_err());
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            Mapping::file("/nonexistent/bar0", 0, 0).unwrap_err().code(),
            "ENOENT"
        );
    }
}
