#!/usr/bin/env bash
# Bad input: each request must get the contract's status and error body and
# change nothing (the task count is the same after), and the daemon must
# still answer /healthz after all of it.

. "$(dirname "$0")/lib.sh"

start_main_daemon '[server]
max_body_bytes = 1024'

# refuse STATUS CODE [req options] METHOD PATH [BODY]: the request is answered
# STATUS with error CODE, and the number of tasks did not change.
refuse() {
    local want_status=$1 want_code=$2 before
    shift 2
    count_tasks
    before=$COUNT
    req "$@"
    assert_error "$want_status" "$want_code"
    local status=$STATUS body=$BODY cmd=$LAST_CMD
    count_tasks
    [ "$COUNT" = "$before" ] ||
        fail "the refused request changed the task count from $before to $COUNT [after: $cmd -> $status $body]"
}

# ----- the body is not a JSON object

case_invalid_json() {
    refuse 400 invalid_json POST /v1/tasks '{"kind":'
}

case_trailing_garbage_after_json() {
    refuse 400 invalid_json POST /v1/tasks '{"kind":"sleep","args":{"seconds":0}} x'
}

case_empty_body() {
    refuse 400 invalid_json POST /v1/tasks ''
}

case_json_array() {
    refuse 400 invalid_request POST /v1/tasks '[{"kind":"sleep","args":{"seconds":0}}]'
}

case_json_string() {
    refuse 400 invalid_request POST /v1/tasks '"sleep"'
}

case_json_null() {
    refuse 400 invalid_request POST /v1/tasks 'null'
}

case_invalid_utf8_in_a_string() {
    printf '{"kind":"sleep","args":{"seconds":0},"name":"caf\xff"}' >"$CASE_TMP/bad.json"
    refuse 400 invalid_json --data-file "$CASE_TMP/bad.json" POST /v1/tasks
    printf '{"kind":"sleep","args":{"seconds":0,"result":"\xc0\xaf"}}' >"$CASE_TMP/overlong.json"
    refuse 400 invalid_json --data-file "$CASE_TMP/overlong.json" POST /v1/tasks
}

case_raw_control_byte_in_a_string() {
    printf '{"kind":"sleep","args":{"seconds":0},"name":"a\001b"}' >"$CASE_TMP/ctl.json"
    refuse 400 invalid_json --data-file "$CASE_TMP/ctl.json" POST /v1/tasks
}

# ----- kind

case_missing_kind() {
    refuse 400 invalid_request POST /v1/tasks '{"args":{"seconds":1}}'
}

case_kind_not_a_string() {
    refuse 400 invalid_request POST /v1/tasks '{"kind":1,"args":{"seconds":1}}'
    refuse 400 invalid_request POST /v1/tasks '{"kind":["sleep"],"args":{"seconds":1}}'
}

case_unknown_kind() {
    refuse 400 unknown_kind POST /v1/tasks '{"kind":"nope","args":{}}'
}

case_disabled_kind_exec_is_403() {
    refuse 403 kind_disabled POST /v1/tasks '{"kind":"exec","args":{"argv":["/bin/true"]}}'
}

case_malformed_exec_is_400_before_403() {
    refuse 400 invalid_request POST /v1/tasks '{"kind":"exec","args":{}}'
    refuse 400 invalid_request POST /v1/tasks '{"kind":"exec","args":{"argv":"/bin/true"}}'
}

case_disabled_kind_http_is_403() {
    refuse 403 kind_disabled POST /v1/tasks '{"kind":"http","args":{"url":"http://127.0.0.1:1/"}}'
}

case_malformed_http_is_400_before_403() {
    refuse 400 invalid_request POST /v1/tasks '{"kind":"http","args":{}}'
}

# ----- args

case_args_not_an_object() {
    refuse 400 invalid_request POST /v1/tasks '{"kind":"sleep","args":[1]}'
    refuse 400 invalid_request POST /v1/tasks '{"kind":"sleep","args":"seconds=1"}'
}

case_sleep_without_seconds() {
    refuse 400 invalid_request POST /v1/tasks '{"kind":"sleep","args":{}}'
    refuse 400 invalid_request POST /v1/tasks '{"kind":"sleep"}'
}

case_seconds_negative() {
    refuse 400 invalid_request POST /v1/tasks '{"kind":"sleep","args":{"seconds":-1}}'
}

