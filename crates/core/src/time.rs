//! A cheap monotonic tick source and its rate (SPDK's spdk_get_ticks / _hz).
//!
//! On x86_64 with an invariant TSC we read the TSC (~10 ns, no syscall); the rate
//! is calibrated once against CLOCK_MONOTONIC. Elsewhere ticks are nanoseconds.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TickSource {
    Tsc,
    Monotonic,
}

struct Clock {
    source: TickSource,
    hz: u64,
}

static CLOCK: OnceLock<Clock> = OnceLock::new();

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-parameter; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// CPU time the calling thread has used, in nanoseconds (CLOCK_THREAD_CPUTIME_ID): what a
/// thread costs, whatever else the machine is doing (time it spends descheduled does not count).
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-parameter; CLOCK_THREAD_CPUTIME_ID always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(target_arch = "x86_64")]
fn rdtsc() -> u64 {
    // SAFETY: rdtsc is available on every x86_64 CPU and has no side effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

fn invariant_tsc() -> bool {
    cfg!(target_arch = "x86_64")
        && std::fs::read_to_string("/proc/cpuinfo")
            .map(|s| s.contains(" constant_tsc") && s.contains(" nonstop_tsc"))
            .unwrap_or(false)
}

fn clock() -> &'static Clock {
    CLOCK.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        if invariant_tsc() {
            // Calibrate over 20 ms: a 0.01% error is far below what pollers need.
            let (t0, n0) = (rdtsc(), Instant::now());
            std::thread::sleep(Duration::from_millis(20));
            let (t1, el) = (rdtsc(), n0.elapsed());
            let hz = ((t1 - t0) as u128 * 1_000_000_000 / el.as_nanos()) as u64;
            return Clock {
                source: TickSource::Tsc,
                hz,
            };
        }
        Clock {
            source: TickSource::Monotonic,
            hz: 1_000_000_000,
        }
    })
}

/// The current tick count (monotonic, per-machine, comparable across threads).
#[inline]
pub fn ticks() -> u64 {
    match clock().source {
        #[cfg(target_arch = "x86_64")]
        TickSource::Tsc => rdtsc(),
        _ => monotonic_ns(),
    }
}

/// Ticks per second.
pub fn tick_rate() -> u64 {
    clock().hz
}

pub fn tick_source() -> TickSource {
    clock().source
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_cpu_time_advances_with_work() {
        let a = thread_cpu_ns();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(thread_cpu_ns() > a);
    }

    #[test]
    fn rate_matches_wall_clock_within_2_percent() {
        let (t0, n0) = (ticks(), Instant::now());
        std::thread::sleep(Duration::from_millis(100));
        let (t1, el) = (ticks(), n0.elapsed());
        let measured = (t1 - t0) as f64 / el.as_secs_f64();
        let err = (measured - tick_rate() as f64).abs() / tick_rate() as f64;
        assert!(err < 0.02, "rate {} vs measured {measured}", tick_rate());
    }

    #[test]
    fn monotonic() {
        let mut last = ticks();
        for _ in 0..10_000 {
            let t = ticks();
            assert!(t >= last);
            last = t;
        }
    }
}
