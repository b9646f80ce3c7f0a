# The workloads of bench/run.sh. Each `NAME_TOOL` function prepares
# (untimed), runs `clock` around the transfer alone, then checks the bytes.
# shellcheck shell=bash

size_label() {
    local bytes=$1
    if ((bytes >= 1 << 30)); then
        echo "$((bytes >> 30)) GiB"
    else
        echo "$((bytes >> 20)) MiB"
    fi
}

# ferry_to PORT [--plaintext] ARGS... — the benchmark user on a hub.
ferry_to() {
    local port=$1
    shift
    ferry_as client --hub "127.0.0.1:$port" --name bench "$@"
}

PEERS_GET=(ferry "ferry plaintext" "rsync daemon" vsftpd+lftp nginx+curl nc scp "scp aes128-gcm")

bench_big_get() {
    ferry_to "$P_HUB" put "$DATA/big.bin" >/dev/null
    ferry_to "$P_PLAIN" --plaintext put "$DATA/big.bin" >/dev/null
    rounds "$(size_label "$BIG") get" "$BIG" bytes big_get "${PEERS_GET[@]}"
}

big_get_ferry() {
    fresh "$DEST"
    clock ferry_to "$P_HUB" get big.bin -o "$DEST"
    same_file "$DATA/big.bin" "$DEST/big.bin"
}
big_get_ferry_plaintext() {
    fresh "$DEST"
    clock ferry_to "$P_PLAIN" --plaintext get big.bin -o "$DEST"
    same_file "$DATA/big.bin" "$DEST/big.bin"
}
big_get_rsync_daemon() {
    fresh "$DEST"
    clock rsync "rsync://127.0.0.1:$P_RSYNC/bench/big.bin" "$DEST/"
    same_file "$DATA/big.bin" "$DEST/big.bin"
}
big_get_vsftpd_lftp() {
    fresh "$DEST"
    clock ftp "get big.bin -o $DEST/big.bin"
    same_file "$DATA/big.bin" "$DEST/big.bin"
}
big_get_nginx_curl() {
    fresh "$DEST"
    clock curl -sSf -o "$DEST/big.bin" "http://127.0.0.1:$P_HTTP/big.bin"
    same_file "$DATA/big.bin" "$DEST/big.bin"
}
big_get_nc() {
    fresh "$DEST"
    nc_listen nc 'nc -N -l 127.0.0.1 "$P_NC" <"$SRV/big.bin"'
    clock nc_receive "$DEST/big.bin"
    same_file "$DATA/big.bin" "$DEST/big.bin"
}
big_get_scp() {
    fresh "$DEST"
    clock "${SCP[@]}" "$SSH_TARGET:$SRV/big.bin" "$DEST/"
    same_file "$DATA/big.bin" "$DEST/big.bin"
}
big_get_scp_aes128_gcm() {
    fresh "$DEST"
    clock "${SCP[@]}" -c aes128-gcm@openssh.com "$SSH_TARGET:$SRV/big.bin" "$DEST/"
    same_file "$DATA/big.bin" "$DEST/big.bin"
}

# nc_receive FILE — the client end of a one-shot netcat download.
nc_receive() {
    nc 127.0.0.1 "$P_NC" </dev/null >"$1"
    wait "$NC_PID"
}

PEERS_PUT=(ferry "ferry plaintext" "rsync daemon" vsftpd+lftp nginx+curl nc scp)

bench_big_put() {
    rounds "$(size_label "$BIG") put" "$BIG" bytes big_put "${PEERS_PUT[@]}"
}

