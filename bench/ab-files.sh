#!/usr/bin/env bash
# A/B of two builds of Ferry on file transfers (TLS, fsync), alternating,
# same machine: 2,000 x 16 KiB put and get, and one 256 MiB put and get.
#   bench/ab-files.sh OLD_DIR NEW_DIR [ROUNDS]
# where each DIR holds a `ferry` and a `ferry-bench` of one build (copy them
# from target/release). Prints one line per round and build (seconds), then
# the median of each and new/old. Everything started is stopped by PID.
set -euo pipefail
old=$1 new=$2 rounds=${3:-5}
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
"$new/ferry-bench" mkfiles "$work/small" --count 2000 --size 16384 --seed 7 >/dev/null
head -c $((256 << 20)) /dev/urandom >"$work/big.bin"
now() { date +%s.%N; }
took() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
port=7960
printf 'round\tbuild\tsmall put\tsmall get\tbig put\tbig get\n'
for round in $(seq "$rounds"); do
    for build in old new; do
        dir=${!build}
        port=$((port + 1))
        data="$work/d-$build-$round" home="$work/h-$build-$round" out="$work/o-$build-$round"
        "$dir/ferry" serve --listen "127.0.0.1:$port" --data "$data" --admission open \
            >"$work/serve.log" 2>&1 &
        pids+=($!)
        sleep 1
        ferry() { FERRY_HOME="$home" "$dir/ferry" --hub "127.0.0.1:$port" --name bench "$@" >/dev/null 2>&1; }
        t=$(now); (cd "$work" && ferry put small); small_put=$(took "$t")
        t=$(now); ferry get small -o "$out"; small_get=$(took "$t")
        t=$(now); ferry put "$work/big.bin"; big_put=$(took "$t")
        t=$(now); ferry get big.bin -o "$out"; big_get=$(took "$t")
        cmp -s "$work/big.bin" "$out/big.bin" || { echo "big.bin differs ($build)" >&2; exit 1; }
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$build" "$small_put" "$small_get" "$big_put" "$big_get"
        kill "${pids[-1]}"
        wait "${pids[-1]}" 2>/dev/null || true
        rm -rf "$data" "$out"
    done
done | tee "$work/rows.tsv"
awk -F'\t' 'NR > 1 {
    for (c = 3; c <= 6; c++) v[$2, c, ++n[$2, c]] = $c
}
function median(b, c,   i, j, k, t, a) {
    k = n[b, c]; for (i = 1; i <= k; i++) a[i] = v[b, c, i]
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
}
END {
    split("small put,small get,big put,big get", name, ",")
    printf "\nmedian\told\tnew\tnew/old\n"
    for (c = 3; c <= 6; c++) {
        o = median("old", c); w = median("new", c)
        printf "%s\t%.3f\t%.3f\t%.2f\n", name[c - 2], o, w, w / o
    }
}' "$work/rows.tsv"
