//! A hub with a certificate an authority signed (an operator's own, as
//! from Let's Encrypt): Ferry's clients trust it through the authority,
//! so a renewal needs no `ferry forget`; without the authority they pin
//! it as they pin a self-signed one. What an authority vouched for is
//! pinned too, quietly, so that a stranger's certificate the authority
//! does not vouch for is a changed certificate, not a first use.

use std::path::{Path, PathBuf};

use crate::everyday::{bare, serving, terminate};
use crate::support::{Home, Ran, eventually, run};

/// Runs `openssl` with `args` in `dir`.
async fn openssl(dir: &Path, args: &[&str]) {
    let made = run(tokio::process::Command::new("openssl")
        .current_dir(dir)
        .args(args))
    .await;
    assert_eq!(made.code, 0, "openssl {args:?}: {}", made.stderr);
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

/// A certificate authority `name`.crt (and its key) in `dir`.
async fn authority(dir: &Path, name: &str) -> PathBuf {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    let mut args = vec!["req", "-x509", "-nodes", "-days", "2"];
    args.extend(EC);
    args.extend([
        "-subj",
        "/CN=Ferry test authority",
        "-keyout",
        &key,
        "-out",
        &crt,
    ]);
    openssl(dir, &args).await;
    dir.join(crt)
}

/// A certificate for 127.0.0.1 and localhost that `ca` signed, as
/// `name`.crt and `name`.key in `dir`.
async fn signed(dir: &Path, name: &str, ca: &str) -> (PathBuf, PathBuf) {
    let (crt, key, csr) = (
        format!("{name}.crt"),
        format!("{name}.key"),
        format!("{name}.csr"),
    );
    let mut args = vec!["req", "-new", "-nodes", "-subj", "/CN=hub.example"];
    args.extend(EC);
    args.extend(["-keyout", &key, "-out", &csr]);
    openssl(dir, &args).await;
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let (ca_crt, ca_key) = (format!("{ca}.crt"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            &crt,
        ],
    )
    .await;
    (dir.join(crt), dir.join(key))
}

/// Where a client's authorities come from.
#[derive(Clone, Copy)]
enum Trust<'a> {
    /// The system's (which do not know the test's authority).
    System,
    /// `--cacert FILE`.
    Named(&'a Path),
    /// The system's, made to be FILE (`SSL_CERT_FILE`), as if the test's
    /// authority were a public one.
    SystemIs(&'a Path),
}

/// A self-signed certificate for 127.0.0.1 and localhost, no authority's.
async fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    let mut args = vec![
        "req",
        "-x509",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=hub.example",
    ];
    args.extend(EC);
    args.extend(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]);
    args.extend(["-keyout", &key, "-out", &crt]);
    openssl(dir, &args).await;
    (dir.join(crt), dir.join(key))
}

/// SIGHUP to the hub: it reads its certificate again.
async fn reload(hub: &tokio::process::Child) {
    let pid = hub.id().unwrap().to_string();
    let sent = run(tokio::process::Command::new("kill").args(["-HUP", &pid])).await;
    assert_eq!(sent.code, 0);
}

/// `ferry --hub HUB --name NAME ls` from `home`, trusting `trust`.
async fn ls(home: &Home, hub: &str, name: &str, trust: Trust<'_>) -> Ran {
    let mut command = bare(home);
    command.args(["--hub", hub, "--name", name]);
    match trust {
        Trust::System => {}
        Trust::Named(ca) => {
            command.arg("--cacert").arg(ca);
        }
        Trust::SystemIs(ca) => {
            command.env("SSL_CERT_FILE", ca);
        }
    }
    run(command.arg("ls")).await
}

/// The fingerprint pinned for `hub` in `home`.
fn pin(home: &Home, hub: &str) -> String {
    let pins = std::fs::read_to_string(home.path().join("known_hubs")).unwrap();
    let prefix = format!("{hub} ");
    let line = pins.lines().find(|l| l.starts_with(&prefix)).unwrap();
    line[prefix.len()..].trim().to_owned()
}

/// The fingerprint a discovery probe to `port` is told.
async fn discovered(port: u16) -> String {
    use ferry_protocol::discovery::{parse_reply, probe};
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let nonce = [7; 16];
    socket
        .send_to(&probe(nonce), ("127.0.0.1", port))
        .await
        .unwrap();
    let mut buf = [0; 1500];
    let (len, _) = crate::support::within(10, socket.recv_from(&mut buf))
        .await
        .unwrap();
    let beacon = parse_reply(&buf[..len], nonce).unwrap();
    beacon.fingerprint.unwrap().to_string()
}

