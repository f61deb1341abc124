#!/usr/bin/env bash
# The http kind against a real HTTP server on loopback (helpers/http_target.c):
# GET and POST with headers and body, status as data, fail_on_status,
# transport failures, cancel closing the connection at once, the task
# timeout, the transfer cap (1,000 tasks, never more than 50 connections at
# the server), the allow-list for hosts and for the address a name resolves
# to; TLS verification against an HTTPS server (helpers/https_target.py,
# python3) with a throwaway CA made by openssl: refused by default, trusted
# through [http] ca_file, skipped by [http] insecure; the http metrics and
# /v1/info's limits.http.

. "$(dirname "$0")/lib.sh"

build_helpers http_target

# start_target LOG: starts helpers/http_target logging to LOG and sets
# TARGET_PORT (empty if it did not say its port within 10 s). Its pid
# joins the daemons the cleanup kills; disowned, so that kill prints nothing.
start_target() {
    local fifo
    fifo=$(mktemp -u "$AW_TMP/port.XXXXXX")
    : >"$1"
    TARGET_PORT=""
    mkfifo "$fifo"
    "$HELPERS/http_target" "$1" >"$fifo" 2>"$1.err" &
    track_pid $!
    disown
    # The helper prints its port once it listens; read blocks until then.
    read -r -t 10 TARGET_PORT <"$fifo"
}

# The target server, started before the daemon: its port goes into the
# daemon's allow-list.
TLOG=$AW_TMP/target.log
TPORT=""
if [ -z "$HELPER_ERR" ]; then
    start_target "$TLOG"
    TPORT=$TARGET_PORT
fi
T=http://127.0.0.1:$TPORT

# TLS: a throwaway CA and a server certificate for IP 127.0.0.1 signed by
# it (and a second CA that signed nothing), then the HTTPS server with it.
# TLS_ERR says why not when a piece is missing; need_tls fails the cases.
TLS=$AW_TMP/tls
TLS_ERR=""
HPORT=""
mkdir -p "$TLS"
mkca() { # mkca NAME
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -days 2 -subj "/CN=awaitd test $1" -keyout "$TLS/$1.key" -out "$TLS/$1.pem" \
        2>>"$TLS/openssl.err"
}
if ! command -v openssl >/dev/null; then
    TLS_ERR="openssl is not installed (Debian package openssl)"
elif ! command -v python3 >/dev/null; then
    TLS_ERR="python3 is not installed (Debian package python3)"
elif ! mkca ca || ! mkca other-ca ||
    ! openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -subj /CN=127.0.0.1 -keyout "$TLS/server.key" -out "$TLS/server.csr" \
        2>>"$TLS/openssl.err" ||
    ! printf 'subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\nextendedKeyUsage = serverAuth\n' \
        >"$TLS/server.ext" ||
    ! openssl x509 -req -days 2 -in "$TLS/server.csr" -CA "$TLS/ca.pem" \
        -CAkey "$TLS/ca.key" -CAcreateserial -extfile "$TLS/server.ext" \
        -out "$TLS/server.pem" 2>>"$TLS/openssl.err"; then
    TLS_ERR="openssl could not make the certificates: $(tail -c 300 "$TLS/openssl.err")"
else
    mkfifo "$TLS/port"
    python3 "$(dirname "$0")/helpers/https_target.py" "$TLS/server.pem" "$TLS/server.key" \
        >"$TLS/port" 2>"$TLS/server.err" &
    track_pid $!
    disown
    read -r -t 10 HPORT <"$TLS/port"
    [ -n "$HPORT" ] || TLS_ERR="https_target.py did not say its port: $(tail -c 300 "$TLS/server.err")"
fi
H=https://127.0.0.1:$HPORT

need_tls() {
    [ -z "$TLS_ERR" ] || fail "$TLS_ERR"
}

