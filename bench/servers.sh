# The servers of bench/run.sh, each with its own config under $WORK, on
# 127.0.0.1 only. Files they serve are hard links to the test data; what
# they receive goes to a folder cleared before each run.
# shellcheck shell=bash

make_data() {
    DATA="$WORK/data"
    echo "making test data" >&2
    "$BENCH" mkfiles "$DATA/big" --size "$BIG" --prefix big.bin- --seed 1
    mv "$DATA/big/big.bin-000000" "$DATA/big.bin"
    "$BENCH" mkfiles "$DATA/small" --count "$SMALL_COUNT" --size "$SMALL_SIZE" --seed 2
    # What the servers offer, as hard links: no copies of a gigabyte.
    SRV="$WORK/srv"
    mkdir -p "$SRV/up"
    chmod 777 "$SRV/up"
    ln "$DATA/big.bin" "$SRV/big.bin"
    cp -al "$DATA/small" "$SRV/small"
}

start_servers() {
    echo "starting servers" >&2
    start_ferry_hub hub "$WORK/hub"
    P_HUB=$HUB_PORT
    start_ferry_hub plain "$WORK/hub-plain" --plaintext
    P_PLAIN=$HUB_PORT
    start_rsyncd
    start_sshd
    start_nginx
    start_vsftpd
}

# start_ferry_hub NAME DATA_DIR [--plaintext] — sets HUB_PORT.
start_ferry_hub() {
    local name=$1 data=$2
    shift 2
    next_port
    HUB_PORT=$PORT
    # Open, as the peer tools are; a thousand benchmark users register
    # from one address, past an open hub's default limit per address.
    printf 'admission = "open"\nregistrations_per_source = 1000000\n' >"$WORK/hub.toml"
    start "$name" "$FERRY" serve --config "$WORK/hub.toml" --listen "127.0.0.1:$HUB_PORT" --data "$data" "$@"
    wait_listening "$HUB_PORT"
}

start_rsyncd() {
    next_port
    P_RSYNC=$PORT
    cat >"$WORK/rsyncd.conf" <<EOF
use chroot = no
[bench]
    path = $SRV
    read only = no
    uid = root
    gid = root
EOF
    start rsyncd rsync --daemon --no-detach --address=127.0.0.1 --port="$P_RSYNC" \
        --config="$WORK/rsyncd.conf"
    wait_listening "$P_RSYNC"
}

start_sshd() {
    next_port
    P_SSH=$PORT
    local dir="$WORK/ssh"
    mkdir -p "$dir" /run/sshd
    ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
    ssh-keygen -q -t ed25519 -N '' -f "$dir/client_key"
    cp "$dir/client_key.pub" "$dir/authorized_keys"
    cat >"$dir/sshd_config" <<EOF
ListenAddress 127.0.0.1
Port $P_SSH
HostKey $dir/host_key
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
Subsystem sftp internal-sftp
EOF
    start sshd /usr/sbin/sshd -D -e -f "$dir/sshd_config"
    wait_listening "$P_SSH"
    SCP=(scp -q -B -P "$P_SSH" -i "$dir/client_key" -o StrictHostKeyChecking=no
        -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR)
    SSH_TARGET="$(id -un)@127.0.0.1"
}

start_nginx() {
    next_port
    P_HTTP=$PORT
    local dir="$WORK/nginx"
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<EOF
daemon off;
user root;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    server {
        listen 127.0.0.1:$P_HTTP;
        root $SRV;
        location /up/ {
            dav_methods PUT;
            create_full_put_path on;
            client_max_body_size 0;
        }
    }
}
EOF
    start nginx /usr/sbin/nginx -c "$dir/nginx.conf" -p "$dir"
    wait_listening "$P_HTTP"
}

start_vsftpd() {
    next_port
    P_FTP=$PORT
    local dir="$WORK/ftp"
    # The anonymous root must not be writable; uploads go to pub/.
    mkdir -p "$dir/root/pub"
    chmod 755 "$dir/root"
    chmod 777 "$dir/root/pub"
    ln "$DATA/big.bin" "$dir/root/big.bin"
    cp -al "$DATA/small" "$dir/root/small"
    mkdir -p /var/run/vsftpd/empty
    cat >"$dir/vsftpd.conf" <<EOF
listen=YES
listen_address=127.0.0.1
listen_port=$P_FTP
background=NO
anonymous_enable=YES
local_enable=NO
no_anon_password=YES
anon_root=$dir/root
write_enable=YES
anon_upload_enable=YES
anon_mkdir_write_enable=YES
anon_other_write_enable=YES
anon_umask=022
pasv_enable=YES
pasv_address=127.0.0.1
pasv_min_port=$((P_FTP + 1000))
pasv_max_port=$((P_FTP + 1100))
seccomp_sandbox=NO
xferlog_enable=NO
secure_chroot_dir=/var/run/vsftpd/empty
EOF
    start vsftpd /usr/sbin/vsftpd "$dir/vsftpd.conf"
    wait_listening "$P_FTP"
    FTP_UP="$dir/root/pub"
}

# lftp COMMANDS — one anonymous FTP session.
ftp() {
    lftp -e "set cmd:fail-exit yes; set net:max-retries 1; set net:timeout 20; $1; quit" \
        -p "$P_FTP" 127.0.0.1
}

# ferry_as HOME ARGS... — the Ferry client with its own config folder.
ferry_as() {
    local home=$1
    shift
    FERRY_HOME="$WORK/$home" FERRY_PEER_BIND=127.0.0.1 "$FERRY" "$@"
}

# ferry_daemon HOME ARGS... — ferry_as for `start` only: it execs, so the
# PID `start` remembers is ferry's own and stopping it stops ferry (not a
# subshell that would leave ferry running).
ferry_daemon() {
    local home=$1
    shift
    exec env FERRY_HOME="$WORK/$home" FERRY_PEER_BIND=127.0.0.1 "$FERRY" "$@"
}

# nc_listen NAME SHELL_COMMAND — a one-shot netcat server; sets NC_PID.
nc_listen() {
    next_port
    P_NC=$PORT
    env P_NC="$P_NC" SRV="$SRV" DATA="$DATA" DEST="$DEST" SRC="${SRC:-}" UP="${UP:-}" \
        bash -c "$2" >"$WORK/log/$1.log" 2>&1 &
    NC_PID=$!
    PIDS+=("$NC_PID")
    wait_listening "$P_NC"
}
