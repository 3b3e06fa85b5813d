//! The systemd readiness protocol, `sd_notify(3)`: with `Type=notify`,
//! systemd considers the service started when it receives `READY=1` on the
//! unix datagram socket named by `$NOTIFY_SOCKET`. A few lines of std
//! rather than a dependency.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (e.g. `"READY=1"`) to `$NOTIFY_SOCKET`, if set. Returns
/// whether a message was sent. Not running under systemd (no variable) is
/// not an error.
pub fn notify(state: &str) -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let socket = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket (sd_notify(3): a leading '@').
        #[cfg(target_os = "linux")]
        {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &addr)?;
            return Ok(true);
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = name;
            return Err(std::io::Error::other(
                "abstract NOTIFY_SOCKET addresses exist only on Linux",
            ));
        }
    }
    socket.send_to(state.as_bytes(), &path)?;
    Ok(true)
}

/// Tells systemd the gateway is ready (every listener is bound). A failure
/// is logged: systemd then times the start out, which says more than
/// stopping here would.
pub fn ready() {
    match notify("READY=1\nSTATUS=serving") {
        Ok(true) => tracing::info!("told systemd the gateway is ready"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "could not notify systemd (NOTIFY_SOCKET)"),
    }
}