# localhost (any port) passes the host rule, but only 127.0.0.1 on the
# target's port and on port 1 (nothing listens there) passes the address
# rule: http://localhost:<awaitd's own port>/ is the DNS trick to refuse.
# The HTTPS server is allowed too: this daemon verifies with the system's CAs.
start_main_daemon "[kinds]
http = true
[http]
allow = 127.0.0.1:$TPORT 127.0.0.1:1 localhost 127.0.0.1:${HPORT:-2}
max_transfers = 50
max_response_bytes = 1048576"

# http_body URL [JSON_FIELDS]: a create body for an http task.
http_body() {
    printf '{"kind":"http","args":{"url":"%s"%s}}' "$1" "${2:+,$2}"
}

# run_http URL [JSON_FIELDS] [TASK_FIELDS]: creates the task and waits (10 s) for its end.
run_http() {
    create "{\"kind\":\"http\",\"args\":{\"url\":\"$1\"${2:+,$2}}${3:+,$3}}"
    req GET "/v1/tasks/$ID/wait?timeout=10"
    assert_status 200
    assert_jq .done true
}

case_get_with_headers() {
    need_helpers
    run_http "$T/echo" '"headers":{"X-Test":"hello"}'
    assert_jq .state succeeded
    assert_jq .result.status 200
    assert_jq .result.body 'GET|hello|'
    assert_jq '.result.headers["x-reply"]' yes
    assert_jq '.result.headers["x-multi"]' 'a, b'
    assert_jq .result.truncated false
}

case_post_with_body() {
    need_helpers
    run_http "$T/echo" '"method":"POST","headers":{"X-Test":"p"},"body":"a=1&b=2"'
    assert_jq .state succeeded
    assert_jq .result.body 'POST|p|a=1&b=2'
}

case_404_is_data() {
    need_helpers
    run_http "$T/status/404"
    assert_jq .state succeeded
    assert_jq .result.status 404
    assert_jq .result.body 'status 404'
}

case_fail_on_status() {
    need_helpers
    run_http "$T/status/503" '"fail_on_status":true'
    assert_jq .state failed
    assert_jq .error.type http_status
    assert_jq .result.status 503
}

case_connection_refused() {
    run_http "http://127.0.0.1:1/"
    assert_jq .state failed
    assert_jq .error.type http_error
}

case_invalid_utf8_and_truncation() {
    need_helpers
    run_http "$T/latin1"
    assert_jq .result.body "$(printf 'caf\357\277\275')"
    run_http "$T/big" '"max_response_bytes":1000'
    assert_jq .state succeeded
    assert_jq .result.truncated true
    assert_jq '.result.body | length' 1000
}

case_redirects_off_unless_asked() {
    need_helpers
    run_http "$T/redirect"
    assert_jq .result.status 302
    run_http "$T/redirect" '"follow_redirects":true'
    assert_jq .result.status 200
    assert_jq .result.body 'GET||'
}

# The bound is measured from the cancel's finished_at (the daemon's clock,
# the same wall clock as the target's, ms): from the cancel itself, not from
# the spawn of the curl that asks for it, which a loaded machine can delay.
case_cancel_closes_the_connection() {
    need_helpers
    local before slow t0 closed_at cancelled_at
    before=$(grep -c '^closed' "$TLOG")
    slow=$(grep -c '^slow' "$TLOG")
    create "$(http_body "$T/slow")"
    await_line_count '^slow' "$((slow + 1))"
    t0=$(($(now) / 1000))
    req POST "/v1/tasks/$ID/cancel"
    assert_status 200
    assert_jq .state cancelled
    cancelled_at=$(jqb '.finished_at | (.[0:19] + "Z" | fromdateiso8601) * 1000 + (.[20:23] | tonumber)')
    await_line_count '^closed' "$((before + 1))"
    closed_at=$(grep '^closed' "$TLOG" | tail -n1 | cut -d' ' -f2)
    assert_between "$((closed_at - t0))" 0 10000 "ms from asking for the cancel to the server seeing the close"
    assert_less "$((closed_at - cancelled_at))" 100 "ms from the cancel (finished_at) to the server seeing the close"
}

