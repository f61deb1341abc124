#!/usr/bin/env bash
# Operator mistakes: exec enabled with no token on an address beyond
# loopback (refused at start, at --check-config, at SIGHUP, and for a socket
# systemd passes), a listen address that does not resolve, a port already
# in use (exit 2 with a message that says so), log_level = debug logging
# requests and task changes, the client address in the access log, and the
# warning for exec as root. Most cases start awaitd themselves; a helper
# (helpers/sockpass.c) does socket activation on a chosen address.

. "$(dirname "$0")/lib.sh"

build_helpers sockpass

EXEC_ON='[kinds]
exec = true
[exec]
allow = /usr/bin/true
allow_root = true'

start_main_daemon '[server]
log_level = info'

# run_once CONF ARG...: runs awaitd with CONF (memory only) and ARGs until
# it exits (10 s at most); sets RC and ERR (its stderr).
run_once() {
    local conf=$CASE_TMP/run.conf
    printf '%s\n' "$1" >"$conf"
    shift
    timeout 10 "$AWAITD" --config "$conf" "$@" >/dev/null 2>"$CASE_TMP/run.err" </dev/null
    RC=$?
    ERR=$(cat "$CASE_TMP/run.err")
    [ "$RC" != 124 ] || fail "awaitd $* did not exit within 10 s: $ERR"
}

# starts_listening CONF REGEX ARG...: awaitd with CONF and ARGs must log a
# line matching REGEX within 10 s (it started); then it gets SIGTERM and
# must exit 0 (SIGTERM once it says ready: its handlers are in place by
# then). Sets LOG to its stderr.
starts_listening() {
    local conf=$CASE_TMP/up.conf regex=$2 pid i
    printf '%s\n' "$1" >"$conf"
    shift 2
    LOG=$CASE_TMP/up.log
    "$AWAITD" --config "$conf" "$@" >/dev/null 2>"$LOG" </dev/null &
    pid=$!
    track_pid "$pid"
    for ((i = 0; i < 200; i++)); do
        grep -Eq "$regex" "$LOG" && grep -q 'msg="awaitd .* ready"' "$LOG" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    grep -Eq "$regex" "$LOG" || {
        kill -KILL "$pid" 2>/dev/null
        fail "no line matching '$regex' within 10 s; stderr: $(tail -n 3 "$LOG" | tr '\n' ' ')"
    }
    kill -TERM "$pid"
    wait "$pid"
    assert_eq "$?" 0 "exit status after SIGTERM (stderr: $(tail -n 3 "$LOG" | tr '\n' ' '))"
}

case_exec_without_token_beyond_loopback_refuses_to_start() {
    local l
    for l in 0.0.0.0:0 :0; do
        run_once "$EXEC_ON" --listen "$l"
        assert_eq "$RC" 2 "exit status with exec, no token, --listen $l (stderr: $ERR)"
        [[ $ERR == *auth_token* && $ERR == *loopback* ]] ||
            fail "the message does not say what to fix: $ERR"
        [[ $ERR != *"msg=\"listening on"* ]] || fail "it listened before refusing: $ERR"
        run_once "$EXEC_ON" --listen "$l" --check-config
        assert_eq "$RC" 2 "--check-config with exec, no token, --listen $l (stderr: $ERR)"
        [[ $ERR == *auth_token* ]] || fail "--check-config message: $ERR"
    done
}

case_a_token_or_a_loopback_address_is_enough() {
    starts_listening "[server]
auth_token = s3cret
$EXEC_ON" 'listening on 0\.0\.0\.0:[0-9]+' --listen 0.0.0.0:0
    # localhost resolves to loopback addresses only (127.0.0.1, ::1).
    starts_listening "$EXEC_ON" 'listening on (127\.0\.0\.1|\[::1\]):[0-9]+' --listen localhost:0
    # Without exec (nor http) there is nothing to refuse.
    starts_listening '[kinds]
sleep = true' 'listening on 0\.0\.0\.0:[0-9]+' --listen 0.0.0.0:0
}

case_a_socket_from_systemd_beyond_loopback_is_refused() {
    need_helpers
    local conf=$CASE_TMP/act.conf
    # ...and one on every address is refused, though the file says loopback.
    printf '[server]\nlisten = 127.0.0.1:8080\n%s\n' "$EXEC_ON" >"$conf"
    timeout 10 "$HELPERS/sockpass" 0.0.0.0 "$AWAITD" --config "$conf" \
        >/dev/null 2>"$CASE_TMP/err" </dev/null
    RC=$?
    ERR=$(cat "$CASE_TMP/err")
    assert_eq "$RC" 2 "exit status with exec, no token, a passed socket on 0.0.0.0 (stderr: $ERR)"
    [[ $ERR == *auth_token* && $ERR == *0.0.0.0* ]] || fail "message: $ERR"
}

# The loopback case of socket activation goes through sockpass too.
starts_listening_activated() {
    local conf=$CASE_TMP/up.conf regex=$2 pid i
    printf '%s\n' "$1" >"$conf"
    LOG=$CASE_TMP/up.log
    "$HELPERS/sockpass" 127.0.0.1 "$AWAITD" --config "$conf" >/dev/null 2>"$LOG" </dev/null &
    pid=$!
    track_pid "$pid"
    for ((i = 0; i < 200; i++)); do
        grep -Eq "$regex" "$LOG" && grep -q 'msg="awaitd .* ready"' "$LOG" && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    grep -Eq "$regex" "$LOG" || {
        kill -KILL "$pid" 2>/dev/null
        fail "no line matching '$regex' within 10 s; stderr: $(tail -n 3 "$LOG" | tr '\n' ' ')"
    }
    kill -TERM "$pid"
    wait "$pid"
    assert_eq "$?" 0 "exit status after SIGTERM"
}

