use napi_derive::napi;

/// Current tick count as a double: exact below 2^53 ticks (years at GHz rates).
#[napi]
pub fn ticks() -> f64 {
    storkit_core::time::ticks() as f64
}

/// Ticks per second.
#[napi]
pub fn tick_rate() -> f64 {
    storkit_core::time::tick_rate() as f64
}

/// "tsc" or "monotonic".
#[napi]
pub fn tick_source() -> &'static str {
    match storkit_core::time::tick_source() {
        storkit_core::time::TickSource::Tsc => "tsc",
        storkit_core::time::TickSource::Monotonic => "monotonic",
    }
}
