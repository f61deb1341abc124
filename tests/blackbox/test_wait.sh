#!/usr/bin/env bash
# Awaiting: GET /v1/tasks/{id}/wait (await task, asyncio.wait_for) and
# POST /v1/wait (asyncio.wait with return_when). Time bounds are generous
# for the sanitized build but still tell "returned early" from "timed out".

. "$(dirname "$0")/lib.sh"

start_main_daemon '[tasks]
max_wait_ids = 3'

# wait_many BODY: POST /v1/wait BODY, timed; sets EL (seconds).
wait_many() {
    local t0
    t0=$(now)
    req POST /v1/wait "$1"
    EL=$(elapsed "$t0")
}

# wait_one ID QUERY: GET /v1/tasks/ID/wait?QUERY, timed; sets EL.
wait_one() {
    local t0
    t0=$(now)
    req GET "/v1/tasks/$1/wait?$2"
    EL=$(elapsed "$t0")
}

# ----- GET /v1/tasks/{id}/wait

case_wait_returns_early_when_the_task_finishes() {
    create '{"kind":"sleep","args":{"seconds":0.3,"result":"early"}}'
    wait_one "$ID" timeout=10
    assert_status 200
    assert_less "$EL" 2 "seconds to await a 0.3 s task with timeout=10"
    assert_jq .done true
    assert_jq .state succeeded
    assert_jq .result early
}

case_wait_returns_at_the_timeout_with_done_false() {
    create '{"kind":"sleep","args":{"seconds":30}}'
    local id=$ID
    wait_one "$id" timeout=0.5
    assert_status 200
    assert_between "$EL" 0.4 3 "seconds for wait?timeout=0.5 on a 30 s task"
    assert_jq .id "$id"
    assert_jq .done false
    assert_jq .state running
    # Without cancel=true the task goes on.
    req GET "/v1/tasks/$id"
    assert_jq .state running
}

case_wait_timeout_0_answers_at_once() {
    create '{"kind":"sleep","args":{"seconds":30}}'
    wait_one "$ID" timeout=0
    assert_status 200
    assert_less "$EL" 1 "seconds for wait?timeout=0"
    assert_jq .done false
}

case_wait_on_a_finished_task_answers_at_once() {
    create '{"kind":"sleep","args":{"seconds":0}}'
    local id=$ID
    await_state "$id" succeeded
    wait_one "$id" timeout=10
    assert_status 200
    assert_less "$EL" 1 "seconds to await a finished task"
    assert_jq .done true
}

case_wait_cancel_true_cancels_on_timeout() {
    create '{"kind":"sleep","args":{"seconds":30}}'
    local id=$ID
    wait_one "$id" 'timeout=0.3&cancel=true'
    assert_status 200
    assert_between "$EL" 0.2 3 "seconds for wait?timeout=0.3&cancel=true"
    assert_jq .state cancelled
    assert_jq .done true
    assert_jq .error.type cancelled
    req GET "/v1/tasks/$id"
    assert_jq .state cancelled
}

case_wait_cancel_1_cancels_on_timeout() {
    create '{"kind":"sleep","args":{"seconds":30}}'
    wait_one "$ID" 'timeout=0.2&cancel=1'
    assert_status 200
    assert_jq .state cancelled
}

case_wait_cancel_false_or_0_leaves_the_task_running() {
    create '{"kind":"sleep","args":{"seconds":30}}'
    local id=$ID
    wait_one "$id" 'timeout=0.1&cancel=false'
    assert_status 200
    assert_jq .done false
    wait_one "$id" 'timeout=0.1&cancel=0'
    assert_status 200
    assert_jq .done false
    req GET "/v1/tasks/$id"
    assert_jq .state running
}

case_wait_cancel_true_does_not_cancel_a_task_that_finishes_in_time() {
    create '{"kind":"sleep","args":{"seconds":0.2,"result":1}}'
    wait_one "$ID" 'timeout=5&cancel=true'
    assert_status 200
    assert_jq .state succeeded
    assert_jq .result 1
}

case_wait_bad_timeout_is_400() {
    create '{"kind":"sleep","args":{"seconds":30}}'
    local id=$ID t
    for t in -1 abc nan inf -inf 1e400 1s; do
        req GET "/v1/tasks/$id/wait?timeout=$t"
        assert_error 400 invalid_request
    done
    req GET "/v1/tasks/$id"
    assert_jq .state running
}

case_wait_bad_cancel_is_400() {
    create '{"kind":"sleep","args":{"seconds":30}}'
    local id=$ID c
    for c in maybe yes 2 TRUE; do
        req GET "/v1/tasks/$id/wait?timeout=0&cancel=$c"
        assert_error 400 invalid_request
    done
    req GET "/v1/tasks/$id"
    assert_jq .state running
}