fn pinned(home: &Home, hub: &str) -> bool {
    std::fs::read_to_string(home.path().join("known_hubs"))
        .is_ok_and(|pins| pins.lines().any(|l| l.starts_with(&format!("{hub} "))))
}

#[tokio::test]
async fn an_authoritys_certificate_is_trusted_through_a_renewal_without_pins() {
    let dir = tempfile::tempdir().unwrap();
    let ca = authority(dir.path(), "ca").await;
    let stranger = authority(dir.path(), "stranger").await;
    let (cert, key) = signed(dir.path(), "first", "ca").await;
    let port = crate::support::closed_port();
    let probes = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("hub.toml");
    let toml = format!(
        "listen = \"127.0.0.1:{port}\"\ndata = \"{}\"\nadmission = \"open\"\ndiscovery_port = {probes}\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        dir.path().join("data").display(),
        cert.display(),
        key.display()
    );
    std::fs::write(&config, toml).unwrap();
    let log = dir.path().join("serve.log");
    let (hub, addr) = serving(
        bare(&Home::new()).arg("serve").arg("--config").arg(&config),
        &log,
    )
    .await;

    // Without the authority, the certificate is pinned on first use, by
    // address and by name (the system's authorities do not know this one).
    let pinning = Home::new();
    let first = ls(&pinning, &addr, "alice", Trust::System).await;
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.stderr.contains("Pinned"), "{}", first.stderr);
    let by_name = format!("localhost:{port}");
    let named = ls(&pinning, &by_name, "alice", Trust::System).await;
    assert_eq!(named.code, 0, "{}", named.stderr);
    assert!(pinned(&pinning, &by_name));

    // With it, named or as the system's: no first use to announce, but a
    // pin kept all the same.
    let vouched = Home::new();
    for hub in [&addr, &by_name] {
        let got = ls(&vouched, hub, "bob", Trust::Named(&ca)).await;
        assert_eq!(got.code, 0, "{hub}: {}", got.stderr);
        assert!(!got.stderr.contains("Pinned"), "{}", got.stderr);
        assert!(pinned(&vouched, hub), "{hub}");
    }
    let public = Home::new();
    let got = ls(&public, &by_name, "dave", Trust::SystemIs(&ca)).await;
    assert_eq!(got.code, 0, "{}", got.stderr);
    assert!(!got.stderr.contains("Pinned"), "{}", got.stderr);
    // An authority that did not sign it is refused, with what to do.
    let refused = ls(&Home::new(), &addr, "carol", Trust::Named(&stranger)).await;
    assert_eq!(refused.code, 8, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("not vouched for") && refused.stderr.contains("--cacert"),
        "{}",
        refused.stderr
    );

    // Renewed (a new key, the same authority), then SIGHUP.
    let (renewed, renewed_key) = signed(dir.path(), "second", "ca").await;
    std::fs::copy(&renewed, &cert).unwrap();
    std::fs::copy(&renewed_key, &key).unwrap();
    reload(&hub).await;
    let changed = eventually(10, async || {
        ls(&pinning, &addr, "alice", Trust::System).await.code == 8
    })
    .await;
    assert!(
        changed,
        "the pinned client sees the renewed certificate as a change"
    );
    let still = ls(&vouched, &addr, "bob", Trust::Named(&ca)).await;
    assert_eq!(
        still.code, 0,
        "the authority still vouches: {}",
        still.stderr
    );
    assert_eq!(
        discovered(probes).await,
        pin(&vouched, &addr),
        "discovery tells the renewed certificate, as the vouched client re-pinned it"
    );
    let still = ls(&public, &by_name, "dave", Trust::SystemIs(&ca)).await;
    assert_eq!(still.code, 0, "so does the system's: {}", still.stderr);
    let over_the_pin = ls(&pinning, &addr, "alice", Trust::Named(&ca)).await;
    assert_eq!(
        over_the_pin.code, 0,
        "the authority's word outweighs an old pin: {}",
        over_the_pin.stderr
    );

    // A stranger's self-signed certificate in its place: no authority
    // vouches, and the pin kept from the renewal refuses it.
    let (forged, forged_key) = self_signed(dir.path(), "forged").await;
    std::fs::copy(&forged, &cert).unwrap();
    std::fs::copy(&forged_key, &key).unwrap();
    reload(&hub).await;
    let caught = eventually(10, async || {
        ls(&public, &by_name, "dave", Trust::SystemIs(&ca))
            .await
            .code
            == 8
    })
    .await;
    assert!(
        caught,
        "a certificate no authority vouches for is a change, not a first use"
    );
    let refused = ls(&vouched, &addr, "bob", Trust::Named(&ca)).await;
    assert_eq!(refused.code, 8, "{}", refused.stderr);
    terminate(hub).await;
}
