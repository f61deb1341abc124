#!/usr/bin/env bash
# HTTPS: [server] tls_cert and tls_key, served with libmicrohttpd's GnuTLS
# support and driven with curl against certificates this file makes with
# openssl (Debian package openssl). Cases: create and wait over HTTPS,
# plain HTTP to the HTTPS port (closed, no crash, no warning), SIGHUP with
# new files (new connections see the new certificate, an open wait is not
# dropped), SIGHUP with a broken key (the old certificate stays), a bad
# pair at start (exit 2), and large headers and bodies through TLS.

. "$(dirname "$0")/lib.sh"

CERTS=$AW_TMP/certs
SETUP_ERR=""
mkdir -p "$CERTS"

# mkcert NAME: a self-signed certificate for localhost and 127.0.0.1 in
# $CERTS/NAME.crt with its key in $CERTS/NAME.key.
mkcert() {
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
        -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
        -keyout "$CERTS/$1.key" -out "$CERTS/$1.crt" 2>"$CERTS/$1.err"
}

if ! command -v openssl >/dev/null; then
    SETUP_ERR="openssl is not installed (Debian package openssl)"
elif ! mkcert one || ! mkcert two; then
    SETUP_ERR="openssl req failed: $(head -c 300 "$CERTS/one.err" "$CERTS/two.err")"
fi
# Both are trusted, so a case can tell them apart by fingerprint only.
cat "$CERTS/one.crt" "$CERTS/two.crt" >"$CERTS/ca.pem" 2>/dev/null
export CURL_CA_BUNDLE=$CERTS/ca.pem

need_certs() {
    [ -z "$SETUP_ERR" ] || fail "$SETUP_ERR"
}

# fp FILE: the SHA-256 fingerprint of the certificate in FILE.
fp() {
    openssl x509 -noout -fingerprint -sha256 -in "$1" | cut -d= -f2
}

# served_fp: the fingerprint of the certificate a new connection to the
# current daemon is served (empty if the handshake fails).
served_fp() {
    openssl s_client -connect "127.0.0.1:$PORT" -servername localhost </dev/null \
        2>/dev/null | openssl x509 -noout -fingerprint -sha256 2>/dev/null | cut -d= -f2
}


# hup: sends the current daemon SIGHUP and waits (5 s) for the log line that
# ends the reload, whichever way it went.
hup() {
    local pat='SIGHUP: (configuration reloaded|.*keeping the running configuration)' before i
    before=$(grep -Ec "$pat" "$DLOG")
    kill -HUP "$DPID"
    for ((i = 0; i < 100; i++)); do
        [ "$(grep -Ec "$pat" "$DLOG")" -gt "$before" ] && return 0
        sleep 0.05
    done
    fail "no end of the reload in the log within 5 s: $(tail -n 3 "$DLOG" | tr '\n' '|')"
}

# tls_conf CERT KEY [MORE]: a [server] section serving CERT and KEY.
tls_conf() {
    printf '[server]\ntls_cert = %s\ntls_key = %s\n%s\n' "$1" "$2" "${3:-}"
}

# start_tls_daemon CERT KEY [MORE]: a daemon of the case's own, over HTTPS.
start_tls_daemon() {
    start_daemon "$(tls_conf "$1" "$2" "${3:-}")"
    BASE=https://127.0.0.1:$PORT
}

# start_refused CONF_TEXT [ARGS]: runs the daemon with CONF_TEXT, which must
# exit within 10 s; sets RC and ERRTEXT (its stderr).
start_refused() {
    local conf=$CASE_TMP/refused.conf
    printf '%s\n' "$1" >"$conf"
    shift
    timeout 10 "$AWAITD" --config "$conf" --listen 127.0.0.1:0 "$@" \
        >/dev/null 2>"$CASE_TMP/refused.err" </dev/null
    RC=$?
    ERRTEXT=$(cat "$CASE_TMP/refused.err")
}

if [ -z "$SETUP_ERR" ]; then
    start_main_daemon "$(tls_conf "$CERTS/one.crt" "$CERTS/one.key" 'log_level = debug')"
    BASE=https://127.0.0.1:${PORT:-0}
else
    MAIN_ERR=$SETUP_ERR
fi

