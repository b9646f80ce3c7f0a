# Helpers for bench/run.sh: tools, processes, timing, the raw results file.
# shellcheck shell=bash

PIDS=()

die() {
    echo "bench: $*" >&2
    exit 1
}

install_tools() {
    local missing=() pair
    for pair in nc:netcat-openbsd rsync:rsync /usr/sbin/sshd:openssh-server \
        /usr/sbin/nginx:nginx-light curl:curl /usr/sbin/vsftpd:vsftpd lftp:lftp \
        /usr/bin/time:time ss:iproute2 tar:tar cmp:diffutils; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    ((${#missing[@]} == 0)) && return
    echo "installing ${missing[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
    # Debian starts some services on install; this benchmark runs its own.
    local service
    for service in nginx vsftpd ssh rsync; do
        service "$service" stop >/dev/null 2>&1 || true
    done
}

build_ferry() {
    (cd "$ROOT" && cargo build --release --locked -q -p ferry -p ferry-bench)
    FERRY="$ROOT/target/release/ferry"
    BENCH="$ROOT/target/release/ferry-bench"
}

make_workdir() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench.XXXXXX")
    chmod 755 "$WORK"
    mkdir -p "$WORK/log" "$WORK/dest"
    DEST="$WORK/dest"
    RAW="$WORK/raw.tsv"
    : >"$RAW"
    trap cleanup EXIT
    ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    # Below the kernel's ephemeral range (32768+ on Linux), so no outgoing
    # connection of this run can hold a port a server is about to take.
    PORT=$((10000 + RANDOM % 12000))
}

# A port no socket on this machine uses, listening or connected.
next_port() {
    PORT=$((PORT + 1))
    while ss -tanH | awk '{ print $4 }' | grep -q ":$PORT\$"; do PORT=$((PORT + 1)); done
}

cleanup() {
    local status=$? pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if ((status != 0)) && [[ -d $WORK/log ]]; then
        local kept
        kept=$(mktemp -d "${TMPDIR:-/tmp}/ferry-bench-logs.XXXXXX")
        cp -r "$WORK/log/." "$kept/"
        echo "bench: failed; server and command logs kept in $kept" >&2
    fi
    rm -rf "$WORK"
}

# start NAME COMMAND... — runs a server in the background, remembered by PID.
start() {
    local name=$1
    shift
    "$@" >"$WORK/log/$name.log" 2>&1 &
    PIDS+=("$!")
    eval "PID_${name//-/_}=$!"
}

stop() {
    local var="PID_${1//-/_}"
    kill "${!var}" 2>/dev/null || true
    wait "${!var}" 2>/dev/null || true
}

wait_listening() {
    local port=$1 i
    for i in $(seq 200); do
        ss -ltn | grep -q "127.0.0.1:$port " && return 0
        sleep 0.05
    done
    die "nothing listens on port $port"
}

note() { printf 'note\t%s\n' "$*" >>"$RAW"; }

metric() { printf 'metric\t%s\t%s\t%s\t%s\n' "$@" >>"$RAW"; }

# clock COMMAND... — runs it, sets ELAPSED (seconds) on success.
clock() {
    local t0=$EPOCHREALTIME
    if ! "$@" >>"$WORK/log/commands.log" 2>&1; then
        tail -5 "$WORK/log/commands.log" >&2
        die "failed: $*"
    fi
    local t1=$EPOCHREALTIME
    ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')
}

# record WORKLOAD TOOL AMOUNT UNIT — the last ELAPSED as one run.
record() {
    printf 'time\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$ELAPSED" "$3" "$4" >>"$RAW"
    printf '  %-22s %-22s %8ss\n' "$1" "$2" "$ELAPSED" >&2
}

# rounds WORKLOAD AMOUNT UNIT FUNCTION_PREFIX TOOL... — each round runs
# FUNCTION_PREFIX_TOOL for every tool, starting one later each round. The
# function prepares, calls clock around the transfer alone, and verifies.
rounds() {
    local workload=$1 amount=$2 unit=$3 prefix=$4
    shift 4
    local tools=("$@") n=$# round i tool
    echo "$workload" >&2
    for ((round = 0; round < ROUNDS; round++)); do
        for ((i = 0; i < n; i++)); do
            tool=${tools[$(((i + round) % n))]}
            "${prefix}_${tool//[^a-zA-Z0-9]/_}"
            record "$workload" "$tool" "$amount" "$unit"
            sync
        done
    done
}

# fresh DIR — an empty folder.
fresh() {
    rm -rf "$1"
    mkdir -p "$1"
}

same_file() { cmp -s "$1" "$2" || die "$2 differs from $1"; }

same_tree() { diff -r -q "$1" "$2" >/dev/null || die "$2 differs from $1"; }

# Peak RSS of a running process, in MiB.
peak_rss_mib() {
    awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"
}

publish_report() {
    local stamp out
    stamp=$(date -u +%Y%m%d-%H%M%S)
    mkdir -p "$HERE/results"
    if ((QUICK)); then
        out="$HERE/results/quick.md"
    else
        out="$HERE/results/$stamp.md"
    fi
    "$BENCH" report "$RAW" | tee "$out"
    cp "$RAW" "${out%.md}.tsv"
    echo "table written to ${out#"$ROOT"/}" >&2
}
