use napi_derive::napi;

use crate::{to_napi, Result};

/// A listening socket made by `reuseportListen`: hand `fd` to `net.Server.listen({ fd })`.
#[napi(object)]
pub struct ReuseportListener {
    pub fd: i32,
    pub address: String,
    pub port: u32,
}

/// Create a TCP socket with SO_REUSEADDR + SO_REUSEPORT, bind it to host:port and listen.
/// Every worker that does this for the same port gets its share of the connections.
#[napi]
pub fn reuseport_listen(host: String, port: u32, backlog: i32) -> Result<ReuseportListener> {
    let port = u16::try_from(port).map_err(|_| {
        to_napi(storkit_core::Error::InvalidArgument(format!(
            "port {port} > 65535"
        )))
    })?;
    let l = storkit_core::net::reuseport_listen(&host, port, backlog).map_err(to_napi)?;
    Ok(ReuseportListener {
        fd: l.fd,
        address: l.addr.ip().to_string(),
        port: u32::from(l.addr.port()),
    })
}

/// Close an fd that was never handed to Node.
#[napi]
pub fn close_fd(fd: i32) {
    storkit_core::net::close_fd(fd);
}
