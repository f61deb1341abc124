#!/usr/bin/env bash
# One task at a time: create (POST /v1/tasks), poll, the sleep kind's result,
# fail and timeout, cancel, DELETE, Idempotency-Key.

. "$(dirname "$0")/lib.sh"

start_main_daemon '[queue:solo]
concurrency = 1'

TS_RE='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}[.][0-9]{3}Z$'
# jq: an RFC 3339 timestamp with milliseconds, as milliseconds since the epoch.
JQ_MS='def ms: (.[0:19] + "Z" | fromdate) * 1000 + (.[20:23] | tonumber);'

case_create_answers_201_with_location_and_every_field() {
    req POST /v1/tasks '{"kind":"sleep","args":{"seconds":30,"result":"r1"},"name":"first"}'
    assert_status 201
    assert_jq '["id","kind","name","queue","state","done","args","timeout",
                "created_at","started_at","finished_at","result","error"] - keys' '[]'
    local id
    id=$(jqb .id)
    assert_jq '.id | type == "string" and length > 0' true
    assert_eq "$(header Location)" "/v1/tasks/$id" "Location header"
    assert_jq .kind sleep
    assert_jq .name first
    assert_jq .queue default
    assert_jq '.state == "pending" or .state == "running"' true
    assert_jq .done false
    assert_jq .args.seconds 30
    assert_jq .args.result r1
    assert_jq .timeout null
    assert_jq ".created_at | test(\"$TS_RE\")" true
    assert_jq '.started_at == null or (.started_at | type == "string")' true
    assert_jq .finished_at null
    assert_jq .result null
    assert_jq .error null
    assert_jq '(now - (.created_at[0:19] + "Z" | fromdate)) | fabs < 10' true
}

case_create_keeps_timeout_and_queue() {
    create '{"kind":"sleep","args":{"seconds":30},"queue":"solo","timeout":5}'
    assert_jq .timeout 5
    assert_jq .queue solo
    assert_jq .name null
    # Free the solo queue's one slot for the cases after this one.
    req POST "/v1/tasks/$ID/cancel"
    assert_status 200
}

case_poll_returns_the_same_task() {
    create '{"kind":"sleep","args":{"seconds":30},"name":"polled"}'
    local id=$ID created
    created=$(jqb .created_at)
    req GET "/v1/tasks/$id"
    assert_status 200
    assert_jq .id "$id"
    assert_jq .name polled
    assert_jq .created_at "$created"
    assert_jq .done false
}

case_sleep_succeeds_with_its_result_after_sleeping() {
    create '{"kind":"sleep","args":{"seconds":0.3,"result":{"items":[1,2,3],"ok":true}}}'
    local id=$ID
    req GET "/v1/tasks/$id/wait?timeout=10"
    assert_status 200
    assert_jq .state succeeded
    assert_jq .done true
    assert_jq .result '{"items":[1,2,3],"ok":true}'
    assert_jq .error null
    assert_jq ".started_at | test(\"$TS_RE\")" true
    assert_jq ".finished_at | test(\"$TS_RE\")" true
    assert_jq "$JQ_MS (.started_at | ms) >= (.created_at | ms)" true
    assert_jq "$JQ_MS (.finished_at | ms) - (.started_at | ms) >= 290" true
    # A terminal state never changes: a later poll shows the same.
    req GET "/v1/tasks/$id"
    assert_jq .state succeeded
    assert_jq .result '{"items":[1,2,3],"ok":true}'
}

case_sleep_without_result_succeeds_with_null() {
    create '{"kind":"sleep","args":{"seconds":0}}'
    req GET "/v1/tasks/$ID/wait?timeout=10"
    assert_jq .state succeeded
    assert_jq .result null
    assert_jq .error null
}

case_sleep_with_fail_ends_failed_with_task_error() {
    create '{"kind":"sleep","args":{"seconds":0.1,"fail":"boom"}}'
    req GET "/v1/tasks/$ID/wait?timeout=10"
    assert_status 200
    assert_jq .state failed
    assert_jq .done true
    assert_jq .error.type task_error
    assert_jq .error.message boom
    assert_jq .result null
}