big_put_ferry() {
    ferry_to "$P_HUB" rm big.bin >/dev/null
    clock ferry_to "$P_HUB" put "$DATA/big.bin"
}
big_put_ferry_plaintext() {
    ferry_to "$P_PLAIN" --plaintext rm big.bin >/dev/null
    clock ferry_to "$P_PLAIN" --plaintext put "$DATA/big.bin"
}
big_put_rsync_daemon() {
    rm -f "$SRV/up/big.bin"
    clock rsync "$DATA/big.bin" "rsync://127.0.0.1:$P_RSYNC/bench/up/"
    same_file "$DATA/big.bin" "$SRV/up/big.bin"
}
big_put_vsftpd_lftp() {
    rm -f "$FTP_UP/big.bin"
    clock ftp "put $DATA/big.bin -o pub/big.bin"
    same_file "$DATA/big.bin" "$FTP_UP/big.bin"
}
big_put_nginx_curl() {
    rm -f "$SRV/up/big.bin"
    clock curl -sSf -T "$DATA/big.bin" "http://127.0.0.1:$P_HTTP/up/big.bin"
    same_file "$DATA/big.bin" "$SRV/up/big.bin"
}
big_put_nc() {
    rm -f "$SRV/up/big.bin"
    nc_listen nc 'nc -l 127.0.0.1 "$P_NC" >"$SRV/up/big.bin"'
    clock nc_send "$DATA/big.bin"
    same_file "$DATA/big.bin" "$SRV/up/big.bin"
}
big_put_scp() {
    rm -f "$SRV/up/big.bin"
    clock "${SCP[@]}" "$DATA/big.bin" "$SSH_TARGET:$SRV/up/"
    same_file "$DATA/big.bin" "$SRV/up/big.bin"
}

# nc_send FILE — the client end of a one-shot netcat upload.
nc_send() {
    nc -N 127.0.0.1 "$P_NC" <"$1"
    wait "$NC_PID"
}

SMALL_TOOLS=(ferry "ferry plaintext" "rsync daemon" vsftpd+lftp nginx+curl tar+nc scp)

bench_small_get() {
    ferry_to "$P_HUB" put "$DATA/small" >/dev/null
    ferry_to "$P_PLAIN" --plaintext put "$DATA/small" >/dev/null
    rounds "$SMALL_COUNT × 16 KiB get" "$SMALL_COUNT" files small_get "${SMALL_TOOLS[@]}"
    DEST="$WORK/dest"
}

# small_dest — a new, empty destination for one small-file download.
# Nothing is deleted between runs: on a filesystem without a journal (as
# on the machine these figures come from), ext4 skips recently deleted
# inodes when it allocates one, checking each on disk, so every file
# created within 30 s of a big delete costs up to 10× (perf:
# recently_deleted under __ext4_new_inode). That hit whichever tool ran
# next, at random; now none.
small_dest() {
    SMALL_RUN=$((${SMALL_RUN:-0} + 1))
    DEST="$WORK/small-dest/$SMALL_RUN"
    mkdir -p "$DEST"
}

small_get_ferry() {
    small_dest
    clock ferry_to "$P_HUB" get small -o "$DEST"
    same_tree "$DATA/small" "$DEST/small"
}
small_get_ferry_plaintext() {
    small_dest
    clock ferry_to "$P_PLAIN" --plaintext get small -o "$DEST"
    same_tree "$DATA/small" "$DEST/small"
}
small_get_rsync_daemon() {
    small_dest
    clock rsync -a "rsync://127.0.0.1:$P_RSYNC/bench/small" "$DEST/"
    same_tree "$DATA/small" "$DEST/small"
}
small_get_vsftpd_lftp() {
    small_dest
    clock ftp "mirror small $DEST/small"
    same_tree "$DATA/small" "$DEST/small"
}
small_get_nginx_curl() {
    small_dest
    local name
    for name in $(ls "$DATA/small"); do
        printf 'url = "http://127.0.0.1:%s/small/%s"\noutput = "%s/small/%s"\n' \
            "$P_HTTP" "$name" "$DEST" "$name"
    done >"$WORK/small-get.curl"
    clock curl -sSf --create-dirs -K "$WORK/small-get.curl"
    same_tree "$DATA/small" "$DEST/small"
}
small_get_tar_nc() {
    small_dest
    nc_listen tar-nc 'tar -C "$SRV" -cf - small | nc -N -l 127.0.0.1 "$P_NC"'
    clock tar_nc_receive
    same_tree "$DATA/small" "$DEST/small"
}
small_get_scp() {
    small_dest
    clock "${SCP[@]}" -r "$SSH_TARGET:$SRV/small" "$DEST/"
    same_tree "$DATA/small" "$DEST/small"
}