case_https_create_and_wait() {
    req GET /healthz
    assert_status 200
    create '{"kind":"sleep","args":{"seconds":0.2}}'
    req GET "/v1/tasks/$ID/wait?timeout=10"
    assert_status 200
    assert_jq .state succeeded
    # The name in the certificate works too, not only the address.
    BASE=https://localhost:$PORT
    req GET "/v1/tasks/$ID"
    assert_status 200
    assert_jq .id "$ID"
    grep -q "serving HTTPS: TLS certificate CN=localhost, expires .*, sha256 $(fp "$CERTS/one.crt")" \
        "$DLOG" || fail "no 'serving HTTPS' line with the certificate's fingerprint in the log"
}

case_plain_http_to_the_https_port_is_closed_cleanly() {
    local t0 el
    t0=$(now)
    BASE=http://127.0.0.1:$PORT REQ_MAX_TIME=10 req GET /healthz
    el=$(elapsed "$t0")
    assert_eq "$STATUS" 000 "HTTP status of a plain request to the HTTPS port"
    [ "$CURL_RC" != 28 ] || fail "the plain request hung until curl's timeout$(ctx)"
    assert_less "$el" 5 "seconds until the plain request was closed"
    # Again with bytes that are not even HTTP, then the daemon still serves.
    printf 'garbage\r\n\r\n' | timeout 5 curl -sS -m 4 "telnet://127.0.0.1:$PORT" \
        >/dev/null 2>&1
    req GET /healthz
    assert_status 200
    kill -0 "$DPID" 2>/dev/null || fail "the daemon is gone"
    # A client's failed handshake is not an operator's warning.
    if grep -q 'level=warn.*handshake' "$DLOG"; then
        fail "a failed handshake was logged as a warning: $(grep -m1 handshake "$DLOG")"
    fi
}

case_large_headers_and_body_through_tls() {
    # MHD's per-connection pool (8 KB) holds the request headers; GnuTLS
    # keeps its records in buffers of its own, so the same limits hold.
    local big
    big=$(head -c 6000 /dev/zero | tr '\0' a)
    req -H "X-Big: $big" GET /healthz
    assert_status 200
    head -c 700000 /dev/zero | tr '\0' b | jq -Rc '{kind: "sleep", args: {seconds: 0, pad: .}}' \
        >"$CASE_TMP/big.json"
    req --data-file "$CASE_TMP/big.json" POST /v1/tasks
    assert_status 201
    req GET "/v1/tasks/$(jqb .id)"
    assert_status 200
    assert_jq '.args.pad | length' 700000
}

case_sighup_with_new_files_serves_the_new_certificate() {
    need_certs
    local d=$CASE_TMP/files fp1 fp2 waitpid
    mkdir -p "$d"
    cp "$CERTS/one.crt" "$d/cert.pem"
    cp "$CERTS/one.key" "$d/key.pem"
    start_tls_daemon "$d/cert.pem" "$d/key.pem"
    fp1=$(fp "$CERTS/one.crt")
    fp2=$(fp "$CERTS/two.crt")
    assert_eq "$(served_fp)" "$fp1" "certificate served before the reload"
    # A wait open across the reload is answered on its TLS connection.
    create '{"kind":"sleep","args":{"seconds":1.5}}'
    curl -sS -o "$CASE_TMP/wait.out" -w '%{http_code}' --max-time 20 \
        "$BASE/v1/tasks/$ID/wait?timeout=15" >"$CASE_TMP/wait.code" 2>"$CASE_TMP/wait.err" &
    waitpid=$!
    cp "$CERTS/two.crt" "$d/cert.pem"
    cp "$CERTS/two.key" "$d/key.pem"
    hup
    grep -q "SIGHUP: new connections get the TLS certificate .*sha256 $fp2" "$DLOG" ||
        fail "no log line naming the new certificate: $(grep SIGHUP "$DLOG" | tr '\n' '|')"
    assert_eq "$(served_fp)" "$fp2" "certificate served after the reload"
    req GET /healthz
    assert_status 200
    wait "$waitpid"
    assert_eq "$(cat "$CASE_TMP/wait.code")" 200 \
        "status of the wait open across the reload ($(cat "$CASE_TMP/wait.err"))"
    assert_eq "$(jq -r .state "$CASE_TMP/wait.out")" succeeded "state the wait answered"
    # A reload with unchanged files keeps what is served and says nothing new.
    hup
    assert_eq "$(grep -c 'new connections get the' "$DLOG")" 1 "certificate changes logged"
    assert_eq "$(served_fp)" "$fp2" "certificate served after a reload with the same files"
    stop_daemon
}