case_a_loopback_socket_from_systemd_is_accepted() {
    need_helpers
    starts_listening_activated "[server]
listen = 0.0.0.0:8080
$EXEC_ON" 'listening on 127\.0\.0\.1:[0-9]+ \(socket activation\)'
}

case_a_reload_that_would_expose_exec_is_refused() {
    # awaitd without exec may listen anywhere; a SIGHUP that enables exec
    # without a token must then keep the running configuration.
    local conf=$CASE_TMP/reload.conf pid i port
    printf '[kinds]\nsleep = true\n' >"$conf"
    "$AWAITD" --config "$conf" --listen 0.0.0.0:0 >/dev/null 2>"$CASE_TMP/reload.log" </dev/null &
    pid=$!
    track_pid "$pid"
    for ((i = 0; i < 200; i++)); do
        port=$(sed -n 's/.*listening on 0\.0\.0\.0:\([0-9]*\).*/\1/p' "$CASE_TMP/reload.log")
        [ -n "$port" ] && grep -q 'ready"' "$CASE_TMP/reload.log" && break
        sleep 0.05
    done
    [ -n "$port" ] || fail "did not start: $(cat "$CASE_TMP/reload.log")"
    printf '%s\n' "$EXEC_ON" >"$conf"
    kill -HUP "$pid"
    for ((i = 0; i < 100; i++)); do
        grep -q 'SIGHUP' "$CASE_TMP/reload.log" && break
        sleep 0.05
    done
    grep -q 'keeping the running configuration' "$CASE_TMP/reload.log" ||
        fail "the reload was not refused: $(grep SIGHUP "$CASE_TMP/reload.log")"
    grep 'SIGHUP' "$CASE_TMP/reload.log" | grep -q auth_token ||
        fail "the refusal does not name auth_token: $(grep SIGHUP "$CASE_TMP/reload.log")"
    BASE=http://127.0.0.1:$port
    req POST /v1/tasks '{"kind":"exec","args":{"argv":["/usr/bin/true"]}}'
    assert_error 403 kind_disabled
    kill -TERM "$pid"
    wait "$pid"
    assert_eq "$?" 0 "exit status after SIGTERM"
}

case_check_config_resolves_the_listen_address() {
    run_once '[kinds]
sleep = true' --check-config --listen no-such-host.invalid:8080
    assert_eq "$RC" 2 "--check-config with an unresolvable listen host (stderr: $ERR)"
    [[ $ERR == *no-such-host.invalid* && $ERR == *resolve* ]] || fail "message: $ERR"
    run_once '[server]
listen = no-such-host.invalid:8080' --check-config
    assert_eq "$RC" 2 "--check-config with listen = an unresolvable host (stderr: $ERR)"
    run_once '[kinds]
sleep = true' --check-config --listen localhost:8080
    assert_eq "$RC" 0 "--check-config with localhost (stderr: $ERR)"
}

case_a_port_in_use_exits_2_and_says_so() {
    run_once '[kinds]
sleep = true' --listen "127.0.0.1:$PORT"
    assert_eq "$RC" 2 "exit status with a port in use (stderr: $ERR)"
    [[ $ERR == *"127.0.0.1:$PORT"* && $ERR == *"in use"* ]] || fail "message: $ERR"
    # The daemon that has the port still answers.
    req GET /healthz
    assert_status 200
}

case_log_level_debug_logs_requests_and_task_changes() {
    AW_MEMORY=1 start_daemon '[server]
log_level = debug'
    create '{"kind":"sleep","args":{"seconds":0}}'
    req GET "/v1/tasks/$ID"
    req GET /no/such/path
    stop_daemon
    grep -Eq "msg=\"request POST /v1/tasks 201 [0-9.]+ ms client 127\.0\.0\.1\"" "$DLOG" ||
        fail "no debug line for the create: $(grep -c request "$DLOG") request lines"
    grep -Eq "msg=\"request GET /no/such/path 404 [0-9.]+ ms client 127\.0\.0\.1\"" "$DLOG" ||
        fail "no debug line for the 404"
    grep -q "task $ID (sleep) created in queue default" "$DLOG" || fail "no 'created' line for $ID"
    grep -q "task $ID (sleep) running" "$DLOG" || fail "no 'running' line for $ID"
    grep -q "task $ID (sleep) succeeded" "$DLOG" || fail "no 'succeeded' line for $ID"
}

case_log_level_info_logs_no_requests() {
    req GET /healthz
    ! grep -q 'msg="request ' "$DLOG" || fail "request lines at log_level = info"
}

case_the_access_log_has_the_client_address() {
    AW_MEMORY=1 start_daemon '[server]
access_log = true
log_level = debug'
    req GET /healthz
    stop_daemon
    grep -Eq 'msg="access GET /healthz 200 [0-9.]+ ms client 127\.0\.0\.1"' "$DLOG" ||
        fail "no access line with the client: $(grep access "$DLOG")"
    # One line per request, not an access line and a debug line.
    ! grep -q 'msg="request GET /healthz' "$DLOG" || fail "the request was logged twice"
}

case_exec_as_root_warns() {
    if [ "$(id -u)" != 0 ]; then
        note "skipped: not root"
        return 0
    fi
    AW_MEMORY=1 start_daemon "$EXEC_ON"
    stop_daemon
    grep 'level=warn' "$DLOG" | grep -q 'runs as root' ||
        fail "no warning for exec as root: $(head -n 5 "$DLOG" | tr '\n' ' ')"
}

run_cases