case_seconds_a_string() {
    refuse 400 invalid_request POST /v1/tasks '{"kind":"sleep","args":{"seconds":"1"}}'
}

case_seconds_1e400() {
    refuse 400 invalid_request POST /v1/tasks '{"kind":"sleep","args":{"seconds":1e400}}'
}

case_seconds_null() {
    refuse 400 invalid_request POST /v1/tasks '{"kind":"sleep","args":{"seconds":null}}'
}

# ----- other fields

case_timeout_zero() {
    refuse 400 invalid_request POST /v1/tasks '{"kind":"sleep","args":{"seconds":1},"timeout":0}'
}

case_timeout_negative() {
    refuse 400 invalid_request POST /v1/tasks '{"kind":"sleep","args":{"seconds":1},"timeout":-5}'
}

case_timeout_a_string() {
    refuse 400 invalid_request POST /v1/tasks '{"kind":"sleep","args":{"seconds":1},"timeout":"5"}'
}

case_name_not_a_string() {
    refuse 400 invalid_request POST /v1/tasks '{"kind":"sleep","args":{"seconds":0},"name":123}'
    refuse 400 invalid_request POST /v1/tasks '{"kind":"sleep","args":{"seconds":0},"name":{"a":1}}'
}

case_queue_not_a_string() {
    refuse 400 invalid_request POST /v1/tasks '{"kind":"sleep","args":{"seconds":0},"queue":5}'
}

case_unknown_queue() {
    refuse 400 unknown_queue POST /v1/tasks '{"kind":"sleep","args":{"seconds":0},"queue":"nosuch"}'
}

# ----- size

case_body_just_under_the_limit_is_accepted() {
    local name
    name=$(printf '%0900d' 0)
    req POST /v1/tasks "{\"kind\":\"sleep\",\"args\":{\"seconds\":0},\"name\":\"$name\"}"
    assert_status 201
    assert_jq '.name | length' 900
}

case_body_of_4kb_is_413() {
    printf '{"kind":"sleep","args":{"seconds":0},"name":"%04096d"}' 0 >"$CASE_TMP/4k.json"
    refuse 413 payload_too_large --data-file "$CASE_TMP/4k.json" POST /v1/tasks
}

case_chunked_body_over_the_limit_is_413() {
    # No Content-Length to check up front: the limit must hold while reading.
    printf '{"kind":"sleep","args":{"seconds":0},"name":"%04096d"}' 0 >"$CASE_TMP/4k.json"
    refuse 413 payload_too_large -H 'Transfer-Encoding: chunked' \
        --data-file "$CASE_TMP/4k.json" POST /v1/tasks
}

case_body_of_2mb_is_413() {
    {
        printf '{"kind":"sleep","args":{"seconds":0},"name":"'
        head -c 2097152 /dev/zero | tr '\0' a
        printf '"}'
    } >"$CASE_TMP/2m.json"
    refuse 413 payload_too_large --data-file "$CASE_TMP/2m.json" POST /v1/tasks
}

# ----- unknown ids

case_unknown_id_is_404_on_every_task_endpoint() {
    refuse 404 not_found GET /v1/tasks/t_nosuchtask
    refuse 404 not_found POST /v1/tasks/t_nosuchtask/cancel
    refuse 404 not_found DELETE /v1/tasks/t_nosuchtask
    refuse 404 not_found GET '/v1/tasks/t_nosuchtask/wait?timeout=1'
    refuse 404 not_found GET /v1/tasks/t_nosuchtask/output
    refuse 404 not_found POST /v1/wait '{"ids":["t_nosuchtask"],"timeout":1}'
}

case_odd_ids_are_404_not_a_crash() {
    local id
    for id in "$(printf 'x%.0s' {1..300})" '%ff%fe' 't_%20'; do
        req GET "/v1/tasks/$id"
        assert_error 404 not_found
    done
    # %00 would cut the path at the NUL: refused as framing (test_framing.sh).
    req GET "/v1/tasks/%00"
    assert_error 400 invalid_request
}

# ----- still alive

case_healthz_still_answers_after_all_bad_input() {
    req GET /healthz
    assert_status 200
    assert_jq .status ok
    # And a good request still works.
    create '{"kind":"sleep","args":{"seconds":0}}'
}

run_cases