case_sighup_with_a_broken_key_keeps_the_old_certificate() {
    need_certs
    local d=$CASE_TMP/files fp1
    mkdir -p "$d"
    cp "$CERTS/one.crt" "$d/cert.pem"
    cp "$CERTS/one.key" "$d/key.pem"
    start_tls_daemon "$d/cert.pem" "$d/key.pem"
    fp1=$(fp "$CERTS/one.crt")
    # A truncated key: half of the PEM file.
    head -c 800 "$CERTS/one.key" >"$d/key.pem"
    hup
    grep -q 'SIGHUP: tls_key .*; still serving the certificate read from' "$DLOG" ||
        fail "no warning about the broken key: $(grep SIGHUP "$DLOG" | tr '\n' '|')"
    assert_eq "$(served_fp)" "$fp1" "certificate served after a reload with a broken key"
    req GET /healthz
    assert_status 200
    # The key of another certificate: refused as well.
    cp "$CERTS/two.key" "$d/key.pem"
    hup
    grep -q 'is not the key of the certificate.*still serving' "$DLOG" ||
        fail "no warning about the mismatched key: $(grep SIGHUP "$DLOG" | tr '\n' '|')"
    assert_eq "$(served_fp)" "$fp1" "certificate served after a reload with a mismatched key"
    # Fixed files are picked up by the next reload.
    cp "$CERTS/two.crt" "$d/cert.pem"
    hup
    grep -q 'SIGHUP: new connections get the' "$DLOG" ||
        fail "no log line naming the new certificate: $(grep SIGHUP "$DLOG" | tr '\n' '|')"
    assert_eq "$(served_fp)" "$(fp "$CERTS/two.crt")" "certificate served once the files are fixed"
    stop_daemon
}

case_sighup_cannot_turn_tls_off() {
    need_certs
    start_tls_daemon "$CERTS/one.crt" "$CERTS/one.key"
    printf '[server]\nlog_level = info\n' >"$DDIR/awaitd.conf"
    hup
    grep -q 'SIGHUP: tls_cert and tls_key were removed; that needs a restart, still serving HTTPS' \
        "$DLOG" || fail "no warning that TLS stays on: $(grep SIGHUP "$DLOG" | tr '\n' '|')"
    req GET /healthz
    assert_status 200
    assert_eq "$(served_fp)" "$(fp "$CERTS/one.crt")" "certificate served after the reload"
    stop_daemon
}

case_a_bad_pair_at_start_exits_2() {
    need_certs
    start_refused "$(tls_conf "$CERTS/one.crt" "$CERTS/two.key")"
    assert_eq "$RC" 2 "exit status with the key of another certificate"
    [[ $ERRTEXT == *"is not the key of the certificate in tls_cert $CERTS/one.crt"* ]] ||
        fail "unclear message for a mismatched pair: $ERRTEXT"
    start_refused "$(tls_conf "$CERTS/one.crt" "$CERTS/two.key")" --check-config
    assert_eq "$RC" 2 "--check-config exit status with a mismatched pair"
    [[ $ERRTEXT == *"is not the key of the certificate"* ]] ||
        fail "--check-config: unclear message for a mismatched pair: $ERRTEXT"
    start_refused "$(tls_conf "$CERTS/one.crt" "$CERTS/none.key")"
    assert_eq "$RC" 2 "exit status with a missing key file"
    [[ $ERRTEXT == *"tls_key $CERTS/none.key: cannot read: No such file or directory"* ]] ||
        fail "unclear message for a missing key: $ERRTEXT"
    start_refused "$(tls_conf "$CERTS/one.key" "$CERTS/one.key")"
    assert_eq "$RC" 2 "exit status with a key as the certificate"
    [[ $ERRTEXT == *"tls_cert $CERTS/one.key: expected PEM certificates"* ]] ||
        fail "unclear message for a key given as the certificate: $ERRTEXT"
    start_refused "$(printf '[server]\ntls_cert = %s\n' "$CERTS/one.crt")"
    assert_eq "$RC" 2 "exit status with tls_cert alone"
    [[ $ERRTEXT == *"tls_cert and tls_key go together"* ]] ||
        fail "unclear message for tls_cert without tls_key: $ERRTEXT"
    start_refused "$(tls_conf "$CERTS/one.crt" "$CERTS/one.key")" --check-config
    assert_eq "$RC" 0 "--check-config exit status with a good pair ($ERRTEXT)"
}

run_cases