case_task_timeout_ends_timed_out() {
    create '{"kind":"sleep","args":{"seconds":30},"timeout":0.3}'
    local id=$ID t0
    assert_jq .timeout 0.3
    t0=$(now)
    req GET "/v1/tasks/$id/wait?timeout=10"
    assert_less "$(elapsed "$t0")" 5 "seconds until the timed-out task was done"
    assert_jq .state timed_out
    assert_jq .done true
    assert_jq .error.type timeout
    assert_jq '.error.message | type' string
    assert_jq .result null
}

case_timeout_longer_than_the_task_does_not_fire() {
    create '{"kind":"sleep","args":{"seconds":0.1,"result":7},"timeout":5}'
    req GET "/v1/tasks/$ID/wait?timeout=10"
    assert_jq .state succeeded
    assert_jq .result 7
}

case_utf8_text_and_any_json_result_round_trip() {
    create '{"kind":"sleep","args":{"seconds":0,"result":{"s":"caf\u00e9 \ud83d\ude00","n":[1.5,-2,null,true],"o":{}}},"name":"café ✓ 😀"}'
    assert_jq .name 'café ✓ 😀'
    req GET "/v1/tasks/$ID/wait?timeout=10"
    assert_jq .result '{"s":"café 😀","n":[1.5,-2,null,true],"o":{}}'
}

case_retention_forgets_finished_tasks_and_their_keys() {
    start_daemon '[tasks]
retention_seconds = 1'
    local done_id active_id t0 i
    create '{"kind":"sleep","args":{"seconds":3}}'
    active_id=$ID
    create -H 'Idempotency-Key: kept' '{"kind":"sleep","args":{"seconds":0}}'
    done_id=$ID
    t0=$(now)
    req GET "/v1/tasks/$done_id/wait?timeout=5"
    assert_jq .done true
    req GET "/v1/tasks/$done_id"
    assert_status 200
    # Bounded poll (5 s) until the finished task is forgotten.
    for ((i = 0; i < 100; i++)); do
        req GET "/v1/tasks/$done_id"
        [ "$STATUS" = 404 ] && break
        sleep 0.05
    done
    assert_error 404 not_found
    assert_between "$(elapsed "$t0")" 0.8 3 "seconds until a finished task was forgotten with retention_seconds = 1"
    # The running task is kept, and the key is free again.
    req GET "/v1/tasks/$active_id"
    assert_status 200
    assert_jq .done false
    req -H 'Idempotency-Key: kept' POST /v1/tasks '{"kind":"sleep","args":{"seconds":0}}'
    assert_status 201
    stop_daemon
}

case_ids_are_unique_and_increase_in_creation_order() {
    local a b c
    create '{"kind":"sleep","args":{"seconds":0}}'; a=$ID
    create '{"kind":"sleep","args":{"seconds":0}}'; b=$ID
    create '{"kind":"sleep","args":{"seconds":0}}'; c=$ID
    [ "$a" != "$b" ] && [ "$b" != "$c" ] || fail "repeated id: $a $b $c"
    printf '%s\n' "$a" "$b" "$c" | sort -c -u ||
        fail "ids do not increase as byte strings: $a $b $c"
}

case_cancel_a_sleeping_task() {
    create '{"kind":"sleep","args":{"seconds":30}}'
    local id=$ID
    await_state "$id" running
    req POST "/v1/tasks/$id/cancel"
    assert_status 200
    assert_jq .id "$id"
    assert_jq .state cancelled
    assert_jq .done true
    assert_jq .error.type cancelled
    assert_jq ".finished_at | test(\"$TS_RE\")" true
    req GET "/v1/tasks/$id"
    assert_jq .state cancelled
}

case_cancel_a_pending_task() {
    create '{"kind":"sleep","args":{"seconds":30},"queue":"solo"}'
    local first=$ID second
    await_state "$first" running
    create '{"kind":"sleep","args":{"seconds":30},"queue":"solo"}'
    second=$ID
    req GET "/v1/tasks/$second"
    assert_jq .state pending
    req POST "/v1/tasks/$second/cancel"
    assert_status 200
    assert_jq .state cancelled
    assert_jq .started_at null
    assert_jq .error.type cancelled
    req POST "/v1/tasks/$first/cancel"
    assert_status 200
    assert_jq .state cancelled
}

case_cancel_a_finished_task_is_409_with_the_task() {
    create '{"kind":"sleep","args":{"seconds":0,"result":"done"}}'
    local id=$ID
    req GET "/v1/tasks/$id/wait?timeout=10"
    assert_jq .state succeeded
    req POST "/v1/tasks/$id/cancel"
    assert_error 409 already_done
    assert_jq .task.id "$id"
    assert_jq .task.state succeeded
    assert_jq .task.result 'done'
    req GET "/v1/tasks/$id"
    assert_jq .state succeeded
}

