//! PCI device claims: one process drives a device at a time (SPDK's spdk_pci_lock files).
//!
//! VFIO already refuses a second opener of a group, but uio does not, and neither says who
//! holds the device. A claim is an exclusive `flock` on `/var/tmp/storkit_pci_lock_<bdf>`
//! holding the owner's pid: released when the fd closes or the process dies, and exclusive
//! even between two opens in one process (flock locks belong to the open file).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

use crate::{Error, Result};

/// The lock file of a device (`dir` is /var/tmp outside tests).
pub fn lock_path(dir: &str, bdf: &str) -> String {
    format!("{dir}/storkit_pci_lock_{bdf}")
}

/// Whether `bdf` looks like a PCI address (`dddd:bb:dd.f`, hex): the claim path is built
/// from it, so nothing else may reach the file system.
pub fn valid_address(bdf: &str) -> bool {
    let b = bdf.as_bytes();
    b.len() == 12
        && b[4] == b':'
        && b[7] == b':'
        && b[10] == b'.'
        && b.iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10) || c.is_ascii_hexdigit())
}

/// Claim `bdf` for this process: EBUSY naming the holder's pid when another claim exists.
pub fn claim(dir: &str, bdf: &str) -> Result<OwnedFd> {
    if !valid_address(bdf) {
        return Err(Error::InvalidArgument(format!(
            "{bdf:?} is not a PCI address (dddd:bb:dd.f)"
        )));
    }
    let path = lock_path(dir, bdf);
    let c = CString::new(path.clone()).map_err(|_| Error::InvalidArgument("NUL".into()))?;
    // SAFETY: c is a valid C string; O_CLOEXEC keeps the claim out of children.
    let raw = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDWR | libc::O_CREAT | libc::O_CLOEXEC,
            0o600,
        )
    };
    if raw < 0 {
        return Err(Error::last_os("open PCI lock file"));
    }
    // SAFETY: raw was just opened and is owned only here.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: flock on an open fd has no memory preconditions.
    if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let holder = std::fs::read_to_string(&path).unwrap_or_default();
        let holder = holder.trim();
        return Err(Error::Busy(format!(
            "{bdf} is claimed by process {} ({path})",
            if holder.is_empty() { "?" } else { holder }
        )));
    }
    let pid = std::process::id().to_string();
    // SAFETY: fd is open; ftruncate and pwrite have no memory preconditions beyond the
    // buffer, which lives for the call.
    unsafe {
        libc::ftruncate(fd.as_raw_fd(), 0);
        libc::pwrite(fd.as_raw_fd(), pid.as_ptr().cast(), pid.len(), 0);
    }
    Ok(fd)
}

/// Device models registered by address, process-wide: what any worker needs to open one (its
/// share, as JSON) and whether someone has it open (models are claimed like hardware).
static MODELS: Mutex<BTreeMap<String, (String, bool)>> = Mutex::new(BTreeMap::new());

fn models() -> std::sync::MutexGuard<'static, BTreeMap<String, (String, bool)>> {
    MODELS.lock().unwrap_or_else(|p| p.into_inner())
}

/// Register (or replace) the model at `address`.
pub fn model_register(address: &str, share: &str) -> Result<()> {
    if !valid_address(address) {
        return Err(Error::InvalidArgument(format!(
            "{address:?} is not a PCI address (dddd:bb:dd.f)"
        )));
    }
    models().insert(address.to_owned(), (share.to_owned(), false));
    Ok(())
}

pub fn model_unregister(address: &str) -> bool {
    models().remove(address).is_some()
}

/// Open the model at `address`: its share, None when no model is there, EBUSY when open.
pub fn model_open(address: &str) -> Result<Option<String>> {
    let mut m = models();
    match m.get_mut(address) {
        None => Ok(None),
        Some((_, true)) => Err(Error::Busy(format!(
            "{address} is already open (a device model)"
        ))),
        Some((share, open)) => {
            *open = true;
            Ok(Some(share.clone()))
        }
    }
}

pub fn model_close(address: &str) {
    if let Some((_, open)) = models().get_mut(address) {
        *open = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_before_any_path_is_built() {
        assert!(valid_address("0000:00:03.0"));
        assert!(valid_address("abcd:ef:1f.7"));
        assert!(!valid_address("0000:00:03"));
        assert!(!valid_address("../../etc/x."));
        assert!(!valid_address("0000:00:03.0 "));
        assert_eq!(claim("/tmp", "../x").unwrap_err().code(), "EINVAL");
    }

    #[test]
    fn models_open_once_at_a_time() {
        let a = "fffe:00:01.0";
        assert_eq!(model_register("x", "{}").unwrap_err().code(), "EINVAL");
        model_register(a, "{\"k\":1}").unwrap();
        assert_eq!(model_open(a).unwrap().as_deref(), Some("{\"k\":1}"));
        assert_eq!(model_open(a).unwrap_err().code(), "EBUSY");
        model_close(a);
        assert!(model_open(a).unwrap().is_some());
        assert!(model_unregister(a));
        assert_eq!(model_open(a).unwrap(), None);
    }

    #[test]
    fn a_second_claim_is_busy_and_names_the_holder() {
        let dir = std::env::temp_dir().join(format!("storkit-claim-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.to_str().unwrap();
        let first = claim(d, "0000:00:04.0").unwrap();
        let e = claim(d, "0000:00:04.0").unwrap_err();
        assert_eq!(e.code(), "EBUSY");
        assert!(e.to_string().contains(&std::process::id().to_string()));
        let other = claim(d, "0000:00:05.0").unwrap();
        drop(first);
        let again = claim(d, "0000:00:04.0").unwrap();
        drop((again, other));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