case_timeout() {
    need_helpers
    run_http "$T/slow" "" '"timeout":0.3'
    assert_jq .state timed_out
    assert_jq .error.type timeout
}

# create_many N BODY: creates N tasks with BODY through one curl process
# (50 requests in parallel) and sets IDS to their ids.
create_many() {
    local i
    printf '%s' "$2" >"$CASE_TMP/create.json"
    for ((i = 0; i < $1; i++)); do
        [ $i = 0 ] || echo next
        printf 'url = "%s/v1/tasks"\ndata-binary = "@%s"\nheader = "Content-Type: application/json"\nsilent\nshow-error\nmax-time = 30\n' \
            "$BASE" "$CASE_TMP/create.json"
    done >"$CASE_TMP/create.curl"
    curl -Z --parallel-max 50 -K "$CASE_TMP/create.curl" >"$CASE_TMP/created" \
        2>"$CASE_TMP/create.err"
    mapfile -t IDS < <(jq -r '.id // empty' <"$CASE_TMP/created")
    [ "${#IDS[@]}" = "$1" ] ||
        fail "created ${#IDS[@]} of $1 tasks: $(tail -c 300 "$CASE_TMP/create.err") $(grep -m1 -o '"error":{[^}]*}' "$CASE_TMP/created")"
}

# 1,000 tasks at once under [http] max_transfers = 50: every one succeeds,
# the target never has more than 50 connections open at once (idle
# keep-alive ones count), and the cap bites: tasks wait pending, and the
# whole takes at least 1000 / 50 rounds of the target's 200 ms answer.
case_transfer_cap() {
    need_helpers
    local pending t0 took max
    t0=$(now)
    create_many 1000 "$(http_body "$T/delay")"
    req GET '/v1/tasks?state=pending&kind=http&limit=1000'
    pending=$(jqb '.tasks | length')
    req --max-time 70 POST /v1/wait "{\"ids\":$(ids_json "${IDS[@]}"),\"timeout\":60}"
    took=$(elapsed "$t0")
    assert_status 200
    assert_jq '.pending | length' 0
    assert_jq '[.done[] | select(.state == "succeeded" and .result.body == "delayed")] | length' 1000
    # Asked through awaitd: a connection of its own cache, not a new one.
    run_http "$T/stats"
    max=$(jqb .result.body | sed -n 's/.*max=\([0-9]*\).*/\1/p')
    note "most connections at the server: $max; pending after the creates: $pending; ${took} s"
    assert_between "${max:-x}" 10 51 "connections open at once at the server"
    assert_less 0 "$pending" "tasks left pending by the cap after 1000 creates"
    assert_between "$took" 3.9 30 "seconds for 1000 transfers of 200 ms, 50 at once"
}

case_disallowed_host_is_403() {
    req POST /v1/tasks "$(http_body "http://example.com/")"
    assert_error 403 forbidden
    req POST /v1/tasks "$(http_body "http://127.0.0.1:$PORT/v1/info")"
    assert_error 403 forbidden
    req POST /v1/tasks "$(http_body "file:///etc/passwd")"
    assert_error 400 invalid_request
}

case_name_resolving_to_loopback_is_refused() {
    # localhost is on the list as a host, but its address 127.0.0.1 is
    # allowed only on the target's port: not on awaitd's own.
    run_http "http://localhost:$PORT/v1/info"
    assert_jq .state failed
    assert_jq .error.type http_error
    assert_jq '.error.message | test("refused: it is a loopback")' true
}

# TLS: verification is on unless the config turns it off, and with the
# system's CAs the throwaway CA is unknown.
case_https_unknown_ca_fails() {
    need_tls
    run_http "$H/"
    assert_jq .state failed
    assert_jq .error.type http_error
    note "error: $(jqb .error.message)"
    assert_jq '.error.message | test("certificate"; "i")' true
    assert_jq .result null
}

