//! Hot-path functions registered as raw Node-API callbacks, outside napi-rs's `#[napi]` macro.
//!
//! napi-rs 3 wraps every exported function that takes arguments in a native borrow scope (a
//! mutex, an `Arc` and a heap allocation per call, ~85 ns on the machines we measure on), which
//! is several times the work of a CRC32C over a PDU header. The functions here read their
//! arguments with plain `napi_get_cb_info` / `napi_get_typedarray_info` instead: ~25 ns a call.
//! They take typed arrays only for the duration of the call (JS cannot run meanwhile, so cannot
//! detach them) and keep no references, so no scope is needed.
//!
//! `fast_functions()` (a normal `#[napi]` export) returns an object holding them; the TS wrappers
//! fetch it once.

use std::ffi::{c_char, c_void, CStr};
use std::ptr;

use napi::bindgen_prelude::{Env, Object, ToNapiValue};
use napi::sys;
use napi_derive::napi;

use crate::{Coded, Result};

/// napi's element type for Uint8Array.
const UINT8: sys::napi_typedarray_type = 1;

/// Throw a RangeError with `msg` and code `EINVAL` (the code makes it a NativeError in TS).
unsafe fn throw(env: sys::napi_env, msg: &CStr) -> sys::napi_value {
    // SAFETY: env is the live env of the current callback; msg is NUL-terminated.
    unsafe { sys::napi_throw_range_error(env, c"EINVAL".as_ptr(), msg.as_ptr()) };
    ptr::null_mut()
}

