#!/usr/bin/env bash
# weir against Apache prefork + mod_ssl and nginx -> Apache prefork, on loopback.
#
#   benches/run.sh                 # full run (about 25 minutes on 2 cores), writes benches/RESULTS.md
#   QUICK=1 benches/run.sh         # every scenario once and briefly (about 6 minutes)
#
# See benches/README.md for the scenarios, the knobs and how to read RESULTS.md.
set -Eeuo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
TOOLS="$BENCH_DIR/tools"
PY="python3 $TOOLS/bench.py"

# --- Knobs -------------------------------------------------------------------------------------
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    : "${BENCH_DURATION:=3}" "${BENCH_REPEAT:=1}" "${ATTACK_CONNS:=1000}" "${ATTACK_PROBE_SECONDS:=6}"
    : "${MEM_CONNS:=2000}" "${BENCH_CRITERION_TIME:=1}" "${BENCH_PERF:=0}"
    : "${HANDSHAKE_SILENT:=1000}" "${HANDSHAKE_STALLING:=1000}" "${HANDSHAKE_PROBE_SECONDS:=6}"
    : "${CHAOS_SECONDS:=60}"
fi
BENCH_DURATION=${BENCH_DURATION:-8}          # seconds per load run
BENCH_REPEAT=${BENCH_REPEAT:-3}              # runs per (scenario, stack); medians and ranges
BENCH_CONNS=${BENCH_CONNS:-64}               # keep-alive clients (wrk -c; h2load streams)
ATTACK_CONNS=${ATTACK_CONNS:-4000}           # slowhttptest -c
ATTACK_RATE=${ATTACK_RATE:-500}              # slowhttptest -r (new connections per second)
ATTACK_PROCS=${ATTACK_PROCS:-2}              # slowhttptest processes sharing -c and -r
ATTACK_PROBE_SECONDS=${ATTACK_PROBE_SECONDS:-30}
ATTACK_WORKERS=${ATTACK_WORKERS:-8}          # MaxRequestWorkers during the attacks
ATTACK_MODES=${ATTACK_MODES:-"H B X"}        # slowhttptest modes run: Slowloris, slow body, slow read
HANDSHAKE_SILENT=${HANDSHAKE_SILENT:-5000}    # handshake phase: silent connections from 127.0.0.2
HANDSHAKE_STALLING=${HANDSHAKE_STALLING:-5000} # ... and ones stalled inside the ClientHello
HANDSHAKE_PROBE_SECONDS=${HANDSHAKE_PROBE_SECONDS:-10}
HANDSHAKE_STACKS=${HANDSHAKE_STACKS:-"nginx weir"}
MEM_CONNS=${MEM_CONNS:-10000}                # idle TLS connections held for the memory figure
MEM_CONNS_APACHE=${MEM_CONNS_APACHE:-100}    # Apache needs a child per connection (< 150)
BURST=${BURST:-64}                           # concurrent requests of the burst
NEWTLS_CLIENTS=${NEWTLS_CLIENTS:-4}          # parallel ab processes for new TLS connections
NEWTLS_CONC=${NEWTLS_CONC:-16}               # ab -c of each
BENCH_CRITERION=${BENCH_CRITERION:-1}        # 0 skips the cargo (criterion) benches
BENCH_CRITERION_TIME=${BENCH_CRITERION_TIME:-2}
BENCH_BUILD=${BENCH_BUILD:-1}                # 0: use the binaries already in target/release
BENCH_PERF=${BENCH_PERF:-1}                  # 1: profile weir's edge serving the static file
PHASES=${BENCH_PHASES:-"criterion memory burst load attack handshake bigbody chaos"}
STACKS=${BENCH_STACKS:-"apache nginx weir"}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/target}
WEIR_BIN=${WEIR_BIN:-$TARGET_DIR/release/weir}
TESTAPP_BIN=${TESTAPP_BIN:-$TARGET_DIR/release/examples/testapp}
OUT_MD=${BENCH_OUT:-$BENCH_DIR/RESULTS.md}
# The raw figures go beside the report: results.jsonl for RESULTS.md, NAME.jsonl for NAME.md.
OUT_JSONL=$BENCH_DIR/results.jsonl
[[ -n ${BENCH_OUT:-} ]] && OUT_JSONL=${BENCH_OUT%.md}.jsonl
RUN_USER=${BENCH_USER:-www-data}

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (servers start as root and drop to $RUN_USER, as in production)"

# --- The peers, from Debian's packages ---------------------------------------------------------
need=()
command -v apache2 >/dev/null || [[ -x /usr/sbin/apache2 ]] || need+=(apache2)
command -v ab >/dev/null || need+=(apache2-utils)
command -v nginx >/dev/null || [[ -x /usr/sbin/nginx ]] || need+=(nginx)
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
command -v slowhttptest >/dev/null || need+=(slowhttptest)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
    log "installing ${need[*]}"
    # Keep the packages' own services from starting on port 80 while they install.
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
    rm -f /usr/sbin/policy-rc.d
    trap - EXIT
