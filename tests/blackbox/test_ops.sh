#!/usr/bin/env bash
# Operations and HTTP plumbing: /healthz, /v1/info, /metrics, 404, 405 with
# Allow, keep-alive.

. "$(dirname "$0")/lib.sh"

start_main_daemon '[server]
max_body_bytes = 4096
[tasks]
max_tasks = 500
max_wait_seconds = 7'

# assert_allow METHOD...: the last answer's Allow header lists every METHOD.
assert_allow() {
    local allow m
    allow=$(header Allow | tr -d ' ')
    [ -n "$allow" ] || fail "405 without an Allow header$(ctx)"
    for m in "$@"; do
        [[ ",$allow," == *",$m,"* ]] || fail "Allow: $allow does not list $m$(ctx)"
    done
}

case_healthz_is_ok() {
    req GET /healthz
    assert_status 200
    assert_jq . '{"status":"ok"}'
    [[ $(header Content-Type) == application/json* ]] ||
        fail "Content-Type of /healthz is '$(header Content-Type)'"
}

case_info_reports_version_kinds_and_limits() {
    local version
    version=$("$AWAITD" --version | awk '{ print $2 }')
    req GET /v1/info
    assert_status 200
    assert_jq .version "$version"
    assert_jq '.uptime_seconds | type == "number" and . >= 0 and . < 60' true
    assert_jq .kinds '{"sleep":true,"exec":false,"http":false,"group":true}'
    assert_jq .limits.max_tasks 500
    assert_jq .limits.max_body_bytes 4096
    assert_jq .limits.max_wait_seconds 7
}

case_metrics_is_text_with_the_contract_names() {
    local name
    req GET /metrics
    assert_status 200
    [[ $(header Content-Type) == text/plain* ]] ||
        fail "Content-Type of /metrics is '$(header Content-Type)'"
    for name in awaitd_tasks_created_total awaitd_tasks_finished_total awaitd_tasks \
        awaitd_http_requests_total awaitd_waiters; do
        grep -Eq "^(# TYPE )?${name}[ {]" "$CASE_TMP/body" || fail "/metrics has no $name"
    done
}

case_created_and_finished_counters_move() {
    local created ok failed
    req GET /metrics
    created=$(metric awaitd_tasks_created_total kind=sleep)
    ok=$(metric awaitd_tasks_finished_total kind=sleep state=succeeded)
    failed=$(metric awaitd_tasks_finished_total kind=sleep state=failed)
    create '{"kind":"sleep","args":{"seconds":0}}'
    req GET "/v1/tasks/$ID/wait?timeout=5"
    assert_jq .state succeeded
    create '{"kind":"sleep","args":{"seconds":0,"fail":"x"}}'
    req GET "/v1/tasks/$ID/wait?timeout=5"
    assert_jq .state failed
    req GET /metrics
    assert_eq "$(metric awaitd_tasks_created_total kind=sleep)" "$((created + 2))" \
        'awaitd_tasks_created_total{kind="sleep"} after two creates'
    assert_eq "$(metric awaitd_tasks_finished_total kind=sleep state=succeeded)" "$((ok + 1))" \
        'awaitd_tasks_finished_total{kind="sleep",state="succeeded"}'
    assert_eq "$(metric awaitd_tasks_finished_total kind=sleep state=failed)" "$((failed + 1))" \
        'awaitd_tasks_finished_total{kind="sleep",state="failed"}'
}

case_tasks_gauge_follows_states() {
    local running cancelled id
    req GET /metrics
    running=$(metric awaitd_tasks state=running)
    cancelled=$(metric awaitd_tasks state=cancelled)
    create '{"kind":"sleep","args":{"seconds":30}}'
    id=$ID
    await_state "$id" running
    req GET /metrics
    assert_eq "$(metric awaitd_tasks state=running)" "$((running + 1))" 'awaitd_tasks{state="running"}'
    req POST "/v1/tasks/$id/cancel"
    req GET /metrics
    assert_eq "$(metric awaitd_tasks state=running)" "$running" 'awaitd_tasks{state="running"} after cancel'
    assert_eq "$(metric awaitd_tasks state=cancelled)" "$((cancelled + 1))" 'awaitd_tasks{state="cancelled"}'
    # Forgotten tasks are no longer counted.
    req DELETE "/v1/tasks/$id"
    assert_status 204
    req GET /metrics
    assert_eq "$(metric awaitd_tasks state=cancelled)" "$cancelled" 'awaitd_tasks{state="cancelled"} after DELETE'
}

