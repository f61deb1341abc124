#!/usr/bin/env bash
# Queues ([queue:NAME] concurrency) and the max_tasks capacity limit.

. "$(dirname "$0")/lib.sh"

start_main_daemon '[queue:jobs]
concurrency = 2
[queue:pair]
concurrency = 2'

# count_in QUEUE STATE: sets N to the number of QUEUE's tasks in STATE.
count_in() {
    req GET "/v1/tasks?queue=$1&state=$2&limit=1000"
    assert_status 200
    N=$(jqb '.tasks | length')
}

# The bound is read off the daemon's own timestamps, not off counts taken
# right after the creates: on a loaded machine four creates can take longer
# than a task runs, and the first two may be done before the count.
case_concurrency_2_runs_two_at_a_time() {
    local ids=() i
    for i in 1 2 3 4; do
        create "{\"kind\":\"sleep\",\"args\":{\"seconds\":1,\"result\":$i},\"queue\":\"jobs\"}"
        ids+=("$ID")
    done
    req POST /v1/wait "{\"ids\":$(ids_json "${ids[@]}"),\"timeout\":10}"
    assert_status 200
    assert_jq '[.done[].state]' '["succeeded","succeeded","succeeded","succeeded"]'
    assert_jq '[.done[].result]' '[1,2,3,4]'
    # At each start, how many tasks were running (RFC 3339 UTC strings of one
    # format compare in time order): never more than 2, and 2 at some start.
    assert_jq '.done as $t | [$t[] | .started_at as $s |
        [$t[] | select(.started_at <= $s and .finished_at > $s)] | length] | max' 2
    # Creation order: the third and fourth started only when a slot freed.
    assert_jq '.done[2].started_at >= ([.done[0].finished_at, .done[1].finished_at] | min)' true
    assert_jq '.done[3].started_at >= ([.done[0].finished_at, .done[1].finished_at] | max)' true
}

case_info_reports_each_queue() {
    local ids=() i
    for i in 1 2 3; do
        create '{"kind":"sleep","args":{"seconds":30},"queue":"pair"}'
        ids+=("$ID")
    done
    req GET /v1/info
    assert_status 200
    assert_jq .queues.pair '{"concurrency":2,"running":2,"pending":1,"paused":false}'
    assert_jq .queues.default.concurrency 0
    for i in "${ids[@]}"; do
        req POST "/v1/tasks/$i/cancel"
    done
    req GET /v1/info
    assert_jq .queues.pair '{"concurrency":2,"running":0,"pending":0,"paused":false}'
}

case_default_queue_runs_all_at_once() {
    local t0 ids=() i
    t0=$(now)
    for i in 1 2 3 4; do
        create '{"kind":"sleep","args":{"seconds":1}}'
        ids+=("$ID")
    done
    req POST /v1/wait "{\"ids\":$(ids_json "${ids[@]}"),\"timeout\":10}"
    assert_status 200
    assert_jq '.done | length' 4
    assert_between "$(elapsed "$t0")" 0.9 1.8 "seconds for 4 one-second tasks in the default queue"
}

case_cancelling_frees_a_slot_and_skips_a_pending_task() {
    local a b c d
    create '{"kind":"sleep","args":{"seconds":30},"queue":"pair"}'; a=$ID
    create '{"kind":"sleep","args":{"seconds":30},"queue":"pair"}'; b=$ID
    create '{"kind":"sleep","args":{"seconds":30},"queue":"pair"}'; c=$ID
    create '{"kind":"sleep","args":{"seconds":30},"queue":"pair"}'; d=$ID
    await_state "$b" running
    req GET "/v1/tasks/$c"
    assert_jq .state pending
    # A cancelled pending task never starts.
    req POST "/v1/tasks/$c/cancel"
    assert_status 200
    assert_jq .started_at null
    # Cancelling a running task lets the next pending one (d, not c) start.
    req POST "/v1/tasks/$a/cancel"
    assert_status 200
    await_state "$d" running
    req GET "/v1/tasks/$c"
    assert_jq .state cancelled
    count_in pair running
    assert_eq "$N" 2 "running tasks in queue pair"
    req POST "/v1/tasks/$b/cancel"
    req POST "/v1/tasks/$d/cancel"
}

case_unknown_queue_is_400() {
    local before
    count_tasks; before=$COUNT
    req POST /v1/tasks '{"kind":"sleep","args":{"seconds":0},"queue":"nosuch"}'
    assert_error 400 unknown_queue
    count_tasks
    assert_eq "$COUNT" "$before" "task count after a refused create"
}

case_max_tasks_capacity_is_503_with_retry_after() {
    start_daemon '[tasks]
max_tasks = 3'
    local a b c key="cap-$RANDOM"
    create -H "Idempotency-Key: $key" '{"kind":"sleep","args":{"seconds":30}}'; a=$ID
    create '{"kind":"sleep","args":{"seconds":30}}'; b=$ID
    create '{"kind":"sleep","args":{"seconds":30}}'; c=$ID

    req POST /v1/tasks '{"kind":"sleep","args":{"seconds":30}}'
    assert_error 503 capacity
    [[ $(header Retry-After) =~ ^[0-9]+$ ]] ||
        fail "Retry-After is '$(header Retry-After)', expected a number of seconds$(ctx)"

    # A known key still answers with its task at capacity.
    req -H "Idempotency-Key: $key" POST /v1/tasks '{"kind":"sleep","args":{"seconds":30}}'
    assert_status 200
    assert_jq .id "$a"

    # A refused create does not take its key.
    req -H "Idempotency-Key: $key-2" POST /v1/tasks '{"kind":"sleep","args":{"seconds":30}}'
    assert_error 503 capacity
    count_tasks
    assert_eq "$COUNT" 3 "tasks held at capacity"

    # Cancelling one frees a slot; the cancelled task is still held.
    req POST "/v1/tasks/$b/cancel"
    assert_status 200
    req -H "Idempotency-Key: $key-2" POST /v1/tasks '{"kind":"sleep","args":{"seconds":30}}'
    assert_status 201
    [ "$(jqb .id)" != "$a" ] || fail "key-2 gave the task of key"
    req GET "/v1/tasks/$b"
    assert_jq .state cancelled

    req POST /v1/tasks '{"kind":"sleep","args":{"seconds":30}}'
    assert_error 503 capacity
    stop_daemon
}

run_cases