case_cancel_twice_is_409_the_second_time() {
    create '{"kind":"sleep","args":{"seconds":30}}'
    local id=$ID
    req POST "/v1/tasks/$id/cancel"
    assert_status 200
    req POST "/v1/tasks/$id/cancel"
    assert_error 409 already_done
    assert_jq .task.state cancelled
}

case_delete_a_finished_task_forgets_it() {
    create '{"kind":"sleep","args":{"seconds":0}}'
    local id=$ID
    req GET "/v1/tasks/$id/wait?timeout=10"
    assert_jq .done true
    req DELETE "/v1/tasks/$id"
    assert_status 204
    assert_eq "$BODY" "" "body of 204"
    req GET "/v1/tasks/$id"
    assert_error 404 not_found
    req GET '/v1/tasks?limit=1000'
    assert_jq "[.tasks[].id] | index(\"$id\")" null
    req DELETE "/v1/tasks/$id"
    assert_error 404 not_found
}

case_delete_an_active_task_is_409() {
    create '{"kind":"sleep","args":{"seconds":30}}'
    local id=$ID
    req DELETE "/v1/tasks/$id"
    assert_error 409 not_done
    req GET "/v1/tasks/$id"
    assert_status 200
    assert_jq .done false
    req POST "/v1/tasks/$id/cancel"
    req DELETE "/v1/tasks/$id"
    assert_status 204
}

case_idempotency_key_returns_the_first_task() {
    local key="order-$RANDOM-$$" first before
    count_tasks; before=$COUNT
    create -H "Idempotency-Key: $key" '{"kind":"sleep","args":{"seconds":30},"name":"one"}'
    first=$ID
    req -H "Idempotency-Key: $key" POST /v1/tasks '{"kind":"sleep","args":{"seconds":1},"name":"two"}'
    assert_status 200
    assert_jq .id "$first"
    assert_jq .name one
    assert_jq .args.seconds 30
    create -H "Idempotency-Key: $key-other" '{"kind":"sleep","args":{"seconds":0}}'
    [ "$ID" != "$first" ] || fail "another key gave the same task $first"
    count_tasks
    assert_eq "$COUNT" "$((before + 2))" "tasks after three creates with two keys"
}

case_refused_create_does_not_take_the_key() {
    local key="refused-$RANDOM-$$"
    req -H "Idempotency-Key: $key" POST /v1/tasks '{"kind":"nope"}'
    assert_error 400 unknown_kind
    req -H "Idempotency-Key: $key" POST /v1/tasks '{"kind":"sleep","args":{"seconds":0}}'
    assert_status 201
}

case_deleted_task_frees_its_key() {
    local key="deleted-$RANDOM-$$" first
    create -H "Idempotency-Key: $key" '{"kind":"sleep","args":{"seconds":0}}'
    first=$ID
    req GET "/v1/tasks/$first/wait?timeout=10"
    req DELETE "/v1/tasks/$first"
    assert_status 204
    req -H "Idempotency-Key: $key" POST /v1/tasks '{"kind":"sleep","args":{"seconds":0}}'
    assert_status 201
    [ "$(jqb .id)" != "$first" ] || fail "the key of a deleted task still gave $first"
}

case_plain_curl_d_without_json_content_type_works() {
    local code
    code=$(curl -s -o "$CASE_TMP/b" -w '%{http_code}' \
        -d '{"kind":"sleep","args":{"seconds":0}}' "$BASE/v1/tasks")
    BODY=$(cat "$CASE_TMP/b")
    LAST_CMD="curl -d '{\"kind\":\"sleep\",\"args\":{\"seconds\":0}}' $BASE/v1/tasks"
    STATUS=$code
    assert_status 201
    assert_jq .kind sleep
}

case_unknown_top_level_fields_are_ignored() {
    create '{"kind":"sleep","args":{"seconds":0},"colour":"blue","priority":9}'
    assert_jq .kind sleep
}

case_output_of_a_sleep_task_is_400_no_output() {
    create '{"kind":"sleep","args":{"seconds":0}}'
    req GET "/v1/tasks/$ID/output"
    assert_error 400 no_output
}

run_cases