/// Up to N arguments of the current call (missing ones are `undefined`).
unsafe fn args<const N: usize>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> Option<[sys::napi_value; N]> {
    let mut argc = N;
    let mut argv = [ptr::null_mut(); N];
    // SAFETY: argv has room for argc values; napi fills at most that many (undefined for absent).
    let s = unsafe {
        sys::napi_get_cb_info(
            env,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    (s == sys::Status::napi_ok).then_some(argv)
}

/// Data pointer and byte length of a Uint8Array argument.
unsafe fn u8_array(env: sys::napi_env, v: sys::napi_value) -> Option<(*const u8, usize)> {
    let mut ty = 0;
    let mut len = 0usize;
    let mut data: *mut c_void = ptr::null_mut();
    // SAFETY: out-parameters are valid; the two we do not need are null, which napi allows.
    let s = unsafe {
        sys::napi_get_typedarray_info(
            env,
            v,
            &mut ty,
            &mut len,
            &mut data,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    if s != sys::Status::napi_ok || ty != UINT8 {
        return None;
    }
    Some((
        if data.is_null() {
            ptr::NonNull::dangling().as_ptr()
        } else {
            data as *const u8
        },
        len,
    ))
}

/// A number argument that must be a non-negative integer (undefined gives `default`).
unsafe fn index(env: sys::napi_env, v: sys::napi_value, default: Option<f64>) -> Option<f64> {
    let mut x = 0f64;
    // SAFETY: x is a valid out-parameter.
    if unsafe { sys::napi_get_value_double(env, v, &mut x) } != sys::Status::napi_ok {
        let mut t = 0;
        // SAFETY: as above.
        unsafe { sys::napi_typeof(env, v, &mut t) };
        return if t == sys::ValueType::napi_undefined {
            default
        } else {
            None
        };
    }
    (x >= 0.0 && x.fract() == 0.0).then_some(x)
}

/// crc32cRange(buf: Uint8Array, start: number, end: number, seed = 0): number, the CRC32C of
/// buf[start, end) continuing from `seed`, with no subarray made for the range.
unsafe extern "C" fn crc32c_range(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY (whole body): env and info are this callback's; see the helpers for each call.
    unsafe {
        let Some([b, s, e, seed]) = args::<4>(env, info) else {
            return throw(env, c"crc32cRange: bad arguments");
        };
        let Some((p, len)) = u8_array(env, b) else {
            return throw(env, c"crc32cRange: buf must be a Uint8Array");
        };
        let (Some(s), Some(e), Some(seed)) = (
            index(env, s, None),
            index(env, e, None),
            index(env, seed, Some(0.0)),
        ) else {
            return throw(
                env,
                c"crc32cRange: start, end and seed must be non-negative integers",
            );
        };
        if s > e || e > len as f64 || seed > u32::MAX as f64 {
            return throw(
                env,
                c"crc32cRange: range outside the buffer, or seed above 2^32-1",
            );
        }
        // The range was checked against napi's length of the array, alive for this call.
        let data = std::slice::from_raw_parts(p.add(s as usize), (e - s) as usize);
        let crc = storkit_core::crc::crc32c(seed as u32, data);
        let mut out = ptr::null_mut();
        sys::napi_create_uint32(env, crc, &mut out);
        out
    }
}

/// A Uint8Array argument and a range `[off, off + len)` in it, checked against its length.
unsafe fn range(
    env: sys::napi_env,
    buf: sys::napi_value,
    off: sys::napi_value,
    len: f64,
) -> Option<*mut u8> {
    // SAFETY: the caller's env and values are live for this callback.
    let (p, n) = unsafe { u8_array(env, buf)? };
    // SAFETY: as above.
    let o = unsafe { index(env, off, None)? };
    (o + len <= n as f64).then(|| {
        // SAFETY: o + len <= n, so the offset stays inside the array.
        unsafe { p.add(o as usize) as *mut u8 }
    })
}

/// copyRange(dst, dstOff, src, srcOff, len): copy `len` bytes between (or within) Uint8Arrays
/// as memmove does, with no subarray made for either range.
unsafe extern "C" fn copy_range(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY (whole body): env and info are this callback's; see the helpers for each call.
    unsafe {
        let Some([d, doff, s, soff, n]) = args::<5>(env, info) else {
            return throw(env, c"copyRange: bad arguments");
        };
        let Some(len) = index(env, n, None) else {
            return throw(env, c"copyRange: len must be a non-negative integer");
        };
        let (Some(dp), Some(sp)) = (range(env, d, doff, len), range(env, s, soff, len)) else {
            return throw(env, c"copyRange: a range is outside its Uint8Array");
        };
        // Both ranges were checked against live arrays; they may overlap (one buffer), hence copy.
        ptr::copy(sp.cast_const(), dp, len as usize);
        ptr::null_mut()
    }
}

/// compareRange(a, aOff, b, bOff, len): memcmp of two ranges, as -1, 0 or 1.
unsafe extern "C" fn compare_range(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY (whole body): env and info are this callback's; see the helpers for each call.
    unsafe {
        let Some([a, aoff, b, boff, n]) = args::<5>(env, info) else {
            return throw(env, c"compareRange: bad arguments");
        };
        let Some(len) = index(env, n, None) else {
            return throw(env, c"compareRange: len must be a non-negative integer");
        };
        let (Some(ap), Some(bp)) = (range(env, a, aoff, len), range(env, b, boff, len)) else {
            return throw(env, c"compareRange: a range is outside its Uint8Array");
        };
        let x = std::slice::from_raw_parts(ap.cast_const(), len as usize);
        let y = std::slice::from_raw_parts(bp.cast_const(), len as usize);
        let mut out = ptr::null_mut();
        sys::napi_create_int32(env, x.cmp(y) as i32, &mut out);
        out
    }
}

type Callback = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;

const FUNCTIONS: &[(&CStr, Callback)] = &[
    (c"crc32cRange", crc32c_range),
    (c"copyRange", copy_range),
    (c"compareRange", compare_range),
];

/// An object holding the raw-callback functions above, by name.
#[napi(
    ts_return_type = "{ crc32cRange(buf: Uint8Array, start: number, end: number, seed?: number): number; copyRange(dst: Uint8Array, dstOff: number, src: Uint8Array, srcOff: number, len: number): void; compareRange(a: Uint8Array, aOff: number, b: Uint8Array, bOff: number, len: number): number }"
)]
pub fn fast_functions(env: &Env) -> Result<Object<'_>> {
    let obj = Object::new(env).coded()?;
    // SAFETY: obj is a live object of this env; each napi call gets valid pointers and a
    // NUL-terminated name.
    unsafe {
        let raw = ToNapiValue::to_napi_value(env.raw(), obj).coded()?;
        for (name, cb) in FUNCTIONS {
            let mut f = ptr::null_mut();
            let s = sys::napi_create_function(
                env.raw(),
                name.as_ptr() as *const c_char,
                -1,
                Some(*cb),
                ptr::null_mut(),
                &mut f,
            );
            if s != sys::Status::napi_ok
                || sys::napi_set_named_property(env.raw(), raw, name.as_ptr(), f)
                    != sys::Status::napi_ok
            {
                return Err(napi::Error::new(
                    crate::Code("EIO"),
                    format!("cannot register {name:?}"),
                ));
            }
        }
        Ok(Object::from_raw(env.raw(), raw))
    }
}
