#!/usr/bin/env bash
# Completion notifications (webhooks) against a real receiver on loopback
# (helpers/webhook_recv.py, a python3 http.server that logs every request as
# a JSON line and checks the signature with hmac): one signed delivery of
# the final task object, retries with a growing and capped backoff on 5xx,
# 429, refused connections and timeouts, at once failed on other statuses,
# every terminal state delivered, an idempotent repeat not delivered again,
# deletes mid-delivery, the create refusals, no signature without a secret,
# secret_file, an https receiver trusted through ca_file (or insecure), the
# transfer cap, a slow receiver that delays nothing else, SIGTERM during a
# slow delivery, /metrics and /v1/info, and deliveries that survive a
# restart (clean and kill -9) while the receiver is down. The restart cases
# pass without running in the memory-only pass (AW_MEMORY=1).

. "$(dirname "$0")/lib.sh"

RECV=$(dirname "$0")/helpers/webhook_recv.py
SECRET='s3cret-k3y-for-the-tests'

# start_receiver LOG [ARGS...]: starts webhook_recv.py logging to LOG (ARGS:
# a secret, --port N); sets RECV_PORT and RECV_PID (the python process's own
# pid, from its pid file: python3 may be a wrapper that forks), returns 1 if
# it did not say its port within 10 s. Both pids join the daemons the
# cleanup kills.
start_receiver() {
    local log=$1 fifo
    shift
    fifo=$(mktemp -u "$AW_TMP/recv-port.XXXXXX")
    mkfifo "$fifo"
    : >"$log"
    rm -f "$log.pid"
    python3 "$RECV" --pidfile "$log.pid" "$log" "$@" >"$fifo" 2>"$log.err" &
    track_pid $!
    disown
    RECV_PORT=""
    # The receiver prints its port once it listens (after writing its pid);
    # read blocks until then.
    read -r -t 10 RECV_PORT <"$fifo"
    rm -f "$fifo"
    RECV_PID=$(cat "$log.pid" 2>/dev/null)
    [ -n "$RECV_PID" ] && track_pid "$RECV_PID"
    [ -n "$RECV_PORT" ]
}

