#!/usr/bin/env bash
# Numbers come back exactly as they were sent: a task's args and result are
# kept as JSON text written once from the parsed body, each real with the
# fewest digits that read back as the same double, so nothing changes
# through create, GET, wait, the store and a restart, and no kind reads a
# number it can no longer parse.

. "$(dirname "$0")/lib.sh"

start_main_daemon '[queue:one]
concurrency = 1'

# assert_raw TEXT WHAT: the last answer's body holds TEXT byte for byte
# (jq would print its own rendering of the numbers, not the daemon's).
assert_raw() {
    case $BODY in
    *"$1"*) note "$2: has $1" ;;
    *) fail "$2: expected the body to hold $1$(ctx)" ;;
    esac
}

case_a_real_keeps_every_digit_through_create_get_and_wait() {
    create '{"kind":"sleep","args":{"seconds":0,"result":0.30000000000000004}}'
    assert_raw '"args":{"seconds":0,"result":0.30000000000000004}' "201 args"
    assert_raw '"result":0.30000000000000004,' "201 result"
    local id=$ID
    req GET "/v1/tasks/$id"
    assert_status 200
    assert_raw '"result":0.30000000000000004,' "GET result"
    req GET "/v1/tasks/$id/wait?timeout=5"
    assert_status 200
    assert_raw '"result":0.30000000000000004,' "wait result"
    # A pending task shows its args as sent, too.
    create '{"kind":"sleep","args":{"seconds":30,"x":0.30000000000000004}}'
    req GET "/v1/tasks/$ID"
    assert_raw '"args":{"seconds":30,"x":0.30000000000000004}' "GET args"
    req DELETE "/v1/tasks/$ID"
}

case_short_decimals_stay_short_and_reals_stay_reals() {
    create '{"kind":"sleep","args":{"seconds":0,"result":[0.1,0.3,1.5,1.0,-0.0,1e-300,1.7976931348623157e308,-9223372036854775808,123456789012345678]}}'
    assert_raw '"result":[0.1,0.3,1.5,1.0,-0.0,1e-300,1.7976931348623157e+308,-9223372036854775808,123456789012345678],' "result"
}

case_the_largest_double_in_args_with_fail_ends_failed() {
    create '{"kind":"sleep","args":{"seconds":0,"fail":"boom","big":1.7976931348623157e308}}'
    req GET "/v1/tasks/$ID/wait?timeout=5"
    assert_status 200
    assert_jq '[.state, .error.type, .error.message, .result]' '["failed","task_error","boom",null]'
    assert_raw '"big":1.7976931348623157e+308' "args"
}

case_a_restart_reads_back_every_digit() {
    local conf done pend fails
    conf="[queue:one]
concurrency = 1
[storage]
state_dir = $CASE_TMP/state"
    start_daemon "$conf"
    create '{"kind":"sleep","args":{"seconds":0,"result":0.30000000000000004}}'; done=$ID
    req GET "/v1/tasks/$done/wait?timeout=5"
    assert_jq .state succeeded
    # Pending at the restart, so the restart parses their args again.
    create '{"kind":"sleep","queue":"one","args":{"seconds":60}}'
    await_state "$ID" running
    create '{"kind":"sleep","queue":"one","args":{"seconds":0,"result":0.30000000000000004}}'; pend=$ID
    create '{"kind":"sleep","queue":"one","args":{"seconds":0,"fail":"boom","big":1.7976931348623157e308}}'; fails=$ID
    stop_daemon
    start_daemon "$conf"
    req GET "/v1/tasks/$done"
    assert_status 200
    assert_raw '"result":0.30000000000000004,' "finished task's result after the restart"
    req GET "/v1/tasks/$pend/wait?timeout=5"
    assert_status 200
    assert_jq .state succeeded
    assert_raw '"result":0.30000000000000004,' "pending task's result after the restart"
    req GET "/v1/tasks/$fails/wait?timeout=5"
    assert_status 200
    assert_jq '[.state, .error.type, .error.message]' '["failed","task_error","boom"]'
    stop_daemon
}

run_cases
