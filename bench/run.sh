#!/usr/bin/env bash
# Ferry side by side with the tools users would pick instead: scp, rsync,
# an FTP server, nginx + curl and netcat. Every server listens on 127.0.0.1
# only; each workload runs every tool once per round, in a rotating order,
# for several rounds, so all tools see the same noise. Everything started
# is stopped by PID at the end. The table goes to stdout and to
# bench/results/ (Markdown); only the ratios within one run are comparable.
#
#   bench/run.sh            full run (1 GiB, 2,000 files, 10 GiB RSS check,
#                           1,000 clients, 100,000 offers; ~15 minutes)
#   bench/run.sh --quick    small sizes, one round: checks the harness
#
# Needs root for apt-get and for the ssh server (Debian or Ubuntu).
set -euo pipefail
export LC_ALL=C

QUICK=0
case "${1:-}" in
--quick) QUICK=1 ;;
"") ;;
*)
    echo "usage: bench/run.sh [--quick]" >&2
    exit 2
    ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
HERE="$ROOT/bench"
# shellcheck source=bench/lib.sh
source "$HERE/lib.sh"
# shellcheck source=bench/servers.sh
source "$HERE/servers.sh"
# shellcheck source=bench/workloads.sh
source "$HERE/workloads.sh"
# shellcheck source=bench/scale.sh
source "$HERE/scale.sh"

if ((QUICK)); then
    BIG=$((8 << 20)) HUGE=$((32 << 20)) SMALL_COUNT=50 ROUNDS=1
    CLIENTS=50 ACTIVE=10 LOAD_SECONDS=1 LOAD_ROUNDS=2 OFFERS=2000 SEARCHES=200 MIXED_CLIENTS=20
else
    BIG=$((1 << 30)) HUGE=$((10 << 30)) SMALL_COUNT=2000 ROUNDS=5
    CLIENTS=1000 ACTIVE=100 LOAD_SECONDS=10 LOAD_ROUNDS=3 OFFERS=100000 SEARCHES=2000 MIXED_CLIENTS=200
fi
SMALL_SIZE=16384
# BENCH_ONLY="big_get small_put" runs some workloads; BENCH_ROUNDS=N overrides.
ROUNDS=${BENCH_ROUNDS:-$ROUNDS}

install_tools
build_ferry
make_workdir
make_data
start_servers

note "Ferry $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?'), $(date -u +%Y-%m-%dT%H:%MZ)," \
    "$(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p' | head -1)), loopback, $ROUNDS round(s)," \
    "median per tool; ÷ best peer = tool median / fastest non-Ferry median in this run." \
    "Ferry runs with TLS and fsync unless a row says plaintext; the peers do not fsync."

for workload in ${BENCH_ONLY:-big_get big_put small_get small_put memory many_clients mixed search peers}; do
    # Each workload starts with nothing left to write back: the memory run
    # leaves gigabytes dirty, which would otherwise land in the next one.
    sync
    "bench_$workload"
done

publish_report