case_http_requests_counter_counts_by_code() {
    local before
    req GET /metrics
    before=$(metric awaitd_http_requests_total code=404)
    req GET /nosuch
    req GET /nosuch
    req GET /metrics
    assert_eq "$(metric awaitd_http_requests_total code=404)" "$((before + 2))" \
        'awaitd_http_requests_total{code="404"} after two 404s'
}

case_waiters_gauge_counts_open_waits() {
    local id i n pids=()
    create '{"kind":"sleep","args":{"seconds":30}}'
    id=$ID
    for i in 1 2; do
        curl -s --max-time 20 -o "$CASE_TMP/wait.$i" "$BASE/v1/tasks/$id/wait?timeout=20" &
        pids+=($!)
    done
    curl -s --max-time 20 -o "$CASE_TMP/wait.3" -d "{\"ids\":[\"$id\"],\"timeout\":20}" "$BASE/v1/wait" &
    pids+=($!)
    # Bounded poll until the three waits are open.
    for ((i = 0; i < 100; i++)); do
        req GET /metrics
        n=$(metric awaitd_waiters)
        [ "$n" = 3 ] && break
        sleep 0.05
    done
    assert_eq "$n" 3 "awaitd_waiters with two single waits and one POST /v1/wait open"
    # Cancelling the task answers all of them at once.
    req POST "/v1/tasks/$id/cancel"
    assert_status 200
    for i in 0 1 2; do
        wait "${pids[$i]}" || fail "wait request $((i + 1)) failed (curl status $?)"
    done
    BODY=$(cat "$CASE_TMP/wait.1")
    assert_jq .state cancelled
    BODY=$(cat "$CASE_TMP/wait.3")
    assert_jq '[.done[].state]' '["cancelled"]'
    req GET /metrics
    assert_eq "$(metric awaitd_waiters)" 0 "awaitd_waiters after the waits were answered"
}

case_unknown_path_is_404() {
    local p
    create '{"kind":"sleep","args":{"seconds":0}}'
    for p in /nosuch / /v1 /v1/nosuch /v2/tasks /healthz/x "/v1/tasks/$ID/bogus" /v1/tasks/a/b/c; do
        req GET "$p"
        assert_error 404 not_found
    done
}

case_wrong_method_is_405_with_allow() {
    create '{"kind":"sleep","args":{"seconds":0}}'
    local id=$ID
    req PUT /v1/tasks '{}'
    assert_error 405 method_not_allowed
    assert_allow GET POST
    req POST "/v1/tasks/$id" '{}'
    assert_error 405 method_not_allowed
    assert_allow GET DELETE
    req GET "/v1/tasks/$id/cancel"
    assert_error 405 method_not_allowed
    assert_allow POST
    req DELETE "/v1/tasks/$id/wait"
    assert_error 405 method_not_allowed
    assert_allow GET
    req GET /v1/wait
    assert_error 405 method_not_allowed
    assert_allow POST
    req POST /healthz '{}'
    assert_error 405 method_not_allowed
    assert_allow GET
    req DELETE /v1/info
    assert_error 405 method_not_allowed
    assert_allow GET
    req POST /metrics '{}'
    assert_error 405 method_not_allowed
    assert_allow GET
    # The task was not touched by any of it.
    req GET "/v1/tasks/$id"
    assert_status 200
}

case_keep_alive_reuses_one_connection() {
    local conns
    conns=$(curl -s -o /dev/null -o /dev/null -w '%{num_connects}\n' \
        "$BASE/healthz" "$BASE/v1/tasks")
    assert_eq "$(echo "$conns" | paste -sd " ")" "1 0" "new connections for two requests in one curl run"
    # Also after a POST and after an error answer.
    conns=$(curl -s -o /dev/null -w '%{num_connects}\n' \
        -d '{"kind":"sleep","args":{"seconds":0}}' "$BASE/v1/tasks" --next \
        -s -o /dev/null -w '%{num_connects}\n' "$BASE/nosuch" --next \
        -s -o /dev/null -w '%{num_connects}\n' "$BASE/healthz")
    assert_eq "$(echo "$conns" | paste -sd " ")" "1 0 0" "new connections for POST, 404, GET in one curl run"
}

case_access_log_lines_when_asked() {
    start_daemon '[server]
access_log = true'
    req GET /healthz
    req GET /no/such/path
    stop_daemon
    grep -q 'msg="access GET /healthz 200 [0-9.]* ms client 127\.0\.0\.1"' "$DLOG" ||
        fail "no access line for /healthz in: $(grep access "$DLOG")"
    grep -q 'msg="access GET /no/such/path 404 ' "$DLOG" ||
        fail "no access line for the 404 in: $(grep access "$DLOG")"
}

case_no_access_log_by_default() {
    req GET /healthz
    ! grep -q 'msg="access ' "$DLOG" || fail "access lines without access_log = true"
}

run_cases