case_wait_unknown_id_is_404() {
    req GET '/v1/tasks/t_doesnotexist/wait?timeout=1'
    assert_error 404 not_found
}

case_wait_timeout_above_max_wait_seconds_is_lowered() {
    start_daemon '[tasks]
max_wait_seconds = 1'
    req GET /v1/info
    assert_jq .limits.max_wait_seconds 1
    create '{"kind":"sleep","args":{"seconds":30}}'
    wait_one "$ID" timeout=60
    assert_status 200
    assert_between "$EL" 0.8 3 "seconds for wait?timeout=60 with max_wait_seconds = 1"
    assert_jq .done false
    wait_many "{\"ids\":[\"$ID\"],\"timeout\":60}"
    assert_status 200
    assert_between "$EL" 0.8 3 "seconds for POST /v1/wait timeout 60 with max_wait_seconds = 1"
    assert_jq '.pending | length' 1
    stop_daemon
}

# ----- POST /v1/wait

case_wait_many_all_completed() {
    local a b
    create '{"kind":"sleep","args":{"seconds":0.2,"result":"a"}}'; a=$ID
    create '{"kind":"sleep","args":{"seconds":0.6,"result":"b"}}'; b=$ID
    wait_many "{\"ids\":$(ids_json "$a" "$b"),\"return_when\":\"ALL_COMPLETED\",\"timeout\":10}"
    assert_status 200
    assert_between "$EL" 0.4 3 "seconds for ALL_COMPLETED on 0.2 s and 0.6 s tasks"
    assert_jq '[.done[].id]' "$(ids_json "$a" "$b")"
    assert_jq '[.done[].result]' '["a","b"]'
    assert_jq .pending '[]'
}

case_wait_many_defaults_to_all_completed() {
    local a b
    create '{"kind":"sleep","args":{"seconds":0.1}}'; a=$ID
    create '{"kind":"sleep","args":{"seconds":0.5}}'; b=$ID
    wait_many "{\"ids\":$(ids_json "$a" "$b"),\"timeout\":10}"
    assert_status 200
    assert_jq '[.done[].id]' "$(ids_json "$a" "$b")"
    assert_jq .pending '[]'
}

case_wait_many_first_completed() {
    local slow fast
    create '{"kind":"sleep","args":{"seconds":30}}'; slow=$ID
    create '{"kind":"sleep","args":{"seconds":0.2}}'; fast=$ID
    wait_many "{\"ids\":$(ids_json "$slow" "$fast"),\"return_when\":\"FIRST_COMPLETED\",\"timeout\":10}"
    assert_status 200
    assert_less "$EL" 2 "seconds for FIRST_COMPLETED with a 0.2 s task"
    assert_jq '[.done[].id]' "[\"$fast\"]"
    assert_jq '[.pending[].id]' "[\"$slow\"]"
    assert_jq '.pending[0].done' false
}

case_wait_many_first_exception() {
    local slow bad good
    create '{"kind":"sleep","args":{"seconds":30}}'; slow=$ID
    create '{"kind":"sleep","args":{"seconds":0.3,"fail":"boom"}}'; bad=$ID
    create '{"kind":"sleep","args":{"seconds":0}}'; good=$ID
    wait_many "{\"ids\":$(ids_json "$slow" "$bad" "$good"),\"return_when\":\"FIRST_EXCEPTION\",\"timeout\":10}"
    assert_status 200
    assert_less "$EL" 2 "seconds for FIRST_EXCEPTION with a task failing at 0.3 s"
    # It did not return at the first (successful) completion.
    assert_jq '[.done[].id]' "$(ids_json "$bad" "$good")"
    assert_jq '[.pending[].id]' "[\"$slow\"]"
    assert_jq '.done[0].state' failed
    assert_jq '.done[0].error.type' task_error
    assert_jq '.done[0].error.message' boom
    assert_jq '.done[1].state' succeeded
}

case_wait_many_first_exception_counts_a_timed_out_task() {
    local slow late
    create '{"kind":"sleep","args":{"seconds":30}}'; slow=$ID
    create '{"kind":"sleep","args":{"seconds":30},"timeout":0.2}'; late=$ID
    wait_many "{\"ids\":$(ids_json "$slow" "$late"),\"return_when\":\"FIRST_EXCEPTION\",\"timeout\":10}"
    assert_status 200
    assert_less "$EL" 2 "seconds for FIRST_EXCEPTION with a task timing out at 0.2 s"
    assert_jq '[.done[].state]' '["timed_out"]'
    assert_jq '[.pending[].id]' "[\"$slow\"]"
}

