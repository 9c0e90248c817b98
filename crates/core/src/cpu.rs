//! CPU pinning of the calling OS thread (a Node worker is one OS thread).

use crate::{Error, Result};

/// Number of CPUs the kernel reports as configured.
pub fn cpu_count() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_CONF) };
    if n < 1 {
        1
    } else {
        n as usize
    }
}

/// Kernel thread id of the calling thread (the `<tid>` in /proc/self/task/<tid>).
pub fn thread_id() -> i32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as i32 }
}

/// Pin the calling thread to exactly the given CPUs.
pub fn pin_current_thread(cpus: &[usize]) -> Result<()> {
    if cpus.is_empty() {
        return Err(Error::InvalidArgument("empty CPU list".into()));
    }
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    for &c in cpus {
        if c >= max {
            return Err(Error::InvalidArgument(format!("cpu {c} is beyond {max}")));
        }
        // SAFETY: c < CPU_SETSIZE was checked above.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: set is initialised and its size is passed; pid 0 = calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(Error::last_os("sched_setaffinity"));
    }
    Ok(())
}

/// The CPUs the calling thread may run on.
pub fn current_affinity() -> Result<Vec<usize>> {
    // SAFETY: as above.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid out-buffer of the size passed.
    let rc =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(Error::last_os("sched_getaffinity"));
    }
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: i < CPU_SETSIZE.
    Ok((0..max)
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect())
}

/// The CPU the calling thread is running on right now.
pub fn current_cpu() -> Result<usize> {
    // SAFETY: sched_getcpu has no preconditions.
    let c = unsafe { libc::sched_getcpu() };
    if c < 0 {
        return Err(Error::last_os("sched_getcpu"));
    }
    Ok(c as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_and_read_back() {
        let h = std::thread::spawn(|| {
            pin_current_thread(&[0]).unwrap();
            assert_eq!(current_affinity().unwrap(), vec![0]);
            assert_eq!(current_cpu().unwrap(), 0);
            let status =
                std::fs::read_to_string(format!("/proc/self/task/{}/status", thread_id())).unwrap();
            let line = status
                .lines()
                .find(|l| l.starts_with("Cpus_allowed_list:"))
                .unwrap();
            assert_eq!(line.split_whitespace().nth(1).unwrap(), "0");
        });
        h.join().unwrap();
    }

    #[test]
    fn rejects_bad_cpu() {
        assert!(pin_current_thread(&[]).is_err());
        assert!(pin_current_thread(&[1 << 20]).is_err());
    }
}
