use napi_derive::napi;

use crate::{to_napi, Result};

/// Pin the calling thread (main thread or worker) to exactly these CPUs.
#[napi]
pub fn pin_thread(cpus: Vec<u32>) -> Result<()> {
    let cpus: Vec<usize> = cpus.into_iter().map(|c| c as usize).collect();
    storkit_core::cpu::pin_current_thread(&cpus).map_err(to_napi)
}

/// The CPUs the calling thread may run on.
#[napi]
pub fn thread_affinity() -> Result<Vec<u32>> {
    storkit_core::cpu::current_affinity()
        .map(|v| v.into_iter().map(|c| c as u32).collect())
        .map_err(to_napi)
}

/// The CPU the calling thread is running on now.
#[napi]
pub fn current_cpu() -> Result<u32> {
    storkit_core::cpu::current_cpu()
        .map(|c| c as u32)
        .map_err(to_napi)
}

/// Kernel thread id of the calling thread.
#[napi]
pub fn thread_id() -> i32 {
    storkit_core::cpu::thread_id()
}

/// Number of configured CPUs.
#[napi]
pub fn cpu_count() -> u32 {
    storkit_core::cpu::cpu_count() as u32
}
