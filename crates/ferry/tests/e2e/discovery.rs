//! Finding a hub on the local network: hub and client in two network
//! namespaces on one bridge, as on two machines of a LAN, and a probe's
//! rules (size, rate) checked on loopback.

use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use ferry_protocol::discovery::{PROBE_LEN, REPLY_LEN, parse_reply, probe};
use tokio::io::AsyncWriteExt;

use crate::support::{Home, TestHub, eventually, ferry_bin, run, within};

/// Two hosts (namespaces `hub` and `client`) on a bridge in a third; all
/// three are deleted when dropped.
struct Lan {
    names: [String; 3],
    subnet: u32,
}

static LANS: AtomicU32 = AtomicU32::new(0);

fn ip(args: &[&str]) {
    let status = std::process::Command::new("ip")
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "ip {}", args.join(" "));
}

impl Lan {
    fn new() -> Self {
        let n = (std::process::id() % 200) * 4 + LANS.fetch_add(1, Ordering::Relaxed);
        let subnet = n % 250;
        let names = [format!("fdb{n}"), format!("fdh{n}"), format!("fdc{n}")];
        let lan = Self { names, subnet };
        let [bridge, hub, client] = &lan.names;
        for ns in &lan.names {
            ip(&["netns", "add", ns]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        ip(&["-n", bridge, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", bridge, "link", "set", "br0", "up"]);
        for (host, ns, last) in [("h", hub, 1), ("c", client, 2)] {
            let (inside, outside) = (format!("e{host}{n}"), format!("b{host}{n}"));
            ip(&[
                "-n", bridge, "link", "add", &outside, "type", "veth", "peer", "name", &inside,
                "netns", ns,
            ]);
            ip(&["-n", bridge, "link", "set", &outside, "master", "br0", "up"]);
            let addr = format!("10.78.{subnet}.{last}/24");
            ip(&["-n", ns, "addr", "add", &addr, "dev", &inside]);
            ip(&["-n", ns, "link", "set", &inside, "up"]);
            // Broadcast and multicast need a route, as on any LAN host.
            ip(&["-n", ns, "route", "add", "default", "dev", &inside]);
        }
        lan
    }

    fn hub_ip(&self) -> String {
        format!("10.78.{}.1", self.subnet)
    }

    /// `ferry ARGS` run on host `ns` (1: hub, 2: client).
    fn ferry(&self, host: usize, home: &Path) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("ip");
        command
            .args(["netns", "exec", &self.names[host]])
            .arg(ferry_bin())
            .env("FERRY_HOME", home)
            .env_remove("FERRY_HUB")
            .env("RUST_LOG", "warn")
            .kill_on_drop(true);
        command
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", ns])
                .status();
        }
    }
}

/// Starts a hub on the LAN's hub host; returns it and its fingerprint.
async fn hub_on(lan: &Lan, dir: &Path, config: Option<&str>) -> (tokio::process::Child, String) {
    hub_listening(lan, dir, config, &format!("{}:7878", lan.hub_ip())).await
}

/// [`hub_on`], listening on `listen`.
async fn hub_listening(
    lan: &Lan,
    dir: &Path,
    config: Option<&str>,
    listen: &str,
) -> (tokio::process::Child, String) {
    let out = dir.join("serve.out");
    let mut command = lan.ferry(1, dir);
    command
        .args(["serve", "--listen", listen, "--data"])
        .arg(dir.join("data"))
        .stdout(std::fs::File::create(&out).unwrap());
    if let Some(toml) = config {
        std::fs::write(dir.join("hub.toml"), toml).unwrap();
        command.arg("--config").arg(dir.join("hub.toml"));
    }
    let child = command.spawn().unwrap();
    let started = eventually(30, async || {
        std::fs::read_to_string(&out).is_ok_and(|t| t.contains("admission"))
    })
    .await;
    let banner = std::fs::read_to_string(&out).unwrap();
    assert!(started, "{banner}");
    let fingerprint = banner
        .lines()
        .find_map(|l| l.trim().strip_prefix("fingerprint: "))
        .expect("a TLS hub shows its fingerprint")
        .trim()
        .to_owned();
    (child, fingerprint)
}

#[tokio::test]
async fn a_client_finds_the_hub_on_its_lan_and_joins_it_by_number() {
    within(120, async {
        let lan = Lan::new();
        let dir = tempfile::tempdir().unwrap();
        let (mut hub, fingerprint) = hub_on(&lan, dir.path(), None).await;
        let home = Home::new();
        let found = run(lan
            .ferry(2, home.path())
            .args(["--json", "discover", "--wait", "2s"]))
        .await;
        assert_eq!(found.code, 0, "{}", found.stderr);
        let hubs: serde_json::Value = serde_json::from_str(&found.stdout).unwrap();
        let addr = format!("{}:7878", lan.hub_ip());
        assert_eq!(hubs.as_array().unwrap().len(), 1, "{hubs}");
        assert_eq!(hubs[0]["addr"], addr.as_str());
        assert_eq!(hubs[0]["fingerprint"], fingerprint.as_str());
        assert!(
            !home.path().join("known_hubs").exists(),
            "discovering pins nothing"
        );

        // The shell's /join alone: the list, a number, a connection that
        // pins the fingerprint shown.
        let mut shell = lan.ferry(2, home.path());
        shell
            .arg("shell")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = shell.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"/join\n1\nquit\n")
            .await
            .unwrap();
        let output = within(60, child.wait_with_output()).await.unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains(&format!("1. {addr}  {fingerprint}")),
            "{stdout}"
        );
        assert!(stdout.contains("Join which (number)?"), "{stdout}");
        assert!(
            stdout.contains(&format!("Connection to the hub at {addr} is successful!")),
            "{stdout}"
        );
        let pins = std::fs::read_to_string(home.path().join("known_hubs")).unwrap();
        assert!(
            pins.contains(&addr) && pins.contains(&fingerprint[3..]),
            "{pins}"
        );
        hub.kill().await.unwrap();

        // A hub told to stay quiet is not found.
        let quiet_dir = tempfile::tempdir().unwrap();
        let (mut quiet, _) = hub_on(&lan, quiet_dir.path(), Some("discovery = false\n")).await;
        let none = run(lan.ferry(2, home.path()).args(["discover", "--wait", "1s"])).await;
        assert_eq!(none.code, 0, "{}", none.stderr);
        assert!(none.stdout.contains("No hub answered"), "{}", none.stdout);
        quiet.kill().await.unwrap();

        // Nor is one that listens on its own loopback only: no one on the
        // LAN could reach the address it would tell them.
        let local_dir = tempfile::tempdir().unwrap();
        let (mut local, _) = hub_listening(&lan, local_dir.path(), None, "127.0.0.1:7878").await;
        let none = run(lan.ferry(2, home.path()).args(["discover", "--wait", "1s"])).await;
        assert_eq!(none.code, 0, "{}", none.stderr);
        assert!(none.stdout.contains("No hub answered"), "{}", none.stdout);
        local.kill().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn probes_get_small_replies_at_a_bounded_rate_and_nothing_else_does() {
    within(60, async {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let hub = TestHub::start_with(|c| c.discovery = Some(port)).await;
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let target = ("127.0.0.1", port);
        let replies = async |socket: &tokio::net::UdpSocket, wait: u64| {
            let mut got = Vec::new();
            let mut buf = [0; 1500];
            while let Ok(Ok((len, _))) =
                tokio::time::timeout(Duration::from_millis(wait), socket.recv_from(&mut buf)).await
            {
                got.push(buf[..len].to_vec());
            }
            got
        };
        // Not a probe: too short, too long, or another magic.
        let nonce = [5; 16];
        let good = probe(nonce);
        socket
            .send_to(&good[..PROBE_LEN - 1], target)
            .await
            .unwrap();
        socket
            .send_to(&[good.as_slice(), &[0]].concat(), target)
            .await
            .unwrap();
        socket.send_to(&[0u8; PROBE_LEN], target).await.unwrap();
        assert!(
            replies(&socket, 300).await.is_empty(),
            "no answer to what is not a probe"
        );
        // A probe: one reply, smaller than the probe, with the hub's port.
        socket.send_to(&good, target).await.unwrap();
        let got = replies(&socket, 1000).await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].len(), REPLY_LEN);
        assert!(got[0].len() < good.len(), "never amplifying");
        let beacon = parse_reply(&got[0], nonce).unwrap();
        assert_eq!(beacon.port, hub.addr.port());
        assert_eq!(beacon.fingerprint, hub.hub.fingerprint());
        // A flood from one address gets a few replies, not one each.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        for _ in 0..50 {
            socket.send_to(&good, target).await.unwrap();
        }
        let flood = replies(&socket, 500).await;
        assert!(
            flood.len() <= ferry_hub::discovery::PER_SOURCE as usize * 2,
            "{} replies to 50 probes",
            flood.len()
        );
        hub.stop().await;
    })
    .await;
}
