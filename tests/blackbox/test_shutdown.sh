#!/usr/bin/env bash
# SIGTERM: the daemon exits 0 promptly with requests and tasks in flight,
# answers the open waits, and (in the sanitized build) leaks nothing. Each
# case starts and stops its own daemon.

. "$(dirname "$0")/lib.sh"

# await_waiters N: bounded poll of /metrics until awaitd_waiters is N.
await_waiters() {
    local i n=""
    for ((i = 0; i < 100; i++)); do
        req GET /metrics
        n=$(metric awaitd_waiters)
        [ "$n" = "$1" ] && return 0
        sleep 0.05
    done
    fail "awaitd_waiters did not reach $1 within 5 s (last: $n)"
}

case_sigterm_answers_an_open_wait_and_exits_0() {
    start_daemon '[server]
log_level = info'
    create '{"kind":"sleep","args":{"seconds":30}}'
    local id=$ID pid t0 code
    curl -s --max-time 20 -o "$CASE_TMP/wait.json" -w '%{http_code}' \
        "$BASE/v1/tasks/$id/wait?timeout=30" >"$CASE_TMP/wait.code" &
    pid=$!
    await_waiters 1
    t0=$(now)
    stop_daemon
    assert_less "$(elapsed "$t0")" 5 "seconds from SIGTERM to exit"
    wait "$pid"
    code=$(cat "$CASE_TMP/wait.code")
    assert_eq "$code" 200 "HTTP status of the wait that was open at SIGTERM"
    BODY=$(cat "$CASE_TMP/wait.json")
    assert_jq .id "$id"
}

case_sigterm_with_running_pending_and_finished_tasks_exits_0() {
    start_daemon '[queue:one]
concurrency = 1'
    local a b
    create '{"kind":"sleep","args":{"seconds":30},"queue":"one"}'; a=$ID
    create '{"kind":"sleep","args":{"seconds":30},"queue":"one"}'; b=$ID
    create '{"kind":"sleep","args":{"seconds":0,"result":{"big":[1,2,3]}}}'
    create '{"kind":"sleep","args":{"seconds":0,"fail":"boom"}}'
    create '{"kind":"sleep","args":{"seconds":30},"timeout":0.1}'
    create -H 'Idempotency-Key: k1' '{"kind":"sleep","args":{"seconds":30}}'
    await_state "$a" running
    curl -s --max-time 20 -o /dev/null -d "{\"ids\":[\"$a\",\"$b\"],\"timeout\":30}" \
        "$BASE/v1/wait" &
    await_waiters 1
    stop_daemon
    wait
}

case_sigterm_on_an_idle_daemon_exits_0() {
    start_daemon ''
    req GET /healthz
    assert_status 200
    stop_daemon
}

run_cases
