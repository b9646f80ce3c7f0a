//! Search latency over a large catalogue: an in-process hub, one peer
//! offering `OFFERS` files, one client timing `SEARCHES` searches.
//!
//! `cargo run --release --example search_latency [OFFERS] [SEARCHES]`
//!
//! The hub runs in plaintext so the numbers are the hub's search cost plus
//! one loopback round trip; the peer speaks the raw protocol to load the
//! catalogue quickly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_client::identity::LoginKey;
use ferry_client::{ConnectOptions, HubClient, KnownHubs};
use ferry_hub::{Hub, HubConfig};
use ferry_io::{FrameReader, FrameWriter};
use ferry_protocol::{
    Claim, ContentHash, Fingerprint, MAX_OFFERS_PER_FRAME, Offered, PROTOCOL_VERSION, Request,
    Response,
};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("a number"));
    let offers = args.next().unwrap_or(100_000);
    let searches = args.next().unwrap_or(2_000);
    let data = tempfile::tempdir().expect("temp dir");
    let mut config = HubConfig::new(data.path());
    config.tls = false;
    config.admission = Some(ferry_hub::access::Admission::Open);
    config.max_offers_per_peer = offers;
    // The raw peer sends no heartbeats while the client measures.
    config.peer_timeout = Duration::from_secs(3600);
    let hub = Hub::open(config).await.expect("hub opens");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(ferry_hub::serve(
        Arc::clone(&hub),
        listener,
        shutdown.clone(),
    ));

    let _peer = load_offers(addr, offers).await;
    let home = tempfile::tempdir().expect("temp dir");
    let options = ConnectOptions {
        addr: addr.to_string(),
        tls: false,
        known_hubs: KnownHubs::new(home.path().join("known_hubs")),
        ca_file: None,
        connect_timeout: Duration::from_secs(5),
        stall_timeout: Duration::from_secs(30),
        expect: None,
    };
    let mut client = HubClient::connect(&options).await.expect("connect");
    client
        .login(
            "bench",
            &LoginKey::from_seed(&[2; 32]),
            Claim::Register,
            None,
        )
        .await
        .expect("login");
    let terms = ["file-000042", "nothing-matches", "7777", "FILE-09", "photo"];
    let mut times = Vec::with_capacity(searches);
    for i in 0..searches {
        let started = Instant::now();
        client
            .search(terms[i % terms.len()], 100)
            .await
            .expect("search");
        times.push(started.elapsed());
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 - 1.0) * p) as usize];
    println!(
        "{offers} offers, {searches} searches: p50 {:?}, p99 {:?}, max {:?}",
        pct(0.5),
        pct(0.99),
        times[times.len() - 1]
    );
    shutdown.cancel();
    let _ = server.await;
}

/// The two halves of a raw connection, kept to keep it open.
type RawPeer = (
    FrameReader<tokio::net::tcp::OwnedReadHalf, Response>,
    FrameWriter<tokio::net::tcp::OwnedWriteHalf, Request>,
);

/// A raw peer connection that offers `count` files and stays open.
async fn load_offers(addr: std::net::SocketAddr, count: usize) -> RawPeer {
    let (read, write) = TcpStream::connect(addr)
        .await
        .expect("connect")
        .into_split();
    let mut reader = FrameReader::<_, Response>::new(read);
    let mut writer = FrameWriter::<_, Request>::new(write);
    let hello = Request::Hello {
        version: PROTOCOL_VERSION,
        agent: "bench".into(),
    };
    writer.send(&hello).await.expect("send");
    let Some(Response::Welcome { challenge, .. }) = reader.recv().await.expect("reply") else {
        panic!("no Welcome");
    };
    let key = LoginKey::from_seed(&[1; 32]);
    let requests = [
        Request::Login {
            handle: "catalogue".into(),
            key: key.public(),
            proof: key.prove(&challenge, None, "catalogue"),
            claim: Claim::Register,
            legacy: None,
        },
        Request::Share {
            peer_port: 1,
            fingerprint: Fingerprint::of_certificate(b"bench"),
            copies: None,
        },
    ];
    for request in &requests {
        writer.send(request).await.expect("send");
        reader.recv().await.expect("reply").expect("open");
    }
    let names: Vec<Offered> = (0..count)
        .map(|i| Offered {
            name: format!("dir-{}/file-{i:06}.dat", i % 100),
            size: i as u64,
            hash: ContentHash::of(&i.to_le_bytes()),
        })
        .collect();
    for (i, chunk) in names.chunks(MAX_OFFERS_PER_FRAME).enumerate() {
        writer
            .send(&Request::Offer {
                files: chunk.to_vec(),
                replace_all: i == 0,
            })
            .await
            .expect("offer");
        reader.recv().await.expect("reply").expect("open");
    }
    (reader, writer)
}