fi
# Debian's own instances (port 80), if something started them, are not part of this: stop them.
for svc in apache2:/run/apache2/apache2.pid nginx:/run/nginx.pid; do
    pidfile=${svc#*:}
    if [[ -s $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        log "stopping Debian's ${svc%%:*} service"
        service "${svc%%:*}" stop >/dev/null 2>&1 || true
    fi
done
PATH=$PATH:/usr/sbin
# Thousands of attack connections: as many open files as this shell may have (at least 16,384).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)
[[ $NOFILE == unlimited ]] && NOFILE=1048576
((NOFILE >= 16384)) || die "the open-file limit is $NOFILE; the attacks need at least 16384 (ulimit -Hn)"

# --- weir ----------------------------------------------------------------------------------------
START_ALL=$(date +%s)
if [[ $BENCH_BUILD == 1 ]]; then
    log "building weir (cargo build --release --examples)"
    t0=$(date +%s)
    (cd "$REPO" && cargo build --release --bins --examples 2>&1 | tail -n 3) >&2
    BUILD_SECONDS=$(($(date +%s) - t0))
else
    BUILD_SECONDS=0
fi
[[ -x $WEIR_BIN && -x $TESTAPP_BIN ]] || die "no $WEIR_BIN or $TESTAPP_BIN (cargo build --release --examples)"

# --- Work directory: certificate, documents, CGI scripts, configs, logs ---------------------------
W=$(mktemp -d /tmp/weir-bench.XXXXXX)
chmod 755 "$W"
RESULTS=$W/results.jsonl
: >"$RESULTS"
echo $$ >"$W/ours"     # pids whose process trees are the benchmark's (daemons are added)
echo setup >"$W/phase"
$PY bgcpu "$W/ours" "$W/phase" "$W/bgcpu.jsonl" &
BGCPU_PID=$!
mkdir -p "$W/htdocs" "$W/cgi-bin" "$W/out"
"$WEIR_BIN" cert selfsigned --out "$W/cert" >/dev/null
openssl x509 -in "$W/cert/server.crt" -noout -text | grep -q 'prime256v1\|P-256' ||
    die "the certificate is not ECDSA P-256"
head -c 1024 /dev/urandom | base64 -w 0 | head -c 1024 >"$W/htdocs/1k.bin"
head -c 131072 /dev/urandom >"$W/htdocs/128k.bin"
echo '<!doctype html><title>bench</title>' >"$W/htdocs/index.html"
cat >"$W/cgi-bin/hello" <<'EOF'
#!/bin/sh
printf 'Content-Type: text/plain\r\n\r\nhello from %s\n' "$SERVER_SOFTWARE"
EOF
cat >"$W/cgi-bin/post" <<'EOF'
#!/bin/sh
# Reads the whole body and answers with its length.
n=$(wc -c)
printf 'Content-Type: text/plain\r\n\r\n%s\n' "$n"
EOF
cat >"$W/cgi-bin/sleep" <<'EOF'
#!/bin/sh
sleep 1
printf 'Content-Type: text/plain\r\n\r\nslept\n'
EOF
chmod 755 "$W"/cgi-bin/* "$W/htdocs" "$W/cgi-bin"
chmod 644 "$W"/htdocs/*
head -c 1048576 /dev/zero | tr '\0' 'a' >"$W/1m.body"
cat >"$W/post.lua" <<EOF
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/octet-stream"
local f = io.open("$W/1m.body", "rb")
wrk.body = f:read("*a")
f:close()
EOF
cat >"$W/close.lua" <<'EOF'
wrk.headers["Connection"] = "close"
EOF

# --- Starting and stopping the stacks -----------------------------------------------------------
# Each start_* sets PORT_<stack> and ROOTS_<stack> (the pids whose trees are the stack).
declare -A PORT ROOTS KIND
KIND[apache]=apache KIND[nginx]=nginx KIND[weir]=weir KIND[testapp]=weir

cleanup() {
    local rc=$?
    for s in "${!ROOTS[@]}"; do stop_stack "$s" || true; done
    [[ -n ${SLOW_PIDS:-} ]] && kill $SLOW_PIDS 2>/dev/null || true
    [[ -n ${BGCPU_PID:-} ]] && kill "$BGCPU_PID" 2>/dev/null || true
    if [[ $rc != 0 ]]; then log "failed (exit $rc); logs and configs kept in $W"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() { # wait_for SECONDS COMMAND...
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

https_ok() { curl -sk -o /dev/null -w '%{http_code}' --max-time 3 "https://127.0.0.1:$1$2" | grep -q 200; }

apache_conf() { # apache_conf NAME PORT WORKERS tls|plain
    local name=$1 port=$2 workers=$3 mode=$4 d=$W/$1
    mkdir -p "$d/run" "$d/log"
    chown -R "$RUN_USER" "$d/run"
    {
        echo "# Debian's apache2.conf and mods-available/*.conf, prefork, on one loopback port."
        echo "ServerRoot /etc/apache2"
        echo "DefaultRuntimeDir $d/run"
        echo "PidFile $d/run/apache2.pid"
        echo "Mutex file:$d/run default"
        echo "Timeout 300"
        echo "KeepAlive On"
        echo "MaxKeepAliveRequests 100"
        echo "KeepAliveTimeout 5"
        echo "User $RUN_USER"
        echo "Group $RUN_USER"
        echo "HostnameLookups Off"
        echo "ErrorLog $d/log/error.log"
        echo "LogLevel warn"
        for m in mpm_prefork authz_core authz_host alias mime dir reqtimeout cgi; do
            echo "LoadModule ${m}_module /usr/lib/apache2/modules/mod_${m}.so"
        done
        echo "Include /etc/apache2/mods-available/mpm_prefork.conf"
        echo "Include /etc/apache2/mods-available/reqtimeout.conf"
        echo "Include /etc/apache2/mods-available/mime.conf"
        echo "Include /etc/apache2/mods-available/dir.conf"
        if [[ $mode == tls ]]; then
            echo "LoadModule socache_shmcb_module /usr/lib/apache2/modules/mod_socache_shmcb.so"
            echo "LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so"
            echo "Include /etc/apache2/mods-available/ssl.conf"
        fi
        echo "MaxRequestWorkers $workers"
        echo "Listen 127.0.0.1:$port"
        echo "ServerName 127.0.0.1"
        echo "DocumentRoot $W/htdocs"
        echo "<Directory />"
        echo "    Options FollowSymLinks"
        echo "    AllowOverride None"
        echo "    Require all denied"
        echo "</Directory>"
        echo "<Directory $W/htdocs>"
        echo "    Require all granted"
        echo "</Directory>"
        echo "ScriptAlias /cgi-bin/ $W/cgi-bin/"
        echo "<Directory $W/cgi-bin>"
        echo "    Options +ExecCGI"
        echo "    Require all granted"
        echo "</Directory>"
        if [[ $mode == tls ]]; then
            echo "SSLEngine on"
            echo "SSLCertificateFile $W/cert/server.crt"
            echo "SSLCertificateKeyFile $W/cert/server.key"
        fi
    } >"$d/apache2.conf"
}

start_apache_instance() { # NAME PORT WORKERS MODE; sets ROOTS[NAME]
    local name=$1 port=$2 workers=$3 mode=$4 d=$W/$1
    apache_conf "$name" "$port" "$workers" "$mode"
    APACHE_RUN_DIR=$d/run APACHE_LOCK_DIR=$d/run APACHE_LOG_DIR=$d/log APACHE_PID_FILE=$d/run/apache2.pid \
        APACHE_RUN_USER=$RUN_USER APACHE_RUN_GROUP=$RUN_USER \
        apache2 -f "$d/apache2.conf" -k start || die "apache2 $name did not start; see $d/log/error.log"
    wait_for 10 test -s "$d/run/apache2.pid" || die "apache2 $name wrote no pid file"
    ROOTS[$name]=$(cat "$d/run/apache2.pid")
    echo "${ROOTS[$name]}" >>"$W/ours"
}

start_apache() { # WORKERS
    local port
    port=$($PY freeport)
    start_apache_instance apache "$port" "$1" tls
    PORT[apache]=$port
    wait_for 10 https_ok "$port" /1k.bin || die "apache does not answer on $port"
}

start_nginx() { # WORKERS (of the Apache behind it)
    local d=$W/nginx port back
    port=$($PY freeport)
    back=$($PY freeport)
    start_apache_instance backend "$back" "$1" plain
    mkdir -p "$d/tmp"
    chown -R "$RUN_USER" "$d/tmp"
    cat >"$d/nginx.conf" <<EOF
# Debian's nginx.conf, with worker_connections raised for the attacks, terminating TLS in front
# of Apache prefork (plain HTTP/1.1 on loopback). No access log, as for the others.
user $RUN_USER;
worker_processes auto;
pid $d/nginx.pid;
worker_rlimit_nofile $NOFILE;
error_log $d/error.log warn;
events { worker_connections 16384; }
http {
    sendfile on;
    tcp_nopush on;
    types_hash_max_size 2048;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;
    ssl_prefer_server_ciphers on;
    access_log off;
    # h2load does not reconnect when a server ends a connection (nginx's default is after 1,000
    # requests), which would end its run early: effectively unlimited, for h1 and h2.
    keepalive_requests 1000000;
    client_max_body_size 2m;
    client_body_temp_path $d/tmp/body;
    proxy_temp_path $d/tmp/proxy;
    fastcgi_temp_path $d/tmp/fastcgi;
    uwsgi_temp_path $d/tmp/uwsgi;
    scgi_temp_path $d/tmp/scgi;
    upstream apache { server 127.0.0.1:$back; ${NGINX_UPSTREAM_KEEPALIVE:+keepalive $NGINX_UPSTREAM_KEEPALIVE;} }
    server {
        listen 127.0.0.1:$port ssl http2;
        ssl_certificate $W/cert/server.crt;
        ssl_certificate_key $W/cert/server.key;
        location / {
            proxy_pass http://apache;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$remote_addr;
        }
    }
}
EOF
    nginx -c "$d/nginx.conf" -g 'daemon on;' 2>"$d/start.log" || die "nginx did not start: $(cat "$d/start.log")"
    wait_for 10 test -s "$d/nginx.pid" || die "nginx wrote no pid file"
    ROOTS[nginx]=$(cat "$d/nginx.pid")
    echo "${ROOTS[nginx]}" >>"$W/ours"
    PORT[nginx]=$port
    wait_for 10 https_ok "$port" /1k.bin || die "nginx -> apache does not answer on $port"
}

start_weir() { # NAME BINARY WORKERS
    local name=$1 bin=$2 workers=$3 d=$W/$1
    mkdir -p "$d/run"
    cat >"$d/weir.conf" <<EOF
# The shipped conf/weir.conf's values, on an ephemeral loopback port.
Listen 127.0.0.1:0 https
Protocols h2 http/1.1
SSLCertificateFile $W/cert/server.crt
SSLCertificateKeyFile $W/cert/server.key
User $RUN_USER
Group $RUN_USER
RuntimeDir $d/run
PidFile $d/run/weir.pid
ErrorLog $d/error.log
DocumentRoot $W/htdocs
DirectoryIndex index.html
ScriptAlias /cgi-bin/ $W/cgi-bin/
StartServers 5
MinSpareServers 5
MaxSpareServers 10
MaxRequestWorkers $workers
ServerLimit 256
RequestReadTimeout handshake=10 header=20-40,MinRate=500 body=20,MinRate=500
KeepAlive On
KeepAliveTimeout 5
MaxKeepAliveRequests 100
${WEIR_EXTRA_CONF:-}
EOF
    "$bin" run -f "$d/weir.conf" >"$d/stdout.log" 2>&1 &
    ROOTS[$name]=$!
    wait_for 15 test -s "$d/run/listen" || die "weir ($name) did not start: $(tail -n 5 "$d/error.log" "$d/stdout.log")"
    PORT[$name]=$(sed -n 's/^https 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$d/run/listen" | head -n 1)
    wait_for 10 https_ok "${PORT[$name]}" /1k.bin || die "weir ($name) does not answer"
}

start_stack() { # STACK WORKERS
    case $1 in
    apache) start_apache "$2" ;;
    nginx) start_nginx "$2" ;;
    weir) start_weir weir "$WEIR_BIN" "$2" ;;
    testapp) start_weir testapp "$TESTAPP_BIN" "$2" ;;
    esac
    log "started $1 on 127.0.0.1:${PORT[$1]} (MaxRequestWorkers $2)"
}

stop_pids() { # wait until every pid in the trees is gone
    local pids
    pids=$($PY tree "$@" | tr '\n' ' ')
    kill -TERM "$@" 2>/dev/null || true
    for _ in $(seq 100); do
        local alive=0
        for p in $pids; do [[ -e /proc/$p ]] && ! grep -q '^State:\s*Z' "/proc/$p/status" 2>/dev/null && alive=1; done
        ((alive)) || return 0
        sleep 0.1
    done
    kill -KILL $pids 2>/dev/null || true
}

stop_stack() {
    local s=$1
    [[ -n ${ROOTS[$s]:-} ]] || return 0
    case $s in
    nginx)
        stop_pids "${ROOTS[nginx]}"
        unset 'ROOTS[nginx]'
        stop_stack backend
        ;;
    *)
        stop_pids "${ROOTS[$s]}"
        if [[ $s == weir || $s == testapp ]]; then wait "${ROOTS[$s]}" 2>/dev/null || true; fi
        ;;
    esac
    unset "ROOTS[$s]"
}

roots_of() { # the pids whose trees make up a stack (nginx: nginx and the Apache behind it)
    case $1 in
    nginx) echo "${ROOTS[nginx]} ${ROOTS[backend]}" ;;
    *) echo "${ROOTS[$1]}" ;;
    esac
}

worker_roots_of() { # the pids whose children are the request workers
    case $1 in
    nginx) echo "${ROOTS[backend]}" ;;
    *) echo "${ROOTS[$1]}" ;;
    esac
}

pool_kind_of() { # what the request workers are (nginx's pool is the Apache behind it)
    case $1 in
    nginx) echo apache ;;
    *) echo "${KIND[$1]}" ;;
    esac
}

record() { $PY record "$RESULTS" "$@"; }

# --- Phases ----------------------------------------------------------------------------------------
D=$BENCH_DURATION

phase_criterion() {
    log "criterion benches (cargo bench; ${BENCH_CRITERION_TIME}s each)"
    local args=(-- --warm-up-time 1 --measurement-time "$BENCH_CRITERION_TIME" --noplot)
    (cd "$REPO" && cargo bench -q -p weir-edge --bench head_parse --bench stage_clock "${args[@]}" &&
        cargo bench -q -p weir-conf --bench config_parse "${args[@]}") >"$W/out/criterion.txt" 2>&1 ||
        { log "cargo bench failed (see $W/out/criterion.txt)"; return 0; }
    # "name  time: [low mid high]" (criterion prints the name on its own line when long).
    python3 - "$W/out/criterion.txt" "$RESULTS" <<'EOF'
import json, re, sys
text = open(sys.argv[1]).read()
rows = re.findall(r"^(\S+)\s*\n?\s*time:\s+\[([\d.]+) (\S+) ([\d.]+) (\S+) ([\d.]+) (\S+)\]", text, re.M)
scale = {"ps": 1e-3, "ns": 1.0, "µs": 1e3, "us": 1e3, "ms": 1e6, "s": 1e9}
with open(sys.argv[2], "a") as out:
    for name, lo, lu, mid, mu, hi, hu in rows:
        out.write(json.dumps({"phase": "criterion", "bench": name, "low_ns": float(lo) * scale[lu],
                              "ns": float(mid) * scale[mu], "high_ns": float(hi) * scale[hu]}) + "\n")
EOF
}

phase_memory() {
    local s n held
    for s in $STACKS; do
        log "memory: $s at rest and holding idle TLS connections"
        start_stack "$s" 150
        sleep 3 # at rest: started, answered start_stack's one check request, nothing since
        $PY pss --workers "$(pool_kind_of "$s")" $(roots_of "$s") >"$W/out/mem-rest-$s.json"
        if [[ $s == nginx ]]; then # nginx's own workers, apart from Apache's
            $PY pss --workers nginx "${ROOTS[nginx]}" >"$W/out/mem-rest-nginx-front.json"
            record phase=memory stack=nginx-front rest=@"$W/out/mem-rest-nginx-front.json"
        fi
        # Then a few requests of each kind (so workers have run a CGI script), and rest again.
        for _ in $(seq 10); do https_ok "${PORT[$s]}" /1k.bin || true; https_ok "${PORT[$s]}" /cgi-bin/hello || true; done
        sleep 2
        $PY pss --workers "$(pool_kind_of "$s")" $(roots_of "$s") >"$W/out/mem-warm-$s.json"
        record phase=memory stack="$s" rest=@"$W/out/mem-rest-$s.json" warm=@"$W/out/mem-warm-$s.json"
        n=$MEM_CONNS
        [[ $s == apache ]] && n=$MEM_CONNS_APACHE
        rm -f "$W/out/hold-$s.json"
        $PY hold 127.0.0.1 "${PORT[$s]}" "$n" "$W/out/hold-$s.json" 60 &
        local holder=$!
        wait_for 120 test -s "$W/out/hold-$s.json" || log "holder for $s never got ready"
        sleep 2 # Apache's children started for the connections settle
        $PY pss --workers "$(pool_kind_of "$s")" $(roots_of "$s") >"$W/out/mem-held-$s.json"
        held=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["held"])' "$W/out/hold-$s.json" 2>/dev/null || echo 0)
        record phase=memory stack="$s" held_conns="$held" hold=@"$W/out/hold-$s.json" loaded=@"$W/out/mem-held-$s.json"
        kill "$holder" 2>/dev/null || true
        wait "$holder" 2>/dev/null || true
        stop_stack "$s"
    done
}

phase_burst() {
    local s
    for s in $STACKS; do
        log "burst: $BURST concurrent 1 s CGI requests against $s's pool of 5"
        start_stack "$s" 150
        sleep 3
        $PY burst "https://127.0.0.1:${PORT[$s]}/cgi-bin/sleep" "$BURST" "$W/out/burst-$s.json" \
            --pids "$(pool_kind_of "$s")" $(worker_roots_of "$s") >/dev/null
        record phase=burst stack="$s" burst=@"$W/out/burst-$s.json"
        stop_stack "$s"
    done
}

# One load run: run_load SCENARIO STACK REP; the clients' output goes to $W/out.
run_load() {
    local scen=$1 s=$2 rep=$3 port=${PORT[$2]} f="$W/out/$1-$2-$3" parsed
    local url="https://127.0.0.1:$port"
    case $scen in
    static_h1) wrk -t2 -c"$BENCH_CONNS" -d"${D}s" --latency "$url/1k.bin" >"$f.txt" 2>&1 || true
        parsed=$($PY parse-wrk "$f.txt") ;;
    static_h2) h2load -t2 -c8 -m$((BENCH_CONNS / 8)) -D "$D" "$url/1k.bin" >"$f.txt" 2>&1 || true
        parsed=$($PY parse-h2load "$f.txt") ;;
    handler_h1) wrk -t2 -c"$BENCH_CONNS" -d"${D}s" --latency "$url/app/x" >"$f.txt" 2>&1 || true
        parsed=$($PY parse-wrk "$f.txt") ;;
    handler_h2) h2load -t2 -c8 -m$((BENCH_CONNS / 8)) -D "$D" "$url/app/x" >"$f.txt" 2>&1 || true
        parsed=$($PY parse-h2load "$f.txt") ;;
    newtls)
        # ab opens a new connection, with a full TLS handshake (no resumption), per request. One
        # ab process is single-threaded and saturates near 2,100/s, so several run side by side.
        local i pids=() files=()
        for i in $(seq "$NEWTLS_CLIENTS"); do
            ab -q -c "$NEWTLS_CONC" -t "$D" -n 10000000 "$url/1k.bin" >"$f.$i.txt" 2>&1 &
            pids+=($!)
            files+=("$f.$i.txt")
        done
        wait "${pids[@]}" || true
        parsed=$($PY parse-ab "${files[@]}") ;;
    cgi) wrk -t2 -c16 -d"${D}s" --latency "$url/cgi-bin/hello" >"$f.txt" 2>&1 || true
        parsed=$($PY parse-wrk "$f.txt") ;;
    post_1m) wrk -t2 -c8 -d"${D}s" --latency -s "$W/post.lua" "$url/cgi-bin/post" >"$f.txt" 2>&1 || true
        parsed=$($PY parse-wrk "$f.txt") ;;
    esac
    record phase=load scenario="$scen" stack="$s" rep="$rep" result="$parsed"
    log "  $scen $s #$rep: $(python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(r.get("rps"), "req/s", r.get("errors"), "errors")' "$parsed")"
}

phase_load() {
    local s rep scen
    log "load: starting every stack with MaxRequestWorkers 150"
    for s in $STACKS; do start_stack "$s" 150; done
    [[ " $STACKS " == *" weir "* ]] && start_stack testapp 150
    # Which TLS each stack negotiates with an OpenSSL client (recorded with the results).
    for s in "${!PORT[@]}"; do
        record phase=tls stack="$s" negotiated="\"$(echo | openssl s_client -connect "127.0.0.1:${PORT[$s]}" -brief 2>&1 |
            sed -n 's/^\(Protocol version\|Ciphersuite\|Peer signature type\|Server Temp Key\): //p' | paste -sd ' ')\""
    done
    # Warm-up: every stack once, briefly.
    for s in "${!PORT[@]}"; do wrk -t1 -c8 -d1s "https://127.0.0.1:${PORT[$s]}/1k.bin" >/dev/null 2>&1 || true; done
    # Repetitions interleave the stacks, so drift (thermal, page cache) hits all of them alike.
    for scen in static_h1 static_h2 handler_h1 handler_h2 newtls cgi post_1m; do
        for rep in $(seq "$BENCH_REPEAT"); do
            for s in $STACKS; do
                case $scen in
                static_h2) [[ $s == apache ]] && continue ;; # mod_http2 refuses prefork
                handler_*) [[ $s == weir ]] || continue; s=testapp ;;
                esac
                run_load "$scen" "$s" "$rep"
            done
        done
    done
    if [[ $BENCH_PERF == 1 && -n ${PORT[weir]:-} ]] && command -v perf >/dev/null; then
        profile_weir
    fi
    for s in $STACKS; do
        $PY pss --workers "$(pool_kind_of "$s")" $(roots_of "$s") >"$W/out/mem-after-$s.json"
        record phase=memory stack="$s" after_load=@"$W/out/mem-after-$s.json"
    done
    for s in "${!ROOTS[@]}"; do stop_stack "$s"; done
}

# An extra run, not counted: where weir's edge spends its CPU serving the static file.
profile_weir() {
    local edge
    edge=$(for p in $($PY tree "${ROOTS[weir]}"); do
        if [[ $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null) == "weir: edge"* ]]; then echo "$p"; fi
    done | head -n 1) || true
    [[ -n $edge ]] || return 0
    log "profiling weir's edge (pid $edge) under the static keep-alive load"
    wrk -t2 -c"$BENCH_CONNS" -d"$((D + 2))s" "https://127.0.0.1:${PORT[weir]}/1k.bin" >"$W/out/perf-wrk.txt" 2>&1 &
    local client=$!
    sleep 1
    perf record -q -F 499 -g -p "$edge" -o "$W/out/perf.data" -- sleep "$D" >/dev/null 2>&1 || true
    wait "$client" || true
    {
        echo "# perf record -F 499 -g -p EDGE during: $(grep -h 'Requests/sec' "$W/out/perf-wrk.txt")"
        echo "# self time by symbol (top 25):"
        perf report -i "$W/out/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null |
            grep -E '^ +[0-9.]+%' | head -n 25 || true
        echo "# inclusive time (children), top 25:"
        perf report -i "$W/out/perf.data" --children --sort sym --stdio -g caller 2>/dev/null |
            grep -E '^ +[0-9.]+%' | head -n 25 || true
    } >"$W/out/perf.txt"
}

run_attack() { # STACK MODE(H|B|X)
    local s=$1 mode=$2 port=${PORT[$1]} f="$W/out/attack-$2-$1" args i
    local url="https://127.0.0.1:$port"
    # slowhttptest does its TLS handshakes in one thread: ATTACK_PROCS of them share the work.
    local per=$(((ATTACK_CONNS + ATTACK_PROCS - 1) / ATTACK_PROCS))
    local rate=$(((ATTACK_RATE + ATTACK_PROCS - 1) / ATTACK_PROCS))
    local ramp=$(((ATTACK_CONNS + ATTACK_RATE - 1) / ATTACK_RATE))
    local wait_max=$((2 * ramp + 4))
    local length=$((wait_max + ATTACK_PROBE_SECONDS + 5))
    case $mode in
    H) args=(-H -c "$per" -r "$rate" -i 10 -x 24 -t GET -u "$url/1k.bin") ;;
    B) args=(-B -c "$per" -r "$rate" -i 10 -x 10 -s 8192 -t POST -u "$url/cgi-bin/post") ;;
    X) args=(-X -c "$per" -r "$rate" -w 512 -y 1024 -n 5 -z 32 -k 3 -u "$url/128k.bin") ;;
    esac
    SLOW_PIDS=
    for i in $(seq "$ATTACK_PROCS"); do
        nice -n 10 slowhttptest "${args[@]}" -p 3 -l "$length" >"$f.$i.log" 2>&1 &
        SLOW_PIDS+=" $!"
    done
    # The probe starts once the server holds 95 % of the attack's connections, or once their
    # number stops growing (Apache: its children and listen backlog are full), at most wait_max.
    local held=0 t0=$SECONDS ticks=0 history=()
    while ((SECONDS - t0 < wait_max)); do
        sleep 0.5
        held=$(ss -Htn state established "( sport = :$port )" | wc -l)
        history+=("$held")
        ticks=$((ticks + 1))
        ((held * 100 >= ATTACK_CONNS * 95)) && break
        if ((SECONDS - t0 >= ramp && ticks > 6)) && ((held <= history[ticks - 7])); then break; fi
    done
    local waited=$((SECONDS - t0))
    $PY probe "$url/cgi-bin/hello" "$ATTACK_PROBE_SECONDS" "$f.json" >/dev/null
    local held_end
    held_end=$(ss -Htn state established "( sport = :$port )" | wc -l)
    kill $SLOW_PIDS 2>/dev/null || true
    wait $SLOW_PIDS 2>/dev/null || true
    SLOW_PIDS=
    record phase=attack mode="$mode" stack="$s" held_start="$held" held_end="$held_end" \
        ramp_seconds="$waited" probe=@"$f.json"
    log "  -$mode $s: $held (after ${waited}s) -> $held_end attack connections; probe $(cat "$f.json")"
}

phase_attack() {
    local s mode
    for mode in $ATTACK_MODES; do
        for s in $STACKS; do
            log "attack -$mode: $ATTACK_CONNS connections against $s (MaxRequestWorkers $ATTACK_WORKERS)"
            start_stack "$s" "$ATTACK_WORKERS"
            run_attack "$s" "$mode"
            stop_stack "$s"
        done
    done
}

# One address (127.0.0.2) holds silent and ClientHello-stalling connections, reopening any the
# server closes; meanwhile a client on another address (127.0.0.3) makes full TLS requests.
phase_handshake() {
    local s port f held held_end attacker
    for s in $HANDSHAKE_STACKS; do
        log "handshake: $HANDSHAKE_SILENT silent + $HANDSHAKE_STALLING stalling connections from 127.0.0.2 against $s"
        start_stack "$s" "$ATTACK_WORKERS"
        port=${PORT[$s]} f="$W/out/handshake-$s"
        rm -f "$f.ready" "$f.ready.end"
        nice -n 10 $PY stall 127.0.0.1 "$port" 127.0.0.2 "$HANDSHAKE_SILENT" "$HANDSHAKE_STALLING" \
            "$f.ready" "$((HANDSHAKE_PROBE_SECONDS + 150))" >"$f.log" 2>&1 &
        attacker=$!
        SLOW_PIDS=$attacker
        wait_for 120 test -s "$f.ready" || log "the attack on $s never opened all its connections"
        held=$(ss -Htn state established "( sport = :$port and dst 127.0.0.2 )" | wc -l)
        PROBE_SOURCE=127.0.0.3 $PY probe "https://127.0.0.1:$port/1k.bin" "$HANDSHAKE_PROBE_SECONDS" "$f.json" >/dev/null
        held_end=$(ss -Htn state established "( sport = :$port and dst 127.0.0.2 )" | wc -l)
        kill "$attacker" 2>/dev/null || true
        wait "$attacker" 2>/dev/null || true
        SLOW_PIDS=
        record phase=handshake stack="$s" silent="$HANDSHAKE_SILENT" stalling="$HANDSHAKE_STALLING" \
            held_start="$held" held_end="$held_end" attack=@"$f.ready" probe=@"$f.json"
        log "  $s: $held -> $held_end attack connections held; probe $(cat "$f.json")"
        stop_stack "$s"
    done
}

# Bodies far larger than memory, through weir only (the peers buffer to disk in their own ways):
# a 1 GiB POST into a CGI script that counts it, and a 1 GiB CGI response read at 10 MB/s
# (~100 s). The figure is the growth of VmHWM (peak RSS) over its value just before each
# transfer, for the edge and for the worker that served it; target: each within 32 MiB.
BIGBODY_SIZE=${BIGBODY_SIZE:-1073741824}
BIGBODY_RATE=${BIGBODY_RATE:-10M}
phase_bigbody() {
    log "bigbody: a $BIGBODY_SIZE-byte POST through CGI, then a response of that size read at $BIGBODY_RATE/s"
    printf '#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n"\nwc -c\n' >"$W/cgi-bin/count"
    printf '#!/bin/sh\nprintf "Content-Type: application/octet-stream\\r\\n\\r\\n"\nhead -c %s /dev/zero\n' \
        "$BIGBODY_SIZE" >"$W/cgi-bin/big"
    chmod 755 "$W/cgi-bin/count" "$W/cgi-bin/big"
    truncate -s "$BIGBODY_SIZE" "$W/big.body" # sparse: reads as zeros, takes no disk
    # The default LimitRequestBody (64 MiB) refuses such a body, and one source may spill only
    # a quarter of SpillLimit (256 MiB of the default 1 GiB): room for one such body.
    WEIR_EXTRA_CONF="LimitRequestBody $((BIGBODY_SIZE * 2))
SpillLimit $((BIGBODY_SIZE * 4))" start_weir weir "$WEIR_BIN" 10
    sleep 2 # idle: started, one check request answered
    python3 "$TOOLS/bigbody.py" "${ROOTS[weir]}" "https://127.0.0.1:${PORT[weir]}" "$W/big.body" \
        "$BIGBODY_SIZE" "$BIGBODY_RATE" "$W/out/bigbody.json" >/dev/null
    record phase=bigbody result=@"$W/out/bigbody.json"
    rm -f "$W/big.body"
    stop_stack weir
}

# Chaos: CHAOS_SECONDS of steady load on weir while a random edge, pool master or worker is
# SIGKILLed every ~CHAOS_KILL_EVERY s and `weir reload` runs every ~CHAOS_RELOAD_EVERY s
# (tools/chaos.py). Failed requests (and whether a kill was under way), recovery times, leaked
# scoreboard slots and orphaned processes go to results.jsonl and RESULTS.md.
CHAOS_SECONDS=${CHAOS_SECONDS:-600}
phase_chaos() {
    log "chaos: $CHAOS_SECONDS s of load; SIGKILL every ~${CHAOS_KILL_EVERY:-4} s, reload every ~${CHAOS_RELOAD_EVERY:-5} s"
    # Every process of this weir carries the mark in its environment (CGI scripts carry the
    # script directory in SCRIPT_FILENAME): the orphan count is this run's only.
    local mark="$W/cgi-bin/"
    WEIR_CHAOS_RUN=$mark WEIR_EXTRA_CONF="<Location /server-status>
SetHandler server-status
Require local
</Location>" start_weir weir "$WEIR_BIN" 32
    python3 "$TOOLS/chaos.py" "${ROOTS[weir]}" "https://127.0.0.1:${PORT[weir]}" "$WEIR_BIN" \
        "$W/weir/weir.conf" "$mark" "$CHAOS_SECONDS" "$W/out/chaos.json" >"$W/out/chaos.txt"
    stop_stack weir
    python3 "$TOOLS/chaos.py" orphans "$mark" "$W/out/chaos-orphans.json"
    record phase=chaos result=@"$W/out/chaos.json" after_stop=@"$W/out/chaos-orphans.json"
    log "  chaos: $(python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); print(c["requests"], "requests,", c["failed_in_flight_on_a_kill"], "failed in flight on a kill,", c["failed_otherwise"], "otherwise;", sum(c["kills"].values()), "kills,", c["reloads"], "reloads;", c["leaked_slots"], "leaked slots,", c["orphans_during"] + c["orphans_at_end"], "orphans")' "$W/out/chaos.json")"
}

# For poking at the stacks by hand: BENCH_PHASES=serve benches/run.sh (Ctrl-C stops them).
phase_serve() {
    local s
    for s in $STACKS; do start_stack "$s" "${SERVE_WORKERS:-150}"; done
    [[ " $STACKS " == *" weir "* ]] && start_stack testapp "${SERVE_WORKERS:-150}"
    for s in "${!PORT[@]}"; do echo "$s https://127.0.0.1:${PORT[$s]}/ pids $(roots_of "$s")"; done >"$W/serving"
    cat "$W/serving" >&2
    # In the background and waited for, so that Ctrl-C (or kill) runs the cleanup at once.
    sleep "${SERVE_SECONDS:-3600}" &
    wait $!
    exit 0
}

# --- Run ---------------------------------------------------------------------------------------------
log "work directory $W; phases: $PHASES"
RUN_START=$(date +%s)
for phase in $PHASES; do
    t0=$(date +%s)
    echo "$phase" >"$W/phase"
    "phase_$phase"
    record phase=timing name="$phase" seconds=$(($(date +%s) - t0))
done
RUN_SECONDS=$(($(date +%s) - RUN_START))

# --- Metadata and the report -------------------------------------------------------------------------
{
    echo "date=$(date -u +%Y-%m-%dT%H:%MZ)"
    echo "quick=$QUICK"
    echo "duration=$BENCH_DURATION"
    echo "repeat=$BENCH_REPEAT"
    echo "conns=$BENCH_CONNS"
    echo "attack_conns=$ATTACK_CONNS"
    echo "attack_rate=$ATTACK_RATE"
    echo "attack_procs=$ATTACK_PROCS"
    echo "attack_workers=$ATTACK_WORKERS"
    echo "attack_probe_seconds=$ATTACK_PROBE_SECONDS"
    echo "mem_conns=$MEM_CONNS"
    echo "handshake_silent=$HANDSHAKE_SILENT"
    echo "handshake_stalling=$HANDSHAKE_STALLING"
    echo "handshake_probe_seconds=$HANDSHAKE_PROBE_SECONDS"
    echo "mem_conns_apache=$MEM_CONNS_APACHE"
    echo "burst=$BURST"
    echo "chaos_seconds=$CHAOS_SECONDS"
    echo "newtls_clients=$NEWTLS_CLIENTS"
    echo "newtls_conc=$NEWTLS_CONC"
    echo "phases=$PHASES"
    echo "stacks=$STACKS"
    echo "run_seconds=$RUN_SECONDS"
    echo "build_seconds=$BUILD_SECONDS"
    echo "total_seconds=$(($(date +%s) - START_ALL))"
    echo "cpu=$(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1)"
    echo "cores=$(nproc)"
    echo "memory=$(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
    echo "kernel=$(uname -r)"
    echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
    # BENCH_COMMIT names the commit when the tree is an export (git archive) rather than a clone.
    echo "commit=${BENCH_COMMIT:-$(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$REPO" && git diff --quiet HEAD 2>/dev/null || echo ' (with uncommitted changes)')}"
    echo "weir=$("$WEIR_BIN" -V 2>/dev/null | head -n 1)"
    echo "apache=$(apache2 -v | sed -n 's/^Server version: //p')"
    echo "nginx=$(nginx -v 2>&1 | sed 's/^nginx version: //')"
    echo "openssl=$(openssl version)"
    echo "wrk=$(dpkg-query -W -f '${Version}' wrk)"
    echo "h2load=$(h2load --version | head -n 1)"
    echo "ab=$(dpkg-query -W -f '${Version}' apache2-utils)"
    echo "slowhttptest=$(dpkg-query -W -f '${Version}' slowhttptest)"
    echo "rustc=$(rustc --version)"
    echo "workdir=$W"
} >"$W/meta.txt"
kill "$BGCPU_PID" 2>/dev/null || true
BGCPU_PID=
$PY report "$RESULTS" "$W/meta.txt" "$OUT_MD" "$W/bgcpu.jsonl" "$W/out/perf.txt"
cp "$RESULTS" "$OUT_JSONL"
log "wrote $OUT_MD in $((RUN_SECONDS / 60)) min $((RUN_SECONDS % 60)) s (raw figures: $OUT_JSONL, client output: $W/out)"