# [http] ca_file = the CA: the same server is trusted, and still only for
# the name on its certificate (localhost is not on it).
case_https_ca_file_trusts_the_ca() {
    need_tls
    start_daemon "[kinds]
http = true
[http]
allow = 127.0.0.1:$HPORT localhost:$HPORT
ca_file = $TLS/ca.pem"
    run_http "$H/"
    assert_jq .state succeeded
    assert_jq .result.status 200
    assert_jq .result.body 'tls ok'
    run_http "https://localhost:$HPORT/"
    assert_jq .state failed
    assert_jq .error.type http_error
    assert_jq '.error.message | test("certificate|subject name|host ?name"; "i")' true
    stop_daemon
}

# ca_file is what is trusted: another CA's file does not make the server's
# certificate pass (ca_file does not turn verification off).
case_https_other_ca_file_fails() {
    need_tls
    start_daemon "[kinds]
http = true
[http]
allow = 127.0.0.1:$HPORT
ca_file = $TLS/other-ca.pem"
    run_http "$H/"
    assert_jq .state failed
    assert_jq .error.type http_error
    assert_jq '.error.message | test("certificate"; "i")' true
    stop_daemon
}

case_https_insecure_skips_verification() {
    need_tls
    start_daemon "[kinds]
http = true
[http]
allow = 127.0.0.1:$HPORT
insecure = true"
    run_http "$H/"
    assert_jq .state succeeded
    assert_jq .result.status 200
    assert_jq .result.body 'tls ok'
    stop_daemon
}

# metrics_now: BODY = the current daemon's /metrics.
metrics_now() {
    req GET /metrics
    assert_status 200
}

# awaitd_http_results_total{class} grows by one as each task ends, in the
# class of its status ("error": no status, the transport failed).
case_metrics_results_by_class() {
    need_helpers
    local c before=() after=() classes=(2xx 3xx 4xx 5xx error) i
    metrics_now
    for c in "${classes[@]}"; do
        before+=("$(metric awaitd_http_results_total class="$c")")
    done
    run_http "$T/echo"
    metrics_now
    assert_eq "$(metric awaitd_http_results_total class=2xx)" "$((before[0] + 1))" \
        "results_total{class=2xx} after a 200"
    run_http "$T/redirect"
    run_http "$T/status/404"
    metrics_now
    assert_eq "$(metric awaitd_http_results_total class=4xx)" "$((before[2] + 1))" \
        "results_total{class=4xx} after a 404"
    run_http "$T/status/503"
    run_http "http://127.0.0.1:1/"
    metrics_now
    assert_eq "$(metric awaitd_http_results_total class=error)" "$((before[4] + 1))" \
        "results_total{class=error} after a refused connection"
    for i in "${!classes[@]}"; do
        after+=("$(metric awaitd_http_results_total class="${classes[$i]}")")
        assert_eq "${after[$i]}" "$((before[i] + 1))" \
            "awaitd_http_results_total{class=${classes[$i]}} after one task of each class"
    done
    grep -q '^# TYPE awaitd_http_results_total counter' <<<"$BODY" ||
        fail "no '# TYPE awaitd_http_results_total counter' line in /metrics"
}

# cancel_all ID...: cancels each task (200 expected).
cancel_all() {
    local id
    for id in "$@"; do
        req POST "/v1/tasks/$id/cancel"
        assert_status 200
    done
}

# await_in_flight N: bounded poll (5 s) of /metrics until
# awaitd_http_transfers_in_flight is N.
await_in_flight() {
    local i v
    for ((i = 0; i < 100; i++)); do
        metrics_now
        v=$(metric awaitd_http_transfers_in_flight)
        [ "$v" = "$1" ] && return 0
        sleep 0.05
    done
    fail "awaitd_http_transfers_in_flight still $v, not $1, after 5 s"
}

