#!/usr/bin/env bash
# Ferry's HTTP side by side with nginx, both over TLS 1.3 on 127.0.0.1, in
# one run, alternating each round: 4 KiB GETs with wrk (64 connections),
# a 1 GiB GET and a 1 GiB PUT with curl (nginx's DAV module takes the PUT;
# it does not fsync, Ferry does), and each server's peak memory. The table
# goes to stdout and to bench/results/ as ratios (only ratios within one
# run compare: this machine is shared).
#
#   bench/http.sh            full run (1 GiB, 10 s of wrk, 3 rounds)
#   bench/http.sh --quick    small sizes, one round: checks the harness
set -euo pipefail
export LC_ALL=C

QUICK=0
[[ ${1:-} == --quick ]] && QUICK=1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"

if ((QUICK)); then BIG=$((16 << 20)) SECONDS_WRK=2 ROUNDS=1; else BIG=$((1 << 30)) SECONDS_WRK=10 ROUNDS=3; fi

for tool in wrk curl openssl /usr/sbin/nginx; do
    command -v "$tool" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${tool##*/}" >/dev/null; }
done
(cd "$ROOT" && cargo build --release --locked -q -p ferry)
FERRY="$ROOT/target/release/ferry"
make_workdir
SRV="$WORK/srv"
mkdir -p "$SRV/up"
head -c 4096 /dev/urandom >"$SRV/small.bin"
head -c "$BIG" /dev/urandom >"$SRV/big.bin"

# nginx: TLS 1.3 with a self-signed certificate, sendfile, one worker a core.
next_port
P_NGINX=$PORT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=localhost \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" >/dev/null 2>&1
mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<CONF
daemon off;
user root;
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path $WORK/nginx/body;
    server {
        listen 127.0.0.1:$P_NGINX ssl http2;
        ssl_protocols TLSv1.3;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        root $SRV;
        location /up/ { dav_methods PUT; client_max_body_size 0; }
    }
}
CONF
start nginx /usr/sbin/nginx -c "$WORK/nginx/nginx.conf" -p "$WORK/nginx"
wait_listening "$P_NGINX"

# Ferry: a hub with TLS and fsync, as it ships; the files uploaded once.
next_port
P_FERRY=$PORT
export FERRY_HOME="$WORK/client"
start ferry "$FERRY" serve --listen "127.0.0.1:$P_FERRY" --data "$WORK/ferry" --admission open
wait_listening "$P_FERRY"
TOKEN=$("$FERRY" --hub "127.0.0.1:$P_FERRY" --name bench token create | tail -n1)
AUTH="Authorization: Bearer $TOKEN"
for f in small.bin big.bin; do
    curl -sk -o /dev/null -H "$AUTH" -T "$SRV/$f" "https://127.0.0.1:$P_FERRY/api/v1/files/$f"
done
NGINX_URL="https://127.0.0.1:$P_NGINX"
FERRY_URL="https://127.0.0.1:$P_FERRY/api/v1/files"

# wrk_rate URL [HEADER] — requests per second.
wrk_rate() {
    local args=(-t2 -c64 "-d${SECONDS_WRK}s" --latency "$1")
    [[ -n ${2:-} ]] && args+=(-H "$2")
    wrk "${args[@]}" 2>&1 | tee -a "$WORK/log/wrk.log" | awk '/Requests\/sec/ { print $2 }'
}

declare -A TOTAL
add() { TOTAL[$1]="${TOTAL[$1]:-} $2"; }
for ((round = 0; round < ROUNDS; round++)); do
    echo "round $((round + 1)) of $ROUNDS" >&2
    add small_nginx "$(wrk_rate "$NGINX_URL/small.bin")"
    add small_ferry "$(wrk_rate "$FERRY_URL/small.bin" "$AUTH")"
    clock curl -sk -o /dev/null "$NGINX_URL/big.bin" && add get_nginx "$ELAPSED"
    clock curl -sk -o /dev/null -H "$AUTH" "$FERRY_URL/big.bin" && add get_ferry "$ELAPSED"
    clock curl -sk --http1.1 -o /dev/null "$NGINX_URL/big.bin" && add get1_nginx "$ELAPSED"
    clock curl -sk --http1.1 -o /dev/null -H "$AUTH" "$FERRY_URL/big.bin" && add get1_ferry "$ELAPSED"
    clock curl -sk -o /dev/null -T "$SRV/big.bin" "$NGINX_URL/up/big-$round.bin" && add put_nginx "$ELAPSED"
    # The same PUT followed by an fsync of what nginx wrote: the work
    # Ferry does before it answers, which nginx leaves to the kernel.
    clock bash -c "curl -sk -o /dev/null -T '$SRV/big.bin' '$NGINX_URL/up/synced-$round.bin' && sync '$SRV/up/synced-$round.bin'" &&
        add putsync_nginx "$ELAPSED"
    # A new name each round: the bytes are stored again, hashed and fsynced.
    head -c 16 /dev/urandom >>"$SRV/big.bin"
    clock curl -sk -o /dev/null -H "$AUTH" -T "$SRV/big.bin" "$FERRY_URL/put-$round.bin" && add put_ferry "$ELAPSED"
done

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
peak_kib() { awk '/VmHWM/ { print $2 }' "/proc/$1/status"; }
nginx_peak=0
for pid in $(pgrep -P "$PID_nginx") "$PID_nginx"; do
    kib=$(peak_kib "$pid")
    ((kib > nginx_peak)) && nginx_peak=$kib
done
ferry_peak=$(peak_kib "$PID_ferry")

mb=$((BIG >> 20))
{
    echo "# HTTP: Ferry and nginx over TLS 1.3, $(git -C "$ROOT" describe --always --dirty), $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "$(nproc) cores, loopback, $ROUNDS round(s), medians. Ferry's API needs a token and re-hashes"
    echo "what it sends; its PUT hashes and fsyncs before it answers, nginx's DAV PUT does neither."
    echo
    echo "| workload | nginx | Ferry | Ferry ÷ nginx |"
    echo "|---|---|---|---|"
    for row in "small:4 KiB GET, wrk -c64, HTTP/1.1 (req/s, higher is better)" "get:$mb MiB GET, curl, HTTP/2 (s, lower is better)" \
        "get1:$mb MiB GET, curl, HTTP/1.1 (s, lower is better)" "put:$mb MiB PUT, curl, HTTP/2 (s, lower is better)" \
        "putsync:$mb MiB PUT, then nginx's file fsynced (s, lower is better)"; do
        key=${row%%:*}
        n=$(echo "${TOTAL[${key}_nginx]}" | median)
        f=$(echo "${TOTAL[${key/putsync/put}_ferry]}" | median)
        echo "| ${row#*:} | $n | $f | $(awk -v a="$f" -v b="$n" 'BEGIN { printf "%.2f", a / b }') |"
    done
    echo "| peak RSS (MiB, largest process) | $((nginx_peak / 1024)) | $((ferry_peak / 1024)) | $(awk -v a="$ferry_peak" -v b="$nginx_peak" 'BEGIN { printf "%.2f", a / b }') |"
} | tee "$WORK/table.md"
if ((QUICK)); then
    cp "$WORK/table.md" "$ROOT/bench/results/quick.http.md"
else
    cp "$WORK/table.md" "$ROOT/bench/results/$(date -u +%Y%m%d-%H%M%S)-http.md"
fi
