//! Replays the committed fuzz corpus (`fuzz/corpus/TARGET/*`) through the
//! same code the cargo-fuzz targets run, so every input a fuzzer ever kept
//! (and every crash it found, once added) is checked by `cargo test`.

#![allow(missing_docs, unreachable_pub)]

#[path = "../../../fuzz/targets.rs"]
mod targets;

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("the corpus is committed") {
        let path = entry.unwrap().path();
        run(&std::fs::read(&path).unwrap());
        replayed += 1;
    }
    assert!(replayed > 0, "no corpus for {target} in {}", dir.display());
}

#[test]
fn the_frame_decoder_corpus_replays() {
    replay("frame_decoder", targets::frame_decoder);
}

#[test]
fn the_messages_corpus_replays() {
    replay("messages", targets::messages);
}

#[test]
fn the_names_corpus_replays() {
    replay("names", targets::names);
}

#[test]
fn the_peer_protocol_corpus_replays() {
    replay("peer_protocol", targets::peer_protocol);
}