# free_port: a loopback port nothing listens on (bound, then closed).
free_port() {
    python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# The receiver the file shares, started before the daemon: its port goes
# into the daemon's [notify] allow, with DEAD, a port where nothing listens.
RLOG=$AW_TMP/recv.log
RECV_ERR=""
if ! start_receiver "$RLOG" "$SECRET"; then
    RECV_ERR="webhook_recv.py did not start: $(head -c 300 "$RLOG.err")"
fi
RPORT=$RECV_PORT
RMAIN_PID=$RECV_PID
R=http://127.0.0.1:$RPORT
DEAD=$(free_port)

start_main_daemon "[queue:solo]
concurrency = 1
[notify]
allow = 127.0.0.1:$RPORT 127.0.0.1:$DEAD
secret = $SECRET
max_attempts = 3
min_backoff_seconds = 0.2
max_backoff_seconds = 1
max_transfers = 4
timeout_seconds = 10"

need_recv() {
    [ -z "$RECV_ERR" ] || fail "$RECV_ERR"
    kill -0 "$RMAIN_PID" 2>/dev/null ||
        fail "the shared webhook receiver (pid $RMAIN_PID) is gone; its stderr: $(tail -c 400 "$RLOG.err")"
}

# notify_conf [KEY = VALUE lines]: a [notify] section for a daemon of a
# case's own, on the shared receiver, quick retries, no secret.
notify_conf() {
    printf '[notify]\nallow = 127.0.0.1:%s\nmin_backoff_seconds = 0.2\nmax_backoff_seconds = 1\n%s\n' \
        "$RPORT" "${1:-}"
}

# create_notified URL [ARGS] [NOTIFY_FIELDS] [TASK_FIELDS]: creates a sleep
# task (ARGS default {"seconds":0}) with "notify": {"url": URL, NOTIFY_FIELDS};
# sets ID and DID, the delivery id awaitd must send.
create_notified() {
    local args=${2:-}
    [ -n "$args" ] || args='{"seconds":0}'
    create "{\"kind\":\"sleep\",\"args\":$args,\"notify\":{\"url\":\"$1\"${3:+,$3}}${4:+,$4}}"
    DID=d_${ID#t_}
}

# deliveries DID [LOG]: the receiver's log lines (JSON) for delivery DID.
deliveries() {
    jq -Rc --arg d "$1" 'fromjson? | select(.headers["x-awaitd-delivery"] == $d)' \
        "${2:-$RLOG}"
}

# await_deliveries DID N [SECONDS] [LOG]: bounded poll (default 10 s) until
# the receiver has logged N requests for DID; leaves them in LINES.
await_deliveries() {
    local d=$1 n=$2 secs=${3:-10} log=${4:-$RLOG} end
    end=$(($(now) + secs * 1000000))
    while :; do
        LINES=$(deliveries "$d" "$log")
        [ -n "$LINES" ] && [ "$(printf '%s\n' "$LINES" | wc -l)" -ge "$n" ] && return 0
        [ "$(now)" -lt "$end" ] || break
        sleep 0.02
    done
    fail "the receiver got $(printf '%s' "$LINES" | grep -c .) requests for $d within $secs s, expected $n; its log ends: $(tail -n 3 "$log" | cut -c1-400)"
}

# assert_deliveries DID N [LOG]: the receiver has logged exactly N requests for DID.
assert_deliveries() {
    LINES=$(deliveries "$1" "${3:-$RLOG}")
    assert_eq "$(printf '%s' "$LINES" | grep -c .)" "$2" "requests the receiver got for $1"
}

# line K EXPR: jq EXPR applied to the K-th (1-based) of LINES.
line() {
    printf '%s\n' "$LINES" | sed -n "$1p" | jq -rc "$2"
}

# assert_line K EXPR EXPECTED: the K-th of LINES gives EXPECTED.
assert_line() {
    local got
    got=$(line "$1" "$2")
    [ "$got" = "$3" ] || fail "delivery request $1: $2: expected $3, got $got; the request: $(printf '%s\n' "$LINES" | sed -n "$1p" | cut -c1-500)"
}

# await_notify ID COND [SECONDS]: bounded poll (default 10 s) of GET
# /v1/tasks/ID until jq COND holds of its "notify" field.
await_notify() {
    local id=$1 cond=$2 secs=${3:-10} end
    end=$(($(now) + secs * 1000000))
    while :; do
        req GET "/v1/tasks/$id"
        [ "$(jqb ".notify | $cond")" = true ] && return 0
        [ "$(now)" -lt "$end" ] || break
        sleep 0.05
    done
    fail "task $id: notify never had $cond within $secs s (last: $(jqb .notify))$(ctx)"
}

# assert_notify STATE ATTEMPTS LAST_STATUS: the last answer's notify field
# (last_error must be null when delivered, a non-empty string otherwise).
assert_notify() {
    assert_jq .notify.state "$1"
    assert_jq .notify.attempts "$2"
    assert_jq .notify.last_status "$3"
    if [ "$1" = delivered ]; then
        assert_jq .notify.last_error null
    else
        assert_jq '.notify.last_error | type == "string" and length > 0' true
    fi
    assert_jq '.notify | has("headers")' false
}

# gaps: the seconds between the arrivals of LINES, one a line.
gaps() {
    printf '%s\n' "$LINES" | jq -s -r '[.[].t] | . as $t | range(1; length) | ($t[.] - $t[. - 1]) * 1000 | round / 1000'
}

# crash: kill -9 the current daemon and wait (5 s) until it is reaped.
crash() {
    local i
    kill -KILL "$DPID" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
        [ -s "$DDIR/exit" ] && return 0
        sleep 0.05
    done
    fail "daemon $DPID was not reaped within 5 s of SIGKILL"
}

case_delivered_once_with_the_final_object_signed() {
    need_recv
    create_notified "$R/ok" '{"seconds":0.1,"result":{"n":42,"s":"caf\u00e9"}}' \
        '"headers":{"X-Trace":"abc-123"}'
    assert_jq .notify.url "$R/ok"
    assert_jq .notify.state pending
    assert_jq .notify.attempts 0
    assert_jq .notify.last_status null
    assert_jq .notify.last_error null
    assert_jq '.notify | has("headers")' false
    await_deliveries "$DID" 1
    # Long enough for a wrong retry (backoff 0.1 to 0.2 s) to show.
    sleep 1
    assert_deliveries "$DID" 1
    assert_line 1 .method POST
    assert_line 1 .path /ok
    assert_line 1 '.headers["content-type"] | startswith("application/json")' true
    assert_line 1 '.headers["x-awaitd-delivery"]' "$DID"
    assert_line 1 '.headers["x-awaitd-timestamp"] | test("^[0-9]+$")' true
    assert_line 1 '(.headers["x-awaitd-timestamp"] | tonumber) - .t | fabs < 60' true
    assert_line 1 '.headers["x-awaitd-signature"] | test("^sha256=[0-9a-f]{64}$")' true
    assert_line 1 .verified true
    assert_line 1 '.headers["x-trace"]' abc-123
    assert_line 1 .body.id "$ID"
    assert_line 1 .body.state succeeded
    assert_line 1 .body.done true
    assert_line 1 .body.result '{"n":42,"s":"café"}'
    assert_line 1 '.body.finished_at | type' string
    assert_line 1 .body.notify.state pending
    assert_line 1 .body.notify.attempts 0
    assert_line 1 '.body.notify | has("headers")' false
    await_notify "$ID" '.state == "delivered"'
    assert_notify delivered 1 200
    assert_jq .notify.url "$R/ok"
    # The body was the final object: the task as GET shows it, but for notify.
    local sent got
    sent=$(line 1 '.body | del(.notify)' | jq -S -c .)
    got=$(jqb 'del(.notify)' | jq -S -c .)
    assert_eq "$sent" "$got" "the body POSTed, without notify, against GET /v1/tasks/$ID"
}

case_fails_twice_then_delivered_on_the_third_attempt() {
    need_recv
    create_notified "$R/fail/2" '{"seconds":0,"result":"third time"}'
    await_deliveries "$DID" 3
    await_notify "$ID" '.state != "pending"'
    assert_notify delivered 3 200
    sleep 0.5
    assert_deliveries "$DID" 3
    # Every request for this task carried the same delivery id.
    assert_eq "$(jq -Rc --arg id "$ID" 'fromjson? | select(.body.id? == $id)' "$RLOG" | grep -c .)" 3 \
        "requests whose body is task $ID"
    local k
    for k in 1 2 3; do
        assert_line "$k" .verified true
        assert_line "$k" .body.state succeeded
        assert_line "$k" .body.result 'third time'
        assert_line "$k" .body.notify.attempts "$((k - 1))"
    done
    assert_line 1 .status 500
    assert_line 2 .status 500
    assert_line 3 .status 200
    # Backoff 0.2 then 0.4 s, each with jitter down to half; the lower
    # bounds leave a margin for when the receiver's thread logged each one.
    local g
    mapfile -t g < <(gaps)
    note "gaps between the attempts: ${g[*]} s"
    assert_between "${g[0]}" 0.07 3 "seconds from the 1st attempt to the 2nd"
    assert_between "${g[1]}" 0.15 3 "seconds from the 2nd attempt to the 3rd"
}

case_statuses_that_end_or_retry() {
    need_recv
    local code id=() did=()
    for code in 404 302 500 429 204; do
        create_notified "$R/status/$code"
        id+=("$ID")
        did+=("$DID")
    done
    await_notify "${id[0]}" '.state != "pending"'
    assert_notify failed 1 404
    await_notify "${id[1]}" '.state != "pending"'
    assert_notify failed 1 302
    await_notify "${id[2]}" '.state != "pending"'
    assert_notify failed 3 500
    await_notify "${id[3]}" '.state != "pending"'
    assert_notify failed 3 429
    await_notify "${id[4]}" '.state != "pending"'
    assert_notify delivered 1 204
    sleep 0.5
    assert_deliveries "${did[0]}" 1
    assert_deliveries "${did[1]}" 1
    assert_deliveries "${did[2]}" 3
    assert_deliveries "${did[3]}" 3
    assert_deliveries "${did[4]}" 1
}

case_connection_refused_is_retried_then_failed() {
    local t0 took
    t0=$(now)
    create_notified "http://127.0.0.1:$DEAD/ok"
    await_notify "$ID" '.state != "pending"'
    took=$(elapsed "$t0")
    assert_notify failed 3 null
    # Two backoffs of at least 0.1 and 0.2 s lay between the three attempts.
    assert_between "$took" 0.25 10 "seconds from create to the delivery failed"
}

case_failed_timed_out_and_cancelled_tasks_are_delivered() {
    need_recv
    local failed timed blocker
    create_notified "$R/ok" '{"seconds":0,"fail":"boom"}'
    failed=$ID
    create_notified "$R/ok" '{"seconds":30}' "" '"timeout":0.2'
    timed=$ID
    # A pending task: solo runs one at a time and the blocker holds it.
    create '{"kind":"sleep","args":{"seconds":30},"queue":"solo"}'
    blocker=$ID
    create_notified "$R/ok" '{"seconds":0}' "" '"queue":"solo"'
    assert_jq .state pending
    req POST "/v1/tasks/$ID/cancel"
    assert_status 200
    assert_jq .state cancelled
    await_deliveries "$DID" 1
    assert_line 1 .body.id "$ID"
    assert_line 1 .body.state cancelled
    assert_line 1 .body.error.type cancelled
    assert_line 1 .body.started_at null
    assert_line 1 .verified true
    await_deliveries "d_${failed#t_}" 1
    assert_line 1 .body.state failed
    assert_line 1 .body.error.type task_error
    assert_line 1 .body.error.message boom
    await_deliveries "d_${timed#t_}" 1
    assert_line 1 .body.state timed_out
    assert_line 1 .body.error.type timeout
    await_notify "$timed" '.state == "delivered"'
    req POST "/v1/tasks/$blocker/cancel"
    assert_status 200
}

case_a_slow_receiver_delays_neither_tasks_nor_other_deliveries() {
    need_recv
    local slow t0 took
    create_notified "$R/slow/5"
    slow=$ID
    await_deliveries "$DID" 1
    # A task without notify, while the slow delivery is in flight.
    t0=$(now)
    create '{"kind":"sleep","args":{"seconds":0}}'
    await_state "$ID" succeeded
    took=$(elapsed "$t0")
    assert_less "$took" 1 "seconds for a sleep 0 task during a slow delivery"
    # A second delivery, to a receiver that answers at once.
    t0=$(now)
    create_notified "$R/ok"
    await_deliveries "$DID" 1 5
    took=$(elapsed "$t0")
    assert_less "$took" 1 "seconds from create to the fast delivery's arrival"
    await_notify "$ID" '.state == "delivered"'
    req GET "/v1/tasks/$slow"
    assert_jq .notify.state pending
    assert_jq .notify.attempts 0
}

case_an_idempotent_repeat_is_not_delivered_again() {
    need_recv
    local first
    create -H 'Idempotency-Key: notify-once' \
        "{\"kind\":\"sleep\",\"args\":{\"seconds\":0},\"notify\":{\"url\":\"$R/ok\"}}"
    first=$ID
    DID=d_${ID#t_}
    await_notify "$first" '.state == "delivered"'
    req -H 'Idempotency-Key: notify-once' POST /v1/tasks \
        "{\"kind\":\"sleep\",\"args\":{\"seconds\":0},\"notify\":{\"url\":\"$R/ok\"}}"
    assert_status 200
    assert_jq .id "$first"
    assert_notify delivered 1 200
    sleep 0.5
    assert_deliveries "$DID" 1
}

# A finished task may be deleted while its delivery waits for a retry or
# is in flight: 204, and nothing of it is left to use (the sanitized
# build's clean_shutdown shows a use after free).
case_deleting_a_task_with_a_delivery_under_way() {
    need_recv
    create_notified "$R/status/503"
    await_deliveries "$DID" 1
    req DELETE "/v1/tasks/$ID"
    assert_status 204
    req GET "/v1/tasks/$ID"
    assert_error 404 not_found
    create_notified "$R/slow/1"
    await_deliveries "$DID" 1
    req DELETE "/v1/tasks/$ID"
    assert_status 204
    req GET "/v1/tasks/$ID"
    assert_error 404 not_found
    # Past the slow answer and the retries: the daemon still serves.
    sleep 1.5
    req GET /healthz
    assert_status 200
    create_notified "$R/ok"
    await_notify "$ID" '.state == "delivered"'
}

case_refusals_create_nothing() {
    need_recv
    local before bad
    count_tasks
    before=$COUNT
    # Not on [notify] allow: another host, awaitd's own port, localhost.
    for bad in "http://example.com/hook" "http://127.0.0.1:$PORT/v1/info" \
        "http://localhost:$RPORT/ok"; do
        req POST /v1/tasks "{\"kind\":\"sleep\",\"args\":{\"seconds\":0},\"notify\":{\"url\":\"$bad\"}}"
        assert_error 403 forbidden
    done
    # Bad shapes.
    for bad in "{\"url\":\"ftp://127.0.0.1:$RPORT/ok\"}" \
        "{\"url\":\"file:///etc/passwd\"}" \
        '{}' \
        '{"url":5}' \
        '{"url":null}' \
        "\"$R/ok\"" \
        "[\"$R/ok\"]" \
        '7' \
        "{\"url\":\"$R/ok\",\"headers\":[]}" \
        "{\"url\":\"$R/ok\",\"headers\":\"X-A: b\"}" \
        "{\"url\":\"$R/ok\",\"headers\":{\"X-A\":1}}" \
        "{\"url\":\"$R/ok\",\"headers\":{\"X-A\":null}}" \
        "{\"url\":\"$R/ok\",\"headers\":{\"X-Awaitd-Delivery\":\"d_forged\"}}" \
        "{\"url\":\"$R/ok\",\"headers\":{\"x-awaitd-signature\":\"sha256=00\"}}" \
        "{\"url\":\"$R/ok\",\"headers\":{\"Content-Type\":\"text/plain\"}}"; do
        req POST /v1/tasks "{\"kind\":\"sleep\",\"args\":{\"seconds\":0},\"notify\":$bad}"
        assert_error 400 invalid_request
    done
    count_tasks
    assert_eq "$COUNT" "$before" "tasks after the refused creates"
    create '{"kind":"sleep","args":{"seconds":0},"notify":null}'
    assert_jq .notify null
    create '{"kind":"sleep","args":{"seconds":0}}'
    assert_jq 'has("notify")' true
    assert_jq .notify null
    count_tasks
    assert_eq "$COUNT" "$((before + 2))" "tasks after two creates"
}

case_webhooks_off_when_notify_allow_is_empty() {
    need_recv
    local conf
    for conf in "" "[notify]
allow ="; do
        start_daemon "$conf"
        req POST /v1/tasks "{\"kind\":\"sleep\",\"args\":{\"seconds\":0},\"notify\":{\"url\":\"$R/ok\"}}"
        assert_error 403 forbidden
        count_tasks
        assert_eq "$COUNT" 0 "tasks after the refused create"
        create '{"kind":"sleep","args":{"seconds":0},"notify":null}'
        assert_jq .notify null
        req GET /v1/info
        assert_jq .limits.notify.enabled false
        stop_daemon
    done
}

case_no_secret_no_signature() {
    need_recv
    start_daemon "$(notify_conf)"
    create_notified "$R/ok"
    await_deliveries "$DID" 1
    assert_line 1 '.headers | has("x-awaitd-signature")' false
    assert_line 1 '.headers["x-awaitd-delivery"]' "$DID"
    assert_line 1 '.headers["x-awaitd-timestamp"] | test("^[0-9]+$")' true
    # The receiver knows a secret: a missing signature is not verified.
    assert_line 1 .verified false
    assert_line 1 .body.id "$ID"
    await_notify "$ID" '.state == "delivered"'
    assert_notify delivered 1 200
    req GET /v1/info
    assert_jq .limits.notify.enabled true
    assert_jq .limits.notify.signed false
    stop_daemon
}

case_secret_file_signs() {
    need_recv
    printf '%s' "$SECRET" >"$CASE_TMP/secret"
    chmod 600 "$CASE_TMP/secret"
    start_daemon "$(notify_conf "secret_file = $CASE_TMP/secret")"
    create_notified "$R/ok"
    await_deliveries "$DID" 1
    assert_line 1 .verified true
    req GET /v1/info
    assert_jq .limits.notify.signed true
    case $BODY in *"$SECRET"*) fail "/v1/info shows the secret: $BODY" ;; esac
    await_notify "$ID" '.state == "delivered"'
    stop_daemon
}

# An https receiver with a certificate of its own (for IP 127.0.0.1): it is
# trusted through [notify] ca_file or not at all, unless insecure = true.
case_https_receiver_needs_its_ca() {
    need_recv
    local c=$CASE_TMP log=$CASE_TMP/tls.log tport tls_conf
    command -v openssl >/dev/null || fail "openssl is not installed (Debian package openssl)"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
        -addext "subjectAltName=IP:127.0.0.1" -keyout "$c/key.pem" -out "$c/cert.pem" \
        2>"$c/openssl.err" || fail "openssl req failed: $(head -c 300 "$c/openssl.err")"
    start_receiver "$log" "$SECRET" --tls "$c/cert.pem" "$c/key.pem" ||
        fail "the https receiver did not start: $(head -c 300 "$log.err")"
    tport=$RECV_PORT
    tls_conf="[notify]
allow = 127.0.0.1:$tport
secret = $SECRET
max_attempts = 2
min_backoff_seconds = 0.2
max_backoff_seconds = 1"
    start_daemon "$tls_conf
ca_file = $c/cert.pem"
    create_notified "https://127.0.0.1:$tport/ok"
    await_deliveries "$DID" 1 10 "$log"
    assert_line 1 .verified true
    assert_line 1 .body.id "$ID"
    await_notify "$ID" '.state != "pending"'
    assert_notify delivered 1 200
    stop_daemon
    # The system's CAs do not know this certificate: a TLS failure is a
    # connection failure, retried, and nothing reaches the receiver.
    start_daemon "$tls_conf"
    create_notified "https://127.0.0.1:$tport/ok"
    await_notify "$ID" '.state != "pending"'
    assert_notify failed 2 null
    assert_deliveries "$DID" 0 "$log"
    stop_daemon
    start_daemon "$tls_conf
insecure = true"
    create_notified "https://127.0.0.1:$tport/ok"
    await_notify "$ID" '.state != "pending"'
    assert_notify delivered 1 200
    stop_daemon
    kill "$RECV_PID" 2>/dev/null ||
        fail "the https receiver (pid $RECV_PID) was gone before the end; its stderr: $(tail -c 400 "$log.err")"
}

case_backoff_grows_and_is_capped() {
    need_recv
    start_daemon "$(notify_conf 'max_attempts = 6')"
    create_notified "$R/status/503"
    await_deliveries "$DID" 6 20
    await_notify "$ID" '.state != "pending"'
    assert_notify failed 6 503
    # Nominal delays 0.2, 0.4, 0.8, then the cap: 1, 1; each between half
    # and all of it. Uncapped, the 4th and 5th would be 1.6 and 3.2 at most,
    # 0.8 and 1.6 at least. The lower bounds leave a margin for when the
    # receiver's thread logged each arrival.
    local g
    mapfile -t g < <(gaps)
    note "gaps between the attempts: ${g[*]} s"
    assert_eq "${#g[@]}" 5 "gaps between 6 attempts"
    assert_between "${g[0]}" 0.07 1.5 "seconds before the 2nd attempt"
    assert_between "${g[1]}" 0.15 1.5 "seconds before the 3rd attempt"
    assert_between "${g[2]}" 0.3 1.5 "seconds before the 4th attempt"
    assert_between "${g[3]}" 0.4 1.5 "seconds before the 5th attempt (capped)"
    assert_between "${g[4]}" 0.4 1.5 "seconds before the 6th attempt (capped)"
    awk -v a="${g[0]}" -v b="${g[2]}" 'BEGIN { exit !(b > a) }' ||
        fail "the 3rd delay (${g[2]} s) is not longer than the 1st (${g[0]} s): gaps ${g[*]}"
    stop_daemon
}

case_an_attempt_is_bounded_by_timeout_seconds() {
    need_recv
    start_daemon "$(notify_conf 'max_attempts = 2
timeout_seconds = 0.5')"
    create_notified "$R/slow/4"
    await_deliveries "$DID" 2
    await_notify "$ID" '.state != "pending"'
    assert_notify failed 2 null
    local g
    mapfile -t g < <(gaps)
    # 0.5 s of timeout, then a backoff of 0.1 to 0.2 s: far less than the 4 s answer.
    assert_between "${g[0]}" 0.5 2.5 "seconds from the 1st attempt to the 2nd"
    stop_daemon
}

case_transfer_cap_bounds_deliveries_in_flight() {
    need_recv
    local ids=() i t0 took max
    start_daemon "$(notify_conf 'max_transfers = 2')"
    for i in 1 2 3 4 5 6; do
        create_notified "$R/slow/0.4?cap=$PORT"
        ids+=("$ID")
    done
    # Deliveries wait for the cap; tasks do not.
    t0=$(now)
    create '{"kind":"sleep","args":{"seconds":0}}'
    await_state "$ID" succeeded
    took=$(elapsed "$t0")
    assert_less "$took" 1 "seconds for a sleep 0 task while the deliveries fill the cap"
    for i in "${ids[@]}"; do
        await_notify "$i" '.state != "pending"' 15
        assert_notify delivered 1 200
    done
    LINES=$(jq -Rc --arg p "/slow/0.4?cap=$PORT" 'fromjson? | select(.path == $p)' "$RLOG")
    assert_eq "$(printf '%s\n' "$LINES" | grep -c .)" 6 "requests at the receiver"
    max=$(printf '%s\n' "$LINES" | jq -s 'map(.active_same) | max')
    note "most deliveries at the receiver at once: $max"
    assert_less "$max" 3 "deliveries in flight at once with max_transfers = 2"
    # Three rounds of two: the last ones start 0.8 s after the first.
    took=$(printf '%s\n' "$LINES" | jq -s 'map(.t) | (max - min) * 1000 | round / 1000')
    assert_between "$took" 0.7 10 "seconds from the first delivery's arrival to the last"
    stop_daemon
}

# SIGTERM while a delivery waits on a receiver that answers in 30 s: the
# daemon does not wait for it (stop_daemon allows 5 s), and with a store
# the attempt cut short is made again after the restart (at least once).
case_sigterm_does_not_wait_for_a_slow_receiver() {
    need_recv
    local t0 conf
    conf=$(notify_conf)
    [ -n "${AW_MEMORY:-}" ] || conf="[storage]
state_dir = $CASE_TMP/state
$conf"
    start_daemon "$conf"
    create_notified "$R/slow/30"
    await_deliveries "$DID" 1
    t0=$(now)
    stop_daemon
    note "seconds from SIGTERM to the exit with a delivery in flight: $(elapsed "$t0")"
    [ -n "${AW_MEMORY:-}" ] && return 0
    start_daemon "$conf"
    await_deliveries "$DID" 2
    req GET "/v1/tasks/$ID"
    assert_jq .notify.state pending
    stop_daemon
}

# 200 tasks at once from 20 clients: every one delivered exactly once (a
# healthy receiver sees no duplicate), never more than max_transfers (4)
# at the receiver at once, and a large result arrives whole.
case_many_deliveries_each_once_within_the_cap() {
    need_recv
    local ids=() big max dup
    mapfile -t ids < <(seq 200 | xargs -P 20 -I{} curl -sS --max-time 20 \
        -d "{\"kind\":\"sleep\",\"args\":{\"seconds\":0,\"result\":{}},\"notify\":{\"url\":\"$R/slow/0.02?many=$PORT\"}}" \
        "$BASE/v1/tasks" | jq -r .id)
    assert_eq "${#ids[@]}" 200 "tasks created"
    big=$(head -c 300000 /dev/zero | tr '\0' 'x')
    printf '{"kind":"sleep","args":{"seconds":0,"result":"%s"},"notify":{"url":"%s/slow/0.02?many=%s"}}' \
        "$big" "$R" "$PORT" >"$CASE_TMP/big.json"
    req --data-file "$CASE_TMP/big.json" POST /v1/tasks
    assert_status 201
    ids+=("$(jqb .id)")
    req POST /v1/wait "{\"ids\":$(ids_json "${ids[@]}"),\"timeout\":30}"
    assert_jq '.pending | length' 0
    await_notify "${ids[200]}" '.state == "delivered"' 30
    for id in "${ids[@]}"; do
        await_notify "$id" '.state != "pending"' 30
        [ "$(jqb .notify.state)" = delivered ] || fail "task $id: notify $(jqb .notify)"
    done
    LINES=$(jq -Rc --arg p "/slow/0.02?many=$PORT" 'fromjson? | select(.path == $p)' "$RLOG")
    assert_eq "$(printf '%s\n' "$LINES" | grep -c .)" 201 "requests at the receiver"
    dup=$(printf '%s\n' "$LINES" | jq -r '.headers["x-awaitd-delivery"]' | sort | uniq -d | head -n 3)
    [ -z "$dup" ] || fail "delivered more than once: $dup"
    max=$(printf '%s\n' "$LINES" | jq -s 'map(.active_same) | max')
    note "most deliveries at the receiver at once: $max"
    assert_less "$max" 5 "deliveries in flight at once with max_transfers = 4"
    assert_eq "$(printf '%s\n' "$LINES" | jq -r --arg id "${ids[200]}" \
        'select(.body.id? == $id) | .body.result | length')" 300000 "length of the large result delivered"
}

case_info_shows_the_notify_limits() {
    req GET /v1/info
    assert_status 200
    assert_jq .limits.notify.enabled true
    assert_jq .limits.notify.allow "[\"127.0.0.1:$RPORT\",\"127.0.0.1:$DEAD\"]"
    assert_jq .limits.notify.signed true
    assert_jq .limits.notify.max_attempts 3
    assert_jq ".limits.notify.min_backoff_seconds == 0.2" true
    assert_jq ".limits.notify.max_backoff_seconds == 1" true
    assert_jq .limits.notify.max_transfers 4
    assert_jq ".limits.notify.timeout_seconds == 10" true
    assert_jq '.limits.notify | has("secret") or has("secret_file")' false
    case $BODY in *"$SECRET"*) fail "/v1/info shows the secret: $BODY" ;; esac
    assert_jq '.limits.http | has("allow") and has("max_transfers")' true
}

case_metrics_count_deliveries() {
    need_recv
    local ok fail2 gone slow
    start_daemon "$(notify_conf 'max_attempts = 3')"
    create_notified "$R/ok"
    ok=$ID
    create_notified "$R/fail/2"
    fail2=$ID
    create_notified "$R/status/404"
    gone=$ID
    await_notify "$ok" '.state == "delivered"'
    await_notify "$fail2" '.state == "delivered"'
    await_notify "$gone" '.state == "failed"'
    req GET /metrics
    assert_status 200
    assert_eq "$(metric awaitd_notify_deliveries_total outcome=delivered)" 2 "deliveries delivered"
    assert_eq "$(metric awaitd_notify_deliveries_total outcome=retried)" 2 "deliveries retried"
    assert_eq "$(metric awaitd_notify_deliveries_total outcome=failed)" 1 "deliveries failed"
    printf '%s\n' "$BODY" | grep -q '^awaitd_notify_pending ' ||
        fail "no awaitd_notify_pending sample in /metrics"
    printf '%s\n' "$BODY" | grep -q '^awaitd_notify_transfers_in_flight ' ||
        fail "no awaitd_notify_transfers_in_flight sample in /metrics"
    assert_eq "$(metric awaitd_notify_pending)" 0 "deliveries pending"
    assert_eq "$(metric awaitd_notify_transfers_in_flight)" 0 "deliveries in flight"
    create_notified "$R/slow/1.5"
    slow=$ID
    await_deliveries "$DID" 1
    req GET /metrics
    assert_eq "$(metric awaitd_notify_pending)" 1 "deliveries pending during a slow one"
    assert_eq "$(metric awaitd_notify_transfers_in_flight)" 1 "deliveries in flight during a slow one"
    await_notify "$slow" '.state == "delivered"'
    req GET /metrics
    assert_eq "$(metric awaitd_notify_deliveries_total outcome=delivered)" 3 "deliveries delivered"
    assert_eq "$(metric awaitd_notify_pending)" 0 "deliveries pending after the slow one"
    assert_eq "$(metric awaitd_notify_transfers_in_flight)" 0 "deliveries in flight after the slow one"
    stop_daemon
}

# The receiver is down (nothing listens on its port, which is allowed) when
# the task ends; awaitd stops cleanly; the receiver comes back on that port;
# awaitd restarts on the same store and delivers.
case_restart_delivers_what_a_down_receiver_missed() {
    [ -n "${AW_MEMORY:-}" ] && return 0
    need_recv
    local p conf log=$CASE_TMP/recv.log done_id down
    p=$(free_port)
    conf="[storage]
state_dir = $CASE_TMP/state
[notify]
allow = 127.0.0.1:$p 127.0.0.1:$RPORT
max_attempts = 1000
min_backoff_seconds = 0.2
max_backoff_seconds = 0.5"
    start_daemon "$conf"
    # One delivered before the restart: its notify field must stay delivered.
    create_notified "$R/ok"
    done_id=$ID
    await_notify "$done_id" '.state == "delivered"'
    create_notified "http://127.0.0.1:$p/ok" '{"seconds":0,"result":"after the restart"}'
    down=$ID
    await_notify "$down" '.attempts >= 2'
    assert_jq .notify.state pending
    assert_jq .notify.last_status null
    assert_jq '.notify.last_error | type == "string" and length > 0' true
    stop_daemon
    start_receiver "$log" --port "$p" ||
        fail "the receiver did not start again on port $p: $(head -c 300 "$log.err")"
    start_daemon "$conf"
    await_deliveries "d_${down#t_}" 1 10 "$log"
    assert_line 1 .body.id "$down"
    assert_line 1 .body.state succeeded
    assert_line 1 .body.result 'after the restart'
    assert_line 1 '.body.notify.attempts >= 2' true
    await_notify "$down" '.state == "delivered"'
    assert_jq '.notify.attempts >= 3' true
    assert_jq .notify.last_status 200
    assert_jq .notify.last_error null
    req GET "/v1/tasks/$done_id"
    assert_notify delivered 1 200
    stop_daemon
    kill "$RECV_PID" 2>/dev/null ||
        fail "the second receiver (pid $RECV_PID) was gone before the end; its stderr: $(tail -c 400 "$log.err")"
}

# The same through kill -9, with a receiver that answers 503 until its gate
# file exists.
case_kill9_then_restart_delivers() {
    [ -n "${AW_MEMORY:-}" ] && return 0
    need_recv
    local conf gate
    gate=gate-$(basename "$CASE_TMP")
    conf="[storage]
state_dir = $CASE_TMP/state
[notify]
allow = 127.0.0.1:$RPORT
secret = $SECRET
max_attempts = 1000
min_backoff_seconds = 0.2
max_backoff_seconds = 0.5"
    start_daemon "$conf"
    create_notified "$R/gate/$gate" "" '"headers":{"X-Trace":"kept-in-the-store"}'
    await_deliveries "$DID" 1
    assert_line 1 .status 503
    assert_line 1 '.headers["x-trace"]' kept-in-the-store
    await_notify "$ID" '.attempts >= 1'
    assert_jq .notify.state pending
    assert_jq .notify.last_status 503
    crash
    touch "$AW_TMP/$gate"
    start_daemon "$conf"
    await_notify "$ID" '.state == "delivered"'
    assert_jq '.notify.attempts >= 2' true
    assert_jq .notify.last_status 200
    LINES=$(deliveries "$DID" | jq -c 'select(.status == 200)')
    [ -n "$LINES" ] || fail "no request answered 200 for $DID at the receiver"
    assert_line 1 .body.id "$ID"
    assert_line 1 .body.state succeeded
    assert_line 1 .verified true
    # The user's headers are stored with the delivery, not only in memory.
    assert_line 1 '.headers["x-trace"]' kept-in-the-store
    stop_daemon
}

# Retention does not forget a task whose delivery is still being retried
# (delivery is at least once), here or across a restart: the receiver
# answers 503 until its gate file exists, well past the 1 s retention.
case_retention_keeps_a_task_until_its_delivery_ends() {
    need_recv
    local conf gate t0
    gate=gate-$(basename "$CASE_TMP")
    conf="[tasks]
retention_seconds = 1
$([ -z "${AW_MEMORY:-}" ] && printf '[storage]\nstate_dir = %s/state' "$CASE_TMP")
[notify]
allow = 127.0.0.1:$RPORT
max_attempts = 1000
min_backoff_seconds = 0.2
max_backoff_seconds = 0.3"
    start_daemon "$conf"
    create_notified "$R/gate/$gate"
    await_notify "$ID" '.attempts >= 1'
    # Retention would have forgotten it 1 s after finished_at.
    t0=$(now)
    while (( $(now) - t0 < 2500000 )); do
        req GET "/v1/tasks/$ID"
        assert_status 200
        assert_jq .notify.state pending
        sleep 0.5
    done
    if [ -z "${AW_MEMORY:-}" ]; then
        stop_daemon
        start_daemon "$conf"        # the restart finds it past retention
        req GET "/v1/tasks/$ID"
        assert_status 200
    fi
    touch "$AW_TMP/$gate"
    await_notify "$ID" '.state == "delivered"'
    stop_daemon
}

# A task that was running when awaitd was killed ends failed (interrupted)
# at the restart: that end is delivered too.
case_task_interrupted_by_a_crash_is_delivered() {
    [ -n "${AW_MEMORY:-}" ] && return 0
    need_recv
    local conf
    conf="[storage]
state_dir = $CASE_TMP/state
$(notify_conf)"
    start_daemon "$conf"
    create_notified "$R/ok" '{"seconds":30}'
    await_state "$ID" running
    crash
    start_daemon "$conf"
    await_deliveries "$DID" 1
    assert_line 1 .body.id "$ID"
    assert_line 1 .body.state failed
    assert_line 1 .body.error.type interrupted
    await_notify "$ID" '.state == "delivered"'
    stop_daemon
}

run_cases