# awaitd_http_transfers_in_flight: 3 transfers the target holds open are
# 3 in flight; cancelled, 0 again. The tasks are cancelled before the
# verdict, so that a failure leaves nothing running for the next cases.
case_metrics_transfers_in_flight() {
    need_helpers
    local slow ids=() i held typed
    metrics_now
    assert_eq "$(metric awaitd_http_transfers_in_flight)" 0 "transfers in flight before"
    slow=$(grep -c '^slow' "$TLOG")
    for i in 1 2 3; do
        create "$(http_body "$T/slow")"
        ids+=("$ID")
    done
    await_line_count '^slow' "$((slow + 3))"
    metrics_now
    held=$(metric awaitd_http_transfers_in_flight)
    typed=$(grep -c '^# TYPE awaitd_http_transfers_in_flight gauge' <<<"$BODY")
    cancel_all "${ids[@]}"
    assert_eq "$typed" 1 "'# TYPE awaitd_http_transfers_in_flight gauge' lines in /metrics"
    assert_eq "$held" 3 "transfers in flight with 3 held by the target"
    await_in_flight 0
}

# Under a cap of 2, four held transfers are 2 in flight and 2 tasks pending:
# the gauge counts transfers, not http tasks.
case_metrics_in_flight_under_the_cap() {
    need_helpers
    local slow ids=() i held
    start_daemon "[kinds]
http = true
[http]
allow = 127.0.0.1:$TPORT
max_transfers = 2"
    slow=$(grep -c '^slow' "$TLOG")
    for i in 1 2 3 4; do
        create "$(http_body "$T/slow")"
        ids+=("$ID")
    done
    await_line_count '^slow' "$((slow + 2))"
    metrics_now
    held=$(metric awaitd_http_transfers_in_flight)
    req GET '/v1/tasks?state=pending&kind=http'
    assert_jq '.tasks | length' 2
    assert_eq "$held" 2 "transfers in flight under max_transfers = 2"
    cancel_all "${ids[@]}"
    await_in_flight 0
    stop_daemon
}

# /v1/info: limits.http shows the [http] section (the main daemon's
# values); limits.notify says webhooks are off without [notify] allow.
case_info_limits_http() {
    req GET /v1/info
    assert_status 200
    assert_jq .kinds.http true
    assert_jq '.limits.http.allow' "[\"127.0.0.1:$TPORT\",\"127.0.0.1:1\",\"localhost\",\"127.0.0.1:${HPORT:-2}\"]"
    assert_jq .limits.http.max_transfers 50
    assert_jq .limits.http.max_response_bytes 1048576
    local k
    for k in max_redirects max_request_body_bytes max_request_headers connect_timeout_seconds; do
        assert_jq ".limits.http.$k | type == \"number\" and . > 0" true
    done
    assert_jq .limits.notify.enabled false
}

# Each field of limits.http is its own key of [http]: a daemon with a
# distinct value for every one shows each in its place.
case_info_limits_http_follow_the_config() {
    start_daemon "[kinds]
http = true
[http]
allow = *.example.com api.example.org:8443 127.0.0.1:9
max_transfers = 7
max_response_bytes = 12345
max_redirects = 3
max_request_body_bytes = 5000
max_request_headers = 9
connect_timeout_seconds = 4"
    req GET /v1/info
    assert_status 200
    assert_jq .limits.http.allow '["*.example.com","api.example.org:8443","127.0.0.1:9"]'
    assert_jq '.limits.http | [.max_transfers, .max_response_bytes, .max_redirects, .max_request_body_bytes, .max_request_headers, .connect_timeout_seconds]' \
        '[7,12345,3,5000,9,4]'
    stop_daemon
}

# await_line_count REGEX N: bounded poll (5 s) until TLOG has N lines matching REGEX.
await_line_count() {
    local i
    for ((i = 0; i < 500; i++)); do
        [ "$(grep -Ec -- "$1" "$TLOG")" -ge "$2" ] && return 0
        sleep 0.01
    done
    fail "the target's log has fewer than $2 lines matching /$1/ after 5 s"
}

run_cases
