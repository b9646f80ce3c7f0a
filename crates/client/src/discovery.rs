//! Finding hubs on the local network: one probe by broadcast and one by
//! multicast (see [`ferry_protocol::discovery`]), then whatever answers
//! within the wait. A reply is a claim, not a proof: its fingerprint is
//! shown for the user to compare and pinned only when the user connects.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use ferry_protocol::Fingerprint;
use ferry_protocol::discovery::{DISCOVERY_GROUP, REPLY_LEN, parse_reply, probe};
use tokio::net::UdpSocket;

/// A hub that answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discovered {
    /// Where it serves: the address it answered from, and its port.
    pub addr: SocketAddr,
    /// Its certificate's fingerprint, as it claims; `None`: plaintext.
    pub fingerprint: Option<Fingerprint>,
}

/// Probes the hubs listening on UDP `port` and collects the answers that
/// come within `wait`, one per address, in address order. Replies come to
/// `reply_port` (0: any free port).
pub async fn discover(
    port: u16,
    reply_port: u16,
    wait: Duration,
) -> std::io::Result<Vec<Discovered>> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, reply_port)).await?;
    socket.set_broadcast(true)?;
    socket.set_multicast_ttl_v4(1)?;
    let mut nonce = [0; 16];
    aws_lc_rs::rand::fill(&mut nonce).map_err(|_| std::io::Error::other("no randomness"))?;
    let datagram = probe(nonce);
    let targets = [Ipv4Addr::BROADCAST, DISCOVERY_GROUP];
    let mut sent = 0;
    let mut last_error = None;
    for target in targets {
        match socket.send_to(&datagram, (target, port)).await {
            Ok(_) => sent += 1,
            Err(e) => last_error = Some(e),
        }
    }
    if sent == 0 {
        return Err(last_error.unwrap_or_else(|| std::io::Error::other("no probe sent")));
    }
    let mut found = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = [0; REPLY_LEN + 1];
    while let Ok(received) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
        let Ok((len, from)) = received else { continue };
        if let Some(beacon) = parse_reply(&buf[..len], nonce) {
            let addr = SocketAddr::new(from.ip(), beacon.port);
            found.insert(
                addr,
                Discovered {
                    addr,
                    fingerprint: beacon.fingerprint,
                },
            );
        }
    }
    Ok(found.into_values().collect())
}
