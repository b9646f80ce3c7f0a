//! Answers discovery probes from the local network (see
//! [`ferry_protocol::discovery`]): on UDP, broadcast and multicast, with
//! the hub's port and fingerprint and nothing else. A reply is smaller
//! than its probe and goes only to the probe's sender, at most
//! [`PER_SOURCE`] a second to one address and [`IN_ALL`] a second in all, so
//! the responder can neither amplify nor be made to flood.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use ferry_protocol::discovery::{DISCOVERY_GROUP, HubBeacon, PROBE_LEN, parse_probe, reply};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// Replies a second to one source address.
pub const PER_SOURCE: u32 = 4;

/// Replies a second in all.
pub const IN_ALL: u32 = 64;

/// Opens the discovery socket on `port`: on every IPv4 address, the
/// multicast group joined where the system allows; or, for a hub that
/// listens on loopback only (`local`), on loopback, since no one else on
/// the LAN could reach the address it would tell them.
pub fn bind(port: u16, local: bool) -> std::io::Result<UdpSocket> {
    // No SO_REUSEADDR: one hub per machine answers, and no other local
    // program can share the port to answer in its name.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    socket.set_nonblocking(true)?;
    let ip = if local {
        Ipv4Addr::LOCALHOST
    } else {
        Ipv4Addr::UNSPECIFIED
    };
    socket.bind(&SocketAddr::from((ip, port)).into())?;
    if local {
        return UdpSocket::from_std(socket.into());
    }
    if let Err(e) = socket.join_multicast_v4(&DISCOVERY_GROUP, &Ipv4Addr::UNSPECIFIED) {
        tracing::debug!("discovery: not in the multicast group ({e}); broadcast only");
    }
    UdpSocket::from_std(socket.into())
}

/// Answers probes on `socket` with what `beacon` says now, until `shutdown`.
pub async fn answer(
    socket: UdpSocket,
    beacon: impl Fn() -> HubBeacon,
    shutdown: CancellationToken,
) {
    let mut limits = Limits::default();
    // One byte more than a probe: a longer datagram shows as too long.
    let mut buf = [0; PROBE_LEN + 1];
    loop {
        let received = tokio::select! {
            () = shutdown.cancelled() => return,
            received = socket.recv_from(&mut buf) => received,
        };
        let Ok((len, from)) = received else { continue };
        let Some(nonce) = parse_probe(&buf[..len]) else {
            continue;
        };
        if !answerable(from) || !limits.allow(from.ip(), Instant::now()) {
            continue;
        }
        if let Err(e) = socket.send_to(&reply(nonce, beacon()), from).await {
            tracing::debug!(%from, "discovery reply not sent: {e}");
        }
    }
}

/// Whether a probe from `from` may be answered: a client's own unicast
/// address and an unprivileged port. A forged source naming a multicast or
/// broadcast address, or a system service's port (DNS, NTP, SSDP), gets
/// nothing: the hub cannot be made to send there.
fn answerable(from: SocketAddr) -> bool {
    let ip_ok = match from.ip() {
        IpAddr::V4(ip) => !(ip.is_multicast() || ip.is_broadcast() || ip.is_unspecified()),
        IpAddr::V6(ip) => !(ip.is_multicast() || ip.is_unspecified()),
    };
    ip_ok && from.port() >= 1024
}

/// How many replies went where within the current second (at most
/// [`IN_ALL`] sources, since only a source that gets a reply is counted).
#[derive(Debug, Default)]
struct Limits {
    second: Option<Instant>,
    in_all: u32,
    per_source: HashMap<IpAddr, u32>,
}

impl Limits {
    /// Whether one more reply to `source` fits in this second's budget.
    fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        if self
            .second
            .is_none_or(|start| now.duration_since(start) >= Duration::from_secs(1))
        {
            *self = Self {
                second: Some(now),
                ..Self::default()
            };
        }
        if self.in_all >= IN_ALL {
            return false;
        }
        let count = self.per_source.entry(source).or_default();
        if *count >= PER_SOURCE {
            return false;
        }
        *count += 1;
        self.in_all += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_limited_per_source_and_in_all_each_second() {
        let mut limits = Limits::default();
        let start = Instant::now();
        let one: IpAddr = [10, 0, 0, 1].into();
        let allowed = (0..10).filter(|_| limits.allow(one, start)).count();
        assert_eq!(allowed, PER_SOURCE as usize);
        let many = (0..200u8)
            .filter(|&i| limits.allow([10, 0, 1, i].into(), start))
            .count();
        assert_eq!(many, (IN_ALL - PER_SOURCE) as usize);
        assert!(
            limits.allow(one, start + Duration::from_secs(1)),
            "a new second"
        );
    }

    #[test]
    fn forged_sources_get_no_answer() {
        let from = |ip: [u8; 4], port| SocketAddr::from((ip, port));
        assert!(answerable(from([10, 0, 0, 2], 40000)));
        assert!(!answerable(from([10, 0, 0, 2], 53)), "a DNS server");
        assert!(!answerable(from([239, 255, 78, 78], 40000)), "a group");
        assert!(!answerable(from([255, 255, 255, 255], 40000)));
    }
}
