#!/usr/bin/env bash
# Runs every fuzz target for a bounded time: fuzz/run.sh [SECONDS].
# New inputs the fuzzer finds go to a scratch copy of the corpus, so a run
# never changes the committed one; a crash fails the run and is left in
# fuzz/artifacts/TARGET/ to be added to the corpus once fixed.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-30}"

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
if rustup toolchain list | grep -q '^nightly'; then
    fuzz=(cargo +nightly fuzz)
else
    # No nightly and none can be downloaded: libFuzzer needs nightly flags.
    export RUSTC_BOOTSTRAP=1
    fuzz=(cargo fuzz)
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in $("${fuzz[@]}" list); do
    mkdir -p "$scratch/$target"
    echo "fuzzing $target for ${seconds}s"
    "${fuzz[@]}" run "$target" "$scratch/$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
        | { grep -E '^(stat::|SUMMARY|==)|Test unit written|DONE' || true; } | tail -n 12
done
