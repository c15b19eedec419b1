//! Opening upstream connections, and which endpoints may be dialled at all.
//!
//! Every connection the proxy opens carries someone else's bytes: the application's
//! (outbound), an authorized caller's (inbound to the application) or a remote zone's
//! (ingress). A connection to a loopback destination is therefore opened from
//! [`RELAY_SOURCE_V4`], so that a service on this host that trusts local clients (the control
//! plane's API does) can tell it apart from a local user. Endpoints come from Dataplanes that
//! any workload token can register, so an endpoint no proxy may dial
//! ([`aerie_core::net::endpoint_refusal`]) is skipped, never dialled, and never allowed to
//! spoil the rest of a config.

use std::io;
use std::net::{IpAddr, SocketAddr};

use aerie_core::net::{RELAY_SOURCE_V4, endpoint_refusal};
use tokio::net::{TcpSocket, TcpStream};

/// Connects to `addr`; loopback destinations from the relay source address.
pub(crate) async fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => {
            let socket = TcpSocket::new_v4()?;
            // Let connect() pick the source port per destination (as Envoy does for bound
            // upstream sockets): otherwise every connection from the relay address shares
            // one ephemeral range, TIME_WAIT included, whatever its destination.
            bind_address_no_port(&socket)?;
            socket.bind(SocketAddr::new(RELAY_SOURCE_V4.into(), 0))?;
            socket.connect(addr).await
        }
        _ => TcpStream::connect(addr).await,
    }
}

/// Sets `IP_BIND_ADDRESS_NO_PORT` (Linux 4.2+): a bind to an address with port 0 defers the
/// port choice to connect(), which makes it unique per destination.
#[allow(unsafe_code)]
fn bind_address_no_port(socket: &TcpSocket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: setsockopt reads `len` bytes from `&on`, which lives for the call, on a
    // descriptor `socket` owns and keeps open for the call.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            std::ptr::from_ref(&on).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The socket address of another proxy's endpoint, or why it is skipped.
pub(crate) fn endpoint(address: &str, port: u16) -> Result<SocketAddr, String> {
    let ip: IpAddr = address
        .parse()
        .map_err(|_| format!("{address:?} is not an IP address"))?;
    if let Some(why) = endpoint_refusal(ip) {
        return Err(format!("{address}: {why}"));
    }
    if port == 0 {
        return Err(format!("{address}: port 0 is not valid"));
    }
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_destinations_see_the_relay_source() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_client, accepted) = tokio::join!(connect(addr), listener.accept());
        let (_, peer) = accepted.unwrap();
        assert_eq!(peer.ip(), IpAddr::from(RELAY_SOURCE_V4));
        assert!(!aerie_core::net::is_local_client(peer.ip()));
    }

    #[test]
    fn endpoints_no_proxy_may_dial_are_refused() {
        assert_eq!(
            endpoint("10.0.0.1", 80).unwrap(),
            "10.0.0.1:80".parse().unwrap()
        );
        for bad in [
            "backend.mesh",
            "169.254.169.254",
            "0.0.0.0",
            "::1",
            "224.0.0.1",
        ] {
            assert!(endpoint(bad, 80).is_err(), "{bad}");
        }
        assert!(endpoint("10.0.0.1", 0).is_err());
    }
}
