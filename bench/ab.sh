#!/usr/bin/env bash
# A/B of two builds of Ferry on the many-clients load (ls, search, get by
# 100 active of 300 held TLS connections), alternating, same machine:
#   bench/ab.sh OLD_DIR NEW_DIR [ROUNDS]
# where each DIR holds a `ferry` and a `ferry-bench` of one build (copy
# them from target/release). NEW runs as an open hub whose registration
# limit is raised for the 300 benchmark users; OLD with no config (it
# predates both). Prints one line per round: build, requests per second.
set -euo pipefail
old=$1 new=$2 rounds=${3:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$new/ferry-bench" mkfiles "$work/load" --count 10 --size 16384 --seed 4 >/dev/null
printf 'admission = "open"\nregistrations_per_source = 100000\n' >"$work/hub.toml"
port=7990
for round in $(seq "$rounds"); do
    for build in old new; do
        dir=${!build}
        port=$((port + 1))
        extra=()
        [[ $build == new ]] && extra=(--config "$work/hub.toml")
        "$dir/ferry" serve --listen "127.0.0.1:$port" --data "$work/d-$build-$round" "${extra[@]}" \
            >"$work/serve.log" 2>&1 &
        pid=$!
        sleep 1
        FERRY_HOME="$work/h-$build-$round" "$dir/ferry" --hub "127.0.0.1:$port" --name bench \
            put "$work/load" >/dev/null 2>&1
        rate=$(HOME="$work/h-$build-$round" "$dir/ferry-bench" load --hub "127.0.0.1:$port" \
            --clients 300 --active 100 --seconds 5 --rounds 1 --file load/file-000000 \
            --term load 2>/dev/null | awk -F'\t' '/requests per second/ { print $4 }')
        echo "round $round $build ${rate:-failed} req/s"
        kill "$pid"
        wait "$pid" 2>/dev/null || true
    done
done
