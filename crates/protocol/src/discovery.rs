//! Finding a hub on the local network: a client sends a probe by UDP
//! broadcast and multicast to [`DISCOVERY_PORT`]; each hub that hears it
//! answers, to the probe's sender only, with its port and certificate
//! fingerprint, and nothing else (no names, no files). A reply is smaller
//! than the probe it answers, so a hub cannot be used to amplify traffic
//! towards a forged source; hubs also limit how often they answer.
//!
//! Both are fixed-size datagrams:
//!
//! | probe (64 bytes)        | reply (59 bytes)                         |
//! | ----------------------- | ---------------------------------------- |
//! | `FERRY?1\0`             | `FERRY!1\0`                              |
//! | nonce (16 random bytes) | the probe's nonce                        |
//! | zeros to 64 bytes       | hub port (u16, big-endian)               |
//! |                         | 1 if the hub speaks TLS, else 0          |
//! |                         | certificate fingerprint (zeros if none)  |

use crate::hash::Fingerprint;

/// The UDP port hubs listen on for probes (and the default TCP port).
pub const DISCOVERY_PORT: u16 = 7878;

/// The IPv4 multicast group probes are also sent to (administratively
/// scoped: it never leaves the site).
pub const DISCOVERY_GROUP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(239, 255, 78, 78);

/// Size of a probe.
pub const PROBE_LEN: usize = 64;

/// Size of a reply: less than a probe, so replies never amplify.
pub const REPLY_LEN: usize = 8 + 16 + 2 + 1 + 32;

const PROBE_MAGIC: &[u8; 8] = b"FERRY?1\0";
const REPLY_MAGIC: &[u8; 8] = b"FERRY!1\0";

/// A probe with `nonce` (a fresh random value, so replies can be matched).
pub fn probe(nonce: [u8; 16]) -> [u8; PROBE_LEN] {
    let mut bytes = [0; PROBE_LEN];
    bytes[..8].copy_from_slice(PROBE_MAGIC);
    bytes[8..24].copy_from_slice(&nonce);
    bytes
}

/// The nonce of `datagram` if it is a well-formed probe (exactly its size,
/// its magic, zero padding); anything else gets no answer.
pub fn parse_probe(datagram: &[u8]) -> Option<[u8; 16]> {
    if datagram.len() != PROBE_LEN
        || &datagram[..8] != PROBE_MAGIC
        || datagram[24..].iter().any(|&b| b != 0)
    {
        return None;
    }
    datagram[8..24].try_into().ok()
}

/// What a hub says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubBeacon {
    /// The TCP port it serves on.
    pub port: u16,
    /// Its certificate's fingerprint; `None` for a plaintext hub.
    pub fingerprint: Option<Fingerprint>,
}

/// The reply to the probe with `nonce`.
pub fn reply(nonce: [u8; 16], beacon: HubBeacon) -> [u8; REPLY_LEN] {
    let mut bytes = [0; REPLY_LEN];
    bytes[..8].copy_from_slice(REPLY_MAGIC);
    bytes[8..24].copy_from_slice(&nonce);
    bytes[24..26].copy_from_slice(&beacon.port.to_be_bytes());
    if let Some(fingerprint) = beacon.fingerprint {
        bytes[26] = 1;
        bytes[27..].copy_from_slice(&fingerprint.0);
    }
    bytes
}

/// The beacon in `datagram` if it is a well-formed reply to `nonce`.
pub fn parse_reply(datagram: &[u8], nonce: [u8; 16]) -> Option<HubBeacon> {
    if datagram.len() != REPLY_LEN || &datagram[..8] != REPLY_MAGIC || datagram[8..24] != nonce {
        return None;
    }
    let port = u16::from_be_bytes([datagram[24], datagram[25]]);
    let fingerprint = match datagram[26] {
        0 => None,
        1 => Some(Fingerprint(datagram[27..].try_into().ok()?)),
        _ => return None,
    };
    (port != 0).then_some(HubBeacon { port, fingerprint })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_and_replies_round_trip_and_replies_never_amplify() {
        const { assert!(REPLY_LEN < PROBE_LEN) };
        let nonce = [7; 16];
        let sent = probe(nonce);
        assert_eq!(parse_probe(&sent), Some(nonce));
        assert_eq!(parse_probe(&sent[..63]), None, "short");
        let mut padded = sent.to_vec();
        padded.push(0);
        assert_eq!(parse_probe(&padded), None, "long");
        let mut dirty = sent;
        dirty[40] = 1;
        assert_eq!(parse_probe(&dirty), None, "padding must be zeros");
        let beacon = HubBeacon {
            port: 7878,
            fingerprint: Some(Fingerprint([9; 32])),
        };
        let answer = reply(nonce, beacon);
        assert_eq!(parse_reply(&answer, nonce), Some(beacon));
        assert_eq!(parse_reply(&answer, [8; 16]), None, "another probe's");
        let plain = HubBeacon {
            port: 1,
            fingerprint: None,
        };
        assert_eq!(parse_reply(&reply(nonce, plain), nonce), Some(plain));
    }
}