case_wait_many_first_exception_without_failure_waits_for_all() {
    local a b
    create '{"kind":"sleep","args":{"seconds":0.1}}'; a=$ID
    create '{"kind":"sleep","args":{"seconds":0.5}}'; b=$ID
    wait_many "{\"ids\":$(ids_json "$a" "$b"),\"return_when\":\"FIRST_EXCEPTION\",\"timeout\":10}"
    assert_status 200
    assert_jq '[.done[].id]' "$(ids_json "$a" "$b")"
    assert_jq .pending '[]'
}

case_wait_many_times_out() {
    local a b
    create '{"kind":"sleep","args":{"seconds":30}}'; a=$ID
    create '{"kind":"sleep","args":{"seconds":30}}'; b=$ID
    wait_many "{\"ids\":$(ids_json "$a" "$b"),\"timeout\":0.5}"
    assert_status 200
    assert_between "$EL" 0.4 3 "seconds for POST /v1/wait timeout 0.5 on 30 s tasks"
    assert_jq .done '[]'
    assert_jq '[.pending[].id]' "$(ids_json "$a" "$b")"
}

case_wait_many_timeout_0_answers_at_once() {
    create '{"kind":"sleep","args":{"seconds":30}}'
    wait_many "{\"ids\":[\"$ID\"],\"timeout\":0}"
    assert_status 200
    assert_less "$EL" 1 "seconds for POST /v1/wait timeout 0"
    assert_jq '[.pending[].id]' "[\"$ID\"]"
}

case_wait_many_counts_a_repeated_id_once() {
    local a b
    create '{"kind":"sleep","args":{"seconds":0}}'; a=$ID
    create '{"kind":"sleep","args":{"seconds":0}}'; b=$ID
    wait_many "{\"ids\":$(ids_json "$a" "$b" "$a"),\"timeout\":10}"
    assert_status 200
    assert_jq '[.done[].id]' "$(ids_json "$a" "$b")"
    assert_jq .pending '[]'
}

case_wait_many_lists_in_the_order_of_ids() {
    local a b c
    create '{"kind":"sleep","args":{"seconds":0.3}}'; a=$ID
    create '{"kind":"sleep","args":{"seconds":0}}'; b=$ID
    create '{"kind":"sleep","args":{"seconds":0.1}}'; c=$ID
    wait_many "{\"ids\":$(ids_json "$c" "$a" "$b"),\"timeout\":10}"
    assert_status 200
    assert_jq '[.done[].id]' "$(ids_json "$c" "$a" "$b")"
}

case_wait_many_unknown_id_is_404_naming_it() {
    create '{"kind":"sleep","args":{"seconds":0}}'
    wait_many "{\"ids\":[\"$ID\",\"t_nosuchtask\"],\"timeout\":1}"
    assert_error 404 not_found
    assert_jq '.error.message | contains("t_nosuchtask")' true
}

case_wait_many_empty_ids_is_400() {
    wait_many '{"ids":[],"timeout":1}'
    assert_error 400 invalid_request
}

case_wait_many_too_many_ids_is_400() {
    local a b c d
    create '{"kind":"sleep","args":{"seconds":0}}'; a=$ID
    create '{"kind":"sleep","args":{"seconds":0}}'; b=$ID
    create '{"kind":"sleep","args":{"seconds":0}}'; c=$ID
    create '{"kind":"sleep","args":{"seconds":0}}'; d=$ID
    # max_wait_ids = 3: three are fine, four are too many.
    wait_many "{\"ids\":$(ids_json "$a" "$b" "$c"),\"timeout\":10}"
    assert_status 200
    wait_many "{\"ids\":$(ids_json "$a" "$b" "$c" "$d"),\"timeout\":10}"
    assert_error 400 invalid_request
}

case_wait_many_bad_return_when_is_400() {
    create '{"kind":"sleep","args":{"seconds":0}}'
    wait_many "{\"ids\":[\"$ID\"],\"return_when\":\"SOMETIMES\"}"
    assert_error 400 invalid_request
    wait_many "{\"ids\":[\"$ID\"],\"return_when\":\"first_completed\"}"
    assert_error 400 invalid_request
    wait_many "{\"ids\":[\"$ID\"],\"return_when\":1}"
    assert_error 400 invalid_request
}

case_wait_many_bad_timeout_is_400() {
    create '{"kind":"sleep","args":{"seconds":0}}'
    local t
    for t in -1 '"5"' 1e400 true; do
        wait_many "{\"ids\":[\"$ID\"],\"timeout\":$t}"
        assert_error 400 invalid_request
    done
}

case_wait_many_malformed_body_is_400() {
    local b
    create '{"kind":"sleep","args":{"seconds":0}}'
    for b in '{"timeout":1}' '{"ids":"x"}' '{"ids":[1]}' "[\"$ID\"]" '"ids"'; do
        wait_many "$b"
        assert_error 400 invalid_request
    done
    wait_many '{"ids":['
    assert_error 400 invalid_json
}

run_cases