tar_nc_receive() {
    nc 127.0.0.1 "$P_NC" </dev/null | tar -C "$DEST" -xf -
    wait "$NC_PID"
}

# Uploads of the small folder: every round uploads new bytes under a new
# folder name (the hub would otherwise deduplicate them), and every tool
# in a round uploads the same folder.
bench_small_put() {
    SMALL_ROUND=0
    rounds "$SMALL_COUNT × 16 KiB put" "$SMALL_COUNT" files small_put "${SMALL_TOOLS[@]}"
}

# small_source — this run's folder to upload, made on first use, and
# UP, a new folder under up/ (also reachable as pub/$UP over FTP) to
# upload it into: nothing is deleted between runs (see small_dest).
small_source() {
    local n=$((SMALL_ROUND / ${#SMALL_TOOLS[@]}))
    SMALL_ROUND=$((SMALL_ROUND + 1))
    SRC="$WORK/put/small-$n"
    if [[ ! -d $SRC ]]; then
        "$BENCH" mkfiles "$SRC" --count "$SMALL_COUNT" --size "$SMALL_SIZE" --seed $((100 + n))
    fi
    SRC_NAME=${SRC##*/}
    UP="r$SMALL_ROUND"
    mkdir -p "$SRV/up/$UP" "$FTP_UP/$UP"
    chmod 777 "$SRV/up/$UP" "$FTP_UP/$UP"
}

small_put_ferry() {
    small_source
    clock ferry_to "$P_HUB" put "$SRC"
}
small_put_ferry_plaintext() {
    small_source
    clock ferry_to "$P_PLAIN" --plaintext put "$SRC"
}
small_put_rsync_daemon() {
    small_source
    clock rsync -a "$SRC" "rsync://127.0.0.1:$P_RSYNC/bench/up/$UP/"
    same_tree "$SRC" "$SRV/up/$UP/$SRC_NAME"
}
small_put_vsftpd_lftp() {
    small_source
    clock ftp "mirror -R $SRC pub/$UP/$SRC_NAME"
    same_tree "$SRC" "$FTP_UP/$UP/$SRC_NAME"
}
small_put_nginx_curl() {
    small_source
    local name
    for name in $(ls "$SRC"); do
        printf 'upload-file = "%s/%s"\nurl = "http://127.0.0.1:%s/up/%s/%s/%s"\n' \
            "$SRC" "$name" "$P_HTTP" "$UP" "$SRC_NAME" "$name"
    done >"$WORK/small-put.curl"
    clock curl -sSf -K "$WORK/small-put.curl"
    same_tree "$SRC" "$SRV/up/$UP/$SRC_NAME"
}
small_put_tar_nc() {
    small_source
    nc_listen tar-nc 'tar -C "$SRV/up/$UP" -xf - < <(nc -l 127.0.0.1 "$P_NC")'
    clock tar_nc_send
    same_tree "$SRC" "$SRV/up/$UP/$SRC_NAME"
}
small_put_scp() {
    small_source
    clock "${SCP[@]}" -r "$SRC" "$SSH_TARGET:$SRV/up/$UP/"
    same_tree "$SRC" "$SRV/up/$UP/$SRC_NAME"
}

tar_nc_send() {
    tar -C "${SRC%/*}" -cf - "$SRC_NAME" | nc -N 127.0.0.1 "$P_NC"
    wait "$NC_PID"
}
