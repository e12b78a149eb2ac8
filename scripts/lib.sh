# Shared by scripts/start, scripts/test and bench/run: install what is missing and run
# PostgreSQL in a folder of the project, without any system service manager.
# Source it; it sets ROOT to the project folder.

set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$ROOT/.data"
mkdir -p "$DATA"

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Debian packages the project needs to build, run and test.
DEBIAN_PACKAGES=(pkg-config libpq-dev postgresql postgresql-contrib librabbitmq-dev rabbitmq-server libcurl4-openssl-dev python3-venv curl iproute2 libjs-chart.js prometheus)

ensure_packages() {
    local missing=()
    for package in "${DEBIAN_PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        [ "$(id -u)" = 0 ] || die "missing Debian packages: ${missing[*]} (install them as root: apt-get install ${missing[*]})"
        log "installing ${missing[*]}"
        if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' 2>/dev/null | head -1)" ]; then
            apt-get update -qq
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
            || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }
    fi
    command -v swift >/dev/null || die "the Swift toolchain (6.2 or later) is not on PATH"
}

pg_bin() {
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
    [ -n "$dir" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
    echo "$dir"
}

# Runs a command as the postgres user when we are root (PostgreSQL refuses to run as root).
as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# make_test_certificates DIR: a throw-away CA, a server certificate it signed for the name
# localhost (not the address 127.0.0.1: the tests check host names), a client certificate,
# and a second CA that signed neither, in DIR (kept if already there). For the TLS tests.
make_test_certificates() {
    local dir=$1
    [ -s "$dir/server.crt" ] && [ -s "$dir/client.crt" ] && [ -s "$dir/other-ca.crt" ] && return 0
    mkdir -p "$dir"
    log "making a test CA and certificates in $dir"
    (
        cd "$dir"
        for ca in ca other-ca; do
            openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=seed-scheduler test $ca" \
                -keyout "$ca.key" -out "$ca.crt" 2>/dev/null
        done
        printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' > server.ext
        printf 'extendedKeyUsage=clientAuth\n' > client.ext
        for who in server client; do
            openssl req -newkey rsa:2048 -nodes -subj "/CN=$([ $who = server ] && echo localhost || echo scheduler)" \
                -keyout "$who.key" -out "$who.csr" 2>/dev/null
            openssl x509 -req -in "$who.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
                -extfile "$who.ext" -out "$who.crt" 2>/dev/null
        done
        chmod 644 ./*.crt ./*.key
    ) || die "openssl could not make the test certificates"
}

# start_postgres NAME PORT: a cluster in .data/NAME on 127.0.0.1:PORT, trust auth for
# local connections only. Prints nothing; sets PG_URL_BASE (no database name). With
# PG_TLS_DIR (make_test_certificates), it also takes TLS connections (ssl = on).
start_postgres() {
    local name=$1 port=$2 bin dir
    bin=$(pg_bin)
    dir="$DATA/$name"
    if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$DATA"; then
        # The project folder is not reachable by the postgres user: keep the cluster in /tmp.
        dir="/tmp/seed-scheduler-$(echo "$ROOT" | md5sum | cut -c1-8)/$name"
        log "postgres cannot reach $DATA; using $dir"
    fi
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir" && chmod 700 "$dir"
    if [ ! -f "$dir/PG_VERSION" ]; then
        log "creating a PostgreSQL cluster in $dir"
        as_pg "$bin/initdb" -D "$dir" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
    fi
    local tls=""
    if [ -n "${PG_TLS_DIR:-}" ]; then
        # The key must belong to the server's user and be readable by it alone.
        install -m 600 "$PG_TLS_DIR/server.key" "$dir/server.key"
        install -m 644 "$PG_TLS_DIR/server.crt" "$dir/server.crt"
        [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir/server.key" "$dir/server.crt"
        tls="-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key"
    fi
    if ! as_pg "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
        log "starting PostgreSQL on 127.0.0.1:$port"
        as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 -c fsync=${PG_FSYNC:-on} $tls" start >/dev/null \
            || { cat "$dir/server.log" >&2; die "PostgreSQL did not start"; }
    fi
    PG_DIR="$dir"
    PG_URL_BASE="postgres://postgres@127.0.0.1:$port"
}

# start_postgres_standby NAME PORT PRIMARY_PORT: a streaming standby of the PostgreSQL on
# 127.0.0.1:PRIMARY_PORT in .data/NAME on 127.0.0.1:PORT, copied with pg_basebackup (-R:
# it follows the primary and can be promoted). Sets PG_DIR to its folder.
start_postgres_standby() {
    local name=$1 port=$2 primary=$3 bin dir
    bin=$(pg_bin)
    dir="$DATA/$name"
    if [ "$(id -u)" = 0 ] && ! runuser -u postgres -- test -x "$DATA"; then
        dir="/tmp/seed-scheduler-$(echo "$ROOT" | md5sum | cut -c1-8)/$name"
    fi
    if [ ! -f "$dir/PG_VERSION" ]; then
        mkdir -p "$dir"
        [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir" && chmod 700 "$dir"
        log "copying the primary on port $primary into a standby in $dir"
        # (It warns of the primary's socket in its data folder: the output is kept for a failure.)
        as_pg "$bin/pg_basebackup" -h 127.0.0.1 -p "$primary" -U postgres -D "$dir" -R -X stream -c fast > "$DATA/$name.basebackup.log" 2>&1 \
            || { cat "$DATA/$name.basebackup.log" >&2; die "pg_basebackup failed"; }
        # The primary's synchronous_standby_names came with the copy: promoted, this server
        # has no standby of its own, and with the setting every commit would wait for one.
        as_pg sed -i '/^synchronous_standby_names/d' "$dir/postgresql.auto.conf"
    fi
    if ! as_pg "$bin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
        log "starting the standby on 127.0.0.1:$port"
        as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=300 -c fsync=${PG_FSYNC:-on}" start >/dev/null \
            || { cat "$dir/server.log" >&2; die "the standby did not start"; }
    fi
    PG_DIR="$dir"
}

stop_postgres() {
    local dir=${1:-$PG_DIR}
    [ -f "$dir/postmaster.pid" ] && as_pg "$(pg_bin)/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
}

create_database() {
    local url_base=$1 name=$2
    psql "$url_base/postgres" -qtAc "SELECT 1 FROM pg_database WHERE datname = '$name'" | grep -q 1 \
        || psql "$url_base/postgres" -qc "CREATE DATABASE \"$name\"" >/dev/null
}

# A SECRET_KEY for this checkout, made once and kept in .data/.
local_secret_key() {
    [ -s "$DATA/secret_key" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DATA/secret_key"
    cat "$DATA/secret_key"
}

# start_rabbitmq NAME PORT: a RabbitMQ node whose data and logs live in .data/NAME, on
# 127.0.0.1:PORT, configured by rabbitmq/rabbitmq.conf. Sets AMQP_URL and RABBIT_ENV.
# With RABBIT_TLS_PORT and RABBIT_TLS_DIR (make_test_certificates), it also listens for
# amqps:// on that port (client certificates asked for, not required).
start_rabbitmq() {
    local name=$1 port=$2 dir
    dir="$DATA/$name"
    mkdir -p "$dir/mnesia" "$dir/log"
    [ -f "$dir/enabled_plugins" ] || echo "[]." > "$dir/enabled_plugins"
    local RABBIT_CONFIG_FILE=${RABBIT_CONFIG_FILE:-$ROOT/rabbitmq/rabbitmq.conf}
    if [ -n "${RABBIT_TLS_PORT:-}" ]; then
        { cat "$RABBIT_CONFIG_FILE"
          printf 'listeners.ssl.default = 127.0.0.1:%s\n' "$RABBIT_TLS_PORT"
          printf 'ssl_options.cacertfile = %s/ca.crt\nssl_options.certfile = %s/server.crt\nssl_options.keyfile = %s/server.key\n' \
              "$RABBIT_TLS_DIR" "$RABBIT_TLS_DIR" "$RABBIT_TLS_DIR"
          printf 'ssl_options.verify = verify_peer\nssl_options.fail_if_no_peer_cert = false\n'
        } > "$dir/rabbitmq.conf"
        RABBIT_CONFIG_FILE="$dir/rabbitmq.conf"
    fi
    # The node's environment, also needed by rabbitmqctl to reach it.
    RABBIT_ENV=(
        HOME="$dir"
        RABBITMQ_NODENAME="$name@localhost"
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
        RABBITMQ_NODE_PORT="$port"
        RABBITMQ_DIST_PORT="$((port + 20000))"
        RABBITMQ_MNESIA_BASE="$dir/mnesia"
        RABBITMQ_LOG_BASE="$dir/log"
        RABBITMQ_PID_FILE="$dir/rabbitmq.pid"
        RABBITMQ_CONFIG_FILE="$RABBIT_CONFIG_FILE"
        RABBITMQ_ENABLED_PLUGINS_FILE="$dir/enabled_plugins"
        RABBITMQ_ADVANCED_CONFIG_FILE="$dir/advanced.config"
    )
    if ! env "${RABBIT_ENV[@]}" /usr/lib/rabbitmq/bin/rabbitmqctl -q -n "$name@localhost" status >/dev/null 2>&1; then
        log "starting RabbitMQ on 127.0.0.1:$port"
        env "${RABBIT_ENV[@]}" nohup /usr/lib/rabbitmq/bin/rabbitmq-server > "$dir/server.out" 2>&1 &
        local waited=0
        until env "${RABBIT_ENV[@]}" /usr/lib/rabbitmq/bin/rabbitmqctl -q -n "$name@localhost" --timeout 10 await_startup >/dev/null 2>&1; do
            waited=$((waited + 1))
            [ "$waited" -lt 60 ] || { tail -30 "$dir/server.out" >&2; die "RabbitMQ did not start"; }
            sleep 1
        done
    fi
    RABBIT_DIR="$dir"
    RABBIT_NODE="$name@localhost"
    AMQP_URL="amqp://guest:guest@127.0.0.1:$port/%2f"
}

# start_rabbitmq_cluster PREFIX PORT: three RabbitMQ nodes PREFIX-1..3 on 127.0.0.1:PORT..PORT+2
# (data in .data/PREFIX-N), one cluster, configured as operators run one: rabbitmq.conf and
# rabbitmq/cluster.conf (peer discovery, pause_minority, leaders balanced over the nodes),
# with the nodes' names of this machine; a shared Erlang cookie; nodes 2 and 3 joined to 1
# if discovery did not join them.
# Writes PREFIX-ctl (rabbitmqctl on node N: `PREFIX-ctl N args...`), PREFIX-kill (kill -9 of
# node N) and PREFIX-start (start node N again) into .data, and sets CLUSTER_AMQP_URL
# (all three nodes, comma-separated, without a virtual host) and CLUSTER_CTL.
start_rabbitmq_cluster() {
    local prefix=$1 port=$2 n cookie
    # start_rabbitmq sets these: keep the caller's (its own broker's) as they were.
    local RABBIT_ENV RABBIT_DIR RABBIT_NODE AMQP_URL
    cookie="$DATA/$prefix.cookie"
    [ -s "$cookie" ] || head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr 'a-f' 'A-F' > "$cookie"
    local RABBIT_CONFIG_FILE="$DATA/$prefix.conf"
    { cat "$ROOT/rabbitmq/rabbitmq.conf"
      sed -e "s/= rabbit@rabbitmq-\([23]\)\$/= $prefix-\1@localhost/" -e "s/= rabbit@rabbitmq\$/= $prefix-1@localhost/" \
          "$ROOT/rabbitmq/cluster.conf"; } > "$RABBIT_CONFIG_FILE"
    for n in 1 2 3; do
        mkdir -p "$DATA/$prefix-$n"
        install -m 400 "$cookie" "$DATA/$prefix-$n/.erlang.cookie"
        start_rabbitmq "$prefix-$n" "$((port + n - 1))"
    done
    for n in 2 3; do
        if ! "$ROOT/scripts/rabbit-node" "$prefix" 1 cluster_status 2>/dev/null | grep -q "$prefix-$n@localhost"; then
            log "joining $prefix-$n to the cluster"
            "$ROOT/scripts/rabbit-node" "$prefix" "$n" stop_app >/dev/null
            "$ROOT/scripts/rabbit-node" "$prefix" "$n" join_cluster "$prefix-1@localhost" >/dev/null
            "$ROOT/scripts/rabbit-node" "$prefix" "$n" start_app >/dev/null
        fi
    done
    CLUSTER_AMQP_URL="amqp://guest:guest@127.0.0.1:$port,127.0.0.1:$((port + 1)),127.0.0.1:$((port + 2))"
}

stop_rabbitmq_cluster() {
    local prefix=$1 n
    for n in 3 2 1; do "$ROOT/scripts/rabbit-node" "$prefix" "$n" stop >/dev/null 2>&1 || true; done
}

rabbitmqctl_node() {
    env "${RABBIT_ENV[@]}" /usr/lib/rabbitmq/bin/rabbitmqctl -q -n "$RABBIT_NODE" "$@"
}

stop_rabbitmq() {
    [ -n "${RABBIT_NODE:-}" ] || return 0
    rabbitmqctl_node stop >/dev/null 2>&1 || true
}
