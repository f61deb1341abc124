#!/usr/bin/env bash
# Retries ("retry" at create): a failing sleep tried three times with a
# growing backoff between its starts (seen on its event stream), a waiter
# that is answered only at the final end, an exec job that fails twice and
# succeeds on its third attempt with only that attempt's output (and an
# output follow that streams every attempt in turn), an http transport
# failure retried, a cancel
# that is never retried (while running or during the backoff), the
# refusals of bad policies, /metrics, and retries across restarts: kill -9
# during the backoff keeps its wall-clock time, and a task that was running
# at a kill -9 or a SIGTERM goes back to pending for its next attempt. The
# restart cases pass without running in the memory-only pass (AW_MEMORY=1).

. "$(dirname "$0")/lib.sh"

# The machine (and CI) run as root, hence allow_root.
EXEC_CONF='[kinds]
exec = true
http = true
[http]
allow = 127.0.0.1:1
[exec]
allow = /bin/* /usr/bin/*
allow_root = true
kill_grace_seconds = 2'

start_main_daemon "$EXEC_CONF"

# events_of ID: the whole event stream of task ID, which ends after its
# terminal state (GET /v1/events?id=), as one task object a line in
# $CASE_TMP/events.
events_of() {
    req --max-time 30 GET "/v1/events?id=$1"
    assert_status 200
    printf '%s\n' "$BODY" | sed -n 's/^data: //p' >"$CASE_TMP/events"
    [ -s "$CASE_TMP/events" ] || fail "no events for $1$(ctx)"
}

# ms_of ISO: milliseconds since the epoch of a timestamp the daemon wrote.
ms_of() {
    jq -rn --arg t "$1" '($t[0:19] + "Z" | fromdateiso8601) * 1000 + ($t[20:23] | tonumber)'
}

crash() {
    local i
    kill -KILL "$DPID" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
        [ -s "$DDIR/exit" ] && return 0
        sleep 0.05
    done
    fail "daemon $DPID was not reaped within 5 s of SIGKILL"
}

case_a_failing_sleep_is_tried_three_times_with_its_backoff() {
    local id s0 starts gap1 gap2 waited fin0 fin1 ret0 ret1
    req GET /metrics
    fin0=$(metric awaitd_tasks_finished_total kind=sleep state=failed)
    ret0=$(metric awaitd_task_retries_total)
    create '{"kind":"sleep","args":{"seconds":1,"fail":"boom"},
             "retry":{"attempts":3,"backoff":0.5,"factor":2}}'
    id=$ID
    assert_jq '[.state, .attempt, .last_error, .done]' '["running",1,null,false]'
    s0=$(jqb .started_at)
    # A waiter that starts now is answered at the final end only.
    curl -sS --max-time 30 "$BASE/v1/tasks/$id/wait?timeout=25" >"$CASE_TMP/waited" &
    events_of "$id"
    wait
    waited=$(cat "$CASE_TMP/waited")
    assert_eq "$(jq -c '[.state, .done, .attempt]' <<<"$waited")" '["failed",true,3]' "the wait's answer"
    # Every event before the last is not done; the pending ones come after
    # a failed attempt, with its error as last_error.
    assert_eq "$(jq -sc '[.[] | .state] | map(select(. != "pending" and . != "running")) ' \
        "$CASE_TMP/events")" '["failed"]' "the terminal states on the stream"
    assert_eq "$(jq -sc '[.[] | select(.done)] | length' "$CASE_TMP/events")" 1 "events with done true"
    assert_eq "$(jq -sc '[.[] | select(.state == "pending") | [.attempt, .last_error.type,
        .last_error.message, .error, .started_at]]' "$CASE_TMP/events")" \
        '[[2,"task_error","boom",null,null],[3,"task_error","boom",null,null]]' "the pending events"
    # The stream may begin after the first attempt (its start is the
    # 201's); it has the others.
    assert_eq "$(jq -sc '[.[] | select(.state == "running" and .attempt > 1) | .attempt]' \
        "$CASE_TMP/events")" '[2,3]' "the later attempts that ran"
    req GET "/v1/tasks/$id"
    assert_jq '[.state, .attempt, .error.type, .error.message, .last_error.type, .last_error.message]' \
        '["failed",3,"task_error","boom","task_error","boom"]'
    # The starts: 1 s of sleep, then 0.5 s, then 1 s of backoff.
    starts=("$s0" $(jq -r 'select(.state == "running" and .attempt > 1) | .started_at' \
        "$CASE_TMP/events"))
    [ ${#starts[@]} = 3 ] || fail "expected 3 starts, got ${starts[*]}"
    gap1=$(( $(ms_of "${starts[1]}") - $(ms_of "${starts[0]}") ))
    gap2=$(( $(ms_of "${starts[2]}") - $(ms_of "${starts[1]}") ))
    assert_between "$gap1" 1480 3500 "ms from start 1 to start 2 (1 s sleep + 0.5 s backoff)"
    assert_between "$gap2" 1980 4500 "ms from start 2 to start 3 (1 s sleep + 1 s backoff)"
    assert_between $((gap2 - gap1)) 300 2000 "ms the second backoff is longer by (0.5 s)"
    req GET /metrics
    fin1=$(metric awaitd_tasks_finished_total kind=sleep state=failed)
    ret1=$(metric awaitd_task_retries_total)
    assert_eq $((fin1 - fin0)) 1 "failed finishes counted for one task of three attempts"
    assert_eq $((ret1 - ret0)) 2 "awaitd_task_retries_total"
}

case_an_exec_job_that_fails_twice_succeeds_on_its_third_attempt() {
    cat >"$CASE_TMP/flaky.sh" <<'EOF'
n=$(cat "$1" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" >"$1"
echo "try $n"
[ "$n" -ge 3 ] || exit 7
EOF
    create "$(jq -nc --arg s "$CASE_TMP/flaky.sh" --arg c "$CASE_TMP/count" \
        '{kind: "exec", args: {argv: ["/bin/sh", $s, $c]}, retry: {attempts: 5, backoff: 0.1}}')"
    req GET "/v1/tasks/$ID/wait?timeout=20"
    assert_status 200
    assert_jq '[.state, .attempt, .last_error.type, .last_error.message, .error]' \
        '["succeeded",3,"exit_status","exited with status 7",null]'
    # Only the last attempt's output: each attempt starts over.
    assert_jq '[.result.exit_code, .result.stdout]' '[0,"try 3\n"]'
    assert_eq "$(cat "$CASE_TMP/count")" 3 "runs of the program"
    req GET "/v1/tasks/$ID/output"
    assert_eq "$BODY" "try 3" "the output"
}

# A follower of the output streams each attempt's output in turn: the
# stream ends with the final attempt, not with the first failure.
case_output_follow_goes_on_across_attempts() {
    cat >"$CASE_TMP/flaky.sh" <<'EOF'
n=$(cat "$1" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" >"$1"
echo "try $n"
[ "$n" -ge 3 ] || exit 1
EOF
    create "$(jq -nc --arg s "$CASE_TMP/flaky.sh" --arg c "$CASE_TMP/count" \
        '{kind: "exec", args: {argv: ["/bin/sh", $s, $c]}, retry: {attempts: 3, backoff: 0.5}}')"
    req --max-time 20 GET "/v1/tasks/$ID/output?follow=true"
    assert_status 200
    assert_eq "$(printf '%s' "$BODY" | tr '\n' ' ')" "try 1 try 2 try 3" "the followed output"
    req GET "/v1/tasks/$ID"
    assert_jq '[.state, .attempt]' '["succeeded",3]'
}

# The http kind has no reset of its own: each attempt prepares its
# transfer again. Nothing listens on port 1: each attempt is refused.
case_an_http_transport_failure_is_retried() {
    create '{"kind":"http","args":{"url":"http://127.0.0.1:1/"},"retry":{"attempts":3,"backoff":0.05}}'
    req GET "/v1/tasks/$ID/wait?timeout=20"
    assert_status 200
    assert_jq '[.state, .attempt, .error.type, .last_error.type]' \
        '["failed",3,"http_error","http_error"]'
}

case_a_cancel_is_never_retried_running_or_during_the_backoff() {
    local run back mark
    create '{"kind":"sleep","args":{"seconds":30},"retry":{"attempts":5,"backoff":0}}'
    run=$ID
    req POST "/v1/tasks/$run/cancel"
    assert_status 200
    assert_jq '[.state, .attempt, .done]' '["cancelled",1,true]'
    # A zero-second failure is back in its backoff when the 201 answers.
    create '{"kind":"sleep","args":{"seconds":0,"fail":"no"},"retry":{"attempts":5,"backoff":30}}'
    back=$ID
    assert_jq '[.state, .attempt, .last_error.message, .done, .started_at]' '["pending",2,"no",false,null]'
    req POST "/v1/tasks/$back/cancel"
    assert_status 200
    assert_jq '[.state, .attempt, .done, .error.type]' '["cancelled",2,true,"cancelled"]'
    # Time for a retry that must not come: a task of 0.6 s ends meanwhile.
    create '{"kind":"sleep","args":{"seconds":0.6}}'
    mark=$ID
    req GET "/v1/tasks/$mark/wait?timeout=10"
    assert_jq .state succeeded
    req GET "/v1/tasks/$run"
    assert_jq '[.state, .attempt]' '["cancelled",1]'
    req GET "/v1/tasks/$back"
    assert_jq '[.state, .attempt]' '["cancelled",2]'
}

case_bad_retry_values_are_refused_creating_nothing() {
    local before r
    count_tasks
    before=$COUNT
    for r in '[]' '3' '"x"' '{"attempts":0}' '{"attempts":1001}' '{"attempts":2.5}' \
             '{"attempts":"3"}' '{"backoff":-1}' '{"backoff":"1"}' '{"backoff":1e300}' \
             '{"factor":0.5}' '{"factor":true}' '{"backoff":10,"max_backoff":5}'; do
        req POST /v1/tasks "{\"kind\":\"sleep\",\"args\":{\"seconds\":0},\"retry\":$r}"
        assert_error 400 invalid_request
        assert_jq '.error.message | test("retry")' true
    done
    count_tasks
    assert_eq "$COUNT" "$before" "tasks after the refused creates"
    # No policy, or null: one attempt.
    create '{"kind":"sleep","args":{"seconds":0,"fail":"once"},"retry":null}'
    assert_jq '[.state, .attempt, .last_error]' '["failed",1,null]'
    create '{"kind":"sleep","args":{"seconds":0,"fail":"once"},"retry":{"attempts":1}}'
    assert_jq '[.state, .attempt, .last_error]' '["failed",1,null]'
}

case_a_kill_9_during_the_backoff_keeps_its_wall_clock_time() {
    [ -n "${AW_MEMORY:-}" ] && return 0
    local conf id s1 s2 gap
    conf="$EXEC_CONF
[storage]
state_dir = $CASE_TMP/state"
    start_daemon "$conf"
    create '{"kind":"sleep","args":{"seconds":0.1,"fail":"again"},
             "retry":{"attempts":2,"backoff":3}}'
    id=$ID
    # The create's time: the first attempt may have ended before the 201.
    s1=$(jqb .created_at)
    await_state "$id" pending
    assert_jq '[.attempt, .last_error.message]' '[2,"again"]'
    crash
    start_daemon "$conf"
    req GET "/v1/tasks/$id"
    assert_jq '[.state, .attempt, .last_error.message]' '["pending",2,"again"]'
    req GET "/v1/tasks/$id/wait?timeout=15"
    assert_jq '[.state, .attempt, .error.message, .last_error.message]' '["failed",2,"again","again"]'
    s2=$(jqb .started_at)
    gap=$(( $(ms_of "$s2") - $(ms_of "$s1") ))
    assert_between "$gap" 3000 10000 "ms from the create to the second start (0.1 s + 3 s backoff)"
    stop_daemon
}

case_a_task_running_at_a_restart_goes_back_to_pending_for_its_next_attempt() {
    [ -n "${AW_MEMORY:-}" ] && return 0
    local conf a b c d
    conf="$EXEC_CONF
[storage]
state_dir = $CASE_TMP/state"
    start_daemon "$conf"
    create '{"kind":"sleep","args":{"seconds":3,"result":"second"},"retry":{"attempts":2}}'
    a=$ID
    create '{"kind":"sleep","args":{"seconds":3}}'
    b=$ID
    crash
    start_daemon "$conf"
    req GET "/v1/tasks/$b"
    assert_jq '[.state, .error.type]' '["failed","interrupted"]'
    req GET "/v1/tasks/$a/wait?timeout=10"
    assert_jq '[.state, .attempt, .result, .last_error.type]' '["succeeded",2,"second","interrupted"]'
    # A clean stop (SIGTERM) is a restart too: the attempt it interrupts
    # is retried by the next run, and the one without attempts left ends.
    create '{"kind":"exec","args":{"argv":["/bin/sleep","30"]},"retry":{"attempts":3}}'
    c=$ID
    create '{"kind":"exec","args":{"argv":["/bin/sleep","30"]}}'
    d=$ID
    await_state "$c" running
    await_state "$d" running
    stop_daemon
    start_daemon "$conf"
    req GET "/v1/tasks/$d"
    assert_jq '[.state, .error.type]' '["failed","interrupted"]'
    await_state "$c" running
    assert_jq '[.attempt, .last_error.type, .done]' '[2,"interrupted",false]'
    req POST "/v1/tasks/$c/cancel"
    assert_status 202
    req GET "/v1/tasks/$c/wait?timeout=10"
    assert_jq '[.state, .attempt]' '["cancelled",2]'
    stop_daemon
}

run_cases
