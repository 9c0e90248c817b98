//! Errors of the native core. Each variant says what failed and, where there is
//! one, what the caller can do about it.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A system call failed; `op` names it, `errno` is the raw error number.
    Os { op: &'static str, errno: i32 },
    /// An argument was out of range; the message names it.
    InvalidArgument(String),
    /// The operation needs a privilege or kernel feature that is absent.
    NotPermitted(String),
    /// A handle, file or object does not exist (or no longer does).
    NotFound(String),
    /// A device is held by someone else (another process, a kernel driver); the message
    /// says who and what to do.
    Busy(String),
    /// A device is missing or not set up for this use (not bound, no IOMMU); the message
    /// names the fix.
    NoDevice(String),
    /// The device or kernel lacks a feature this needs.
    Unsupported(String),
    /// A peer broke a wire protocol (vhost-user); the connection cannot go on.
    Protocol(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The errno of the last failed libc call, tagged with the operation name.
    pub fn last_os(op: &'static str) -> Self {
        Error::Os {
            op,
            errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        }
    }

    /// A stable short code for the TypeScript layer (`EINVAL`, `EPERM`, `ENOMEM`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Os { errno, .. } => errno_name(*errno),
            Error::InvalidArgument(_) => "EINVAL",
            Error::NotPermitted(_) => "EPERM",
            Error::NotFound(_) => "ENOENT",
            Error::Busy(_) => "EBUSY",
            Error::NoDevice(_) => "ENODEV",
            Error::Unsupported(_) => "ENOTSUP",
            Error::Protocol(_) => "EPROTO",
        }
    }
}

fn errno_name(e: i32) -> &'static str {
    match e {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EINVAL => "EINVAL",
        libc::EBUSY => "EBUSY",
        libc::EAGAIN => "EAGAIN",
        libc::EBADF => "EBADF",
        libc::ENOSYS => "ENOSYS",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::ENODEV => "ENODEV",
        libc::ENXIO => "ENXIO",
        libc::ENOSPC => "ENOSPC",
        libc::ENOTSUP => "ENOTSUP",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EEXIST => "EEXIST",
        libc::EFAULT => "EFAULT",
        libc::EPIPE => "EPIPE",
        libc::EPROTO => "EPROTO",
        libc::EMSGSIZE => "EMSGSIZE",
        libc::ECONNRESET => "ECONNRESET",
        libc::ENOTCONN => "ENOTCONN",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EALREADY => "EALREADY",
        _ => "EIO",
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Os { op, errno } => write!(
                f,
                "{op} failed: {} ({})",
                std::io::Error::from_raw_os_error(*errno),
                errno_name(*errno)
            ),
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::NotPermitted(m) => write!(f, "not permitted: {m}"),
            Error::NotFound(m) => write!(f, "not found: {m}"),
            Error::Busy(m) => write!(f, "busy: {m}"),
            Error::NoDevice(m) => write!(f, "no device: {m}"),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
            Error::Protocol(m) => write!(f, "protocol error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn codes_name_the_errno_or_the_kind() {
        let os = |errno| {
            Error::Os {
                op: "connect",
                errno,
            }
            .code()
        };
        assert_eq!(os(libc::ECONNREFUSED), "ECONNREFUSED");
        assert_eq!(os(libc::ENOENT), "ENOENT");
        // An errno outside the set the TypeScript side shares is reported as EIO.
        assert_eq!(os(libc::ENOLINK), "EIO");
        assert_eq!(Error::Protocol("x".into()).code(), "EPROTO");
        assert_eq!(Error::InvalidArgument("x".into()).code(), "EINVAL");
        // The message says what failed; the code is not part of it.
        assert_eq!(
            Error::Protocol("bad header".into()).to_string(),
            "protocol error: bad header"
        );
    }
}
