# Workloads of bench/run.sh that measure more than one transfer: memory over
# a long transfer, many clients, search with many offers, and the peer paths.
# shellcheck shell=bash

# ferry_rss HOME ARGS... — a Ferry client whose peak RSS (KiB) lands in
# $WORK/client-rss.
ferry_rss() {
    local home=$1
    shift
    FERRY_HOME="$WORK/$home" /usr/bin/time -f %M -o "$WORK/client-rss" "$FERRY" "$@"
}

client_rss_mib() { awk '{ printf "%.1f", $1 / 1024 }' "$WORK/client-rss"; }

# Peak RSS of a fresh hub and of the client through a big and a huge put and
# get; the huge one also gives Ferry-only time rows.
bench_memory() {
    echo "memory" >&2
    start_ferry_hub rss "$WORK/hub-rss"
    local hub=(--hub "127.0.0.1:$HUB_PORT" --name bench) section="peak memory (RSS)"
    local big huge
    big=$(size_label "$BIG")
    huge=$(size_label "$HUGE")
    clock ferry_rss client put "$DATA/big.bin" "${hub[@]}"
    metric "$section" "client, $big put" "$(client_rss_mib)" MiB
    fresh "$DEST"
    clock ferry_rss client get big.bin -o "$DEST" "${hub[@]}"
    metric "$section" "client, $big get" "$(client_rss_mib)" MiB
    metric "$section" "hub, after $big put + get" "$(peak_rss_mib "$PID_rss")" MiB

    "$BENCH" mkfiles "$WORK/huge" --size "$HUGE" --prefix huge.bin- --seed 3
    clock ferry_rss client put "$WORK/huge/huge.bin-000000" "${hub[@]}"
    record "$huge put (memory run)" ferry "$HUGE" bytes
    metric "$section" "client, $huge put" "$(client_rss_mib)" MiB
    rm -rf "$WORK/huge"
    fresh "$DEST"
    clock ferry_rss client get huge.bin-000000 -o "$DEST" "${hub[@]}"
    record "$huge get (memory run)" ferry "$HUGE" bytes
    metric "$section" "client, $huge get" "$(client_rss_mib)" MiB
    metric "$section" "hub, after $huge put + get" "$(peak_rss_mib "$PID_rss")" MiB
    fresh "$DEST"
    stop rss
    rm -rf "$WORK/hub-rss"
}

bench_many_clients() {
    echo "many clients" >&2
    start_ferry_hub load "$WORK/hub-load"
    "$BENCH" mkfiles "$WORK/load/load" --count 10 --size "$SMALL_SIZE" --seed 4
    ferry_as client --hub "127.0.0.1:$HUB_PORT" --name bench put "$WORK/load/load" >/dev/null
    "$BENCH" load --hub "127.0.0.1:$HUB_PORT" --clients "$CLIENTS" --active "$ACTIVE" \
        --seconds "$LOAD_SECONDS" --rounds "$LOAD_ROUNDS" --file load/file-000000 --term load \
        >>"$RAW" 2>>"$WORK/log/load.log"
    metric "many clients" "hub peak RSS" "$(peak_rss_mib "$PID_load")" MiB
    stop load
}

# Brand-new users writing at once: register, put, ls, search, get (own and
# others' files, every byte checked), rm. Errors must be 0.
bench_mixed() {
    echo "mixed writes" >&2
    start_ferry_hub mixed "$WORK/hub-mixed"
    "$BENCH" mixed --hub "127.0.0.1:$HUB_PORT" --clients "$MIXED_CLIENTS" --seconds "$LOAD_SECONDS" \
        >>"$RAW" 2>>"$WORK/log/mixed.log"
    metric "mixed writes" "hub peak RSS" "$(peak_rss_mib "$PID_mixed")" MiB
    stop mixed
}

bench_search() {
    echo "search" >&2
    start_ferry_hub search "$WORK/hub-search"
    "$BENCH" mkfiles "$WORK/offers" --count "$OFFERS" --size 0 --subdirs 100
    start sharer ferry_daemon sharer share "$WORK/offers" --hub "127.0.0.1:$HUB_PORT" --name catalogue
    "$BENCH" search --hub "127.0.0.1:$HUB_PORT" --offers "$OFFERS" --count "$SEARCHES" \
        --ready-when "$(printf 'file-%06d' $((OFFERS - 1)))" \
        >>"$RAW" 2>>"$WORK/log/search.log"
    metric search "hub peak RSS" "$(peak_rss_mib "$PID_search")" MiB
    stop sharer
    stop search
    rm -rf "$WORK/offers"
}

# Peer to peer: alice's port answers (direct); carol advertises a closed
# port, so the same request is relayed by the hub. nc is the raw baseline.
bench_peers() {
    echo "peers" >&2
    start_ferry_hub peers "$WORK/hub-peers"
    P_PEERS=$HUB_PORT
    mkdir -p "$WORK/shared"
    ln "$DATA/big.bin" "$WORK/shared/big.bin"
    next_port
    start alice ferry_daemon alice share "$WORK/shared" --peer-port "$PORT" \
        --hub "127.0.0.1:$P_PEERS" --name alice
    next_port
    start carol ferry_daemon carol share "$WORK/shared" --advertise-port "$PORT" \
        --hub "127.0.0.1:$P_PEERS" --name carol
    local i
    for i in $(seq 200); do
        [[ $(ferry_as bob --hub "127.0.0.1:$P_PEERS" --name bob search big.bin |
            grep -c -E 'alice|carol') == 2 ]] && break
        sleep 0.1
    done
    rounds "$(size_label "$BIG") peer to peer" "$BIG" bytes peer "ferry direct" \
        "ferry relayed" nc
    stop alice
    stop carol
    stop peers
}

peer_ferry_direct() {
    fresh "$DEST"
    clock ferry_as bob --hub "127.0.0.1:$P_PEERS" --name bob get big.bin --from alice -o "$DEST"
    received_how | grep -q '(direct)' || die "expected a direct transfer"
    same_file "$DATA/big.bin" "$DEST/big.bin"
}
peer_ferry_relayed() {
    fresh "$DEST"
    clock ferry_as bob --hub "127.0.0.1:$P_PEERS" --name bob get big.bin --from carol -o "$DEST"
    received_how | grep -q '(relayed' || die "expected a relayed transfer"
    same_file "$DATA/big.bin" "$DEST/big.bin"
}
peer_nc() { big_get_nc; }

# How the last peer download went, from the line the client printed last.
received_how() { grep '^File received from' "$WORK/log/commands.log" | tail -1; }
