#!/usr/bin/env bash
# GET /v1/tasks: filters, limit, paging with after/next, bad query values.
# The daemon starts empty, so the first case sees no task at all.

. "$(dirname "$0")/lib.sh"

start_main_daemon '[queue:jobs]
concurrency = 0'

case_empty_daemon_lists_nothing() {
    req GET /v1/tasks
    assert_status 200
    assert_jq .tasks '[]'
    assert_jq .next null
}

case_filters_by_state_kind_and_queue() {
    local running ok failed
    create '{"kind":"sleep","args":{"seconds":30},"queue":"jobs"}'; running=$ID
    create '{"kind":"sleep","args":{"seconds":0}}'; ok=$ID
    create '{"kind":"sleep","args":{"seconds":0,"fail":"boom"}}'; failed=$ID
    req POST /v1/wait "{\"ids\":$(ids_json "$ok" "$failed"),\"timeout\":10}"
    assert_jq '.done | length' 2
    await_state "$running" running

    req GET '/v1/tasks?state=running'
    assert_status 200
    assert_jq '[.tasks[].id]' "[\"$running\"]"
    req GET '/v1/tasks?state=active'
    assert_jq '[.tasks[].id]' "[\"$running\"]"
    req GET '/v1/tasks?state=succeeded'
    assert_jq '[.tasks[].id]' "[\"$ok\"]"
    req GET '/v1/tasks?state=failed'
    assert_jq '[.tasks[].id]' "[\"$failed\"]"
    req GET '/v1/tasks?state=done'
    assert_jq '[.tasks[].id]' "[\"$ok\",\"$failed\"]"
    req GET '/v1/tasks?state=pending'
    assert_jq .tasks '[]'
    req GET '/v1/tasks?queue=jobs'
    assert_jq '[.tasks[].id]' "[\"$running\"]"
    req GET '/v1/tasks?queue=default'
    assert_jq '[.tasks[].id]' "[\"$ok\",\"$failed\"]"
    req GET '/v1/tasks?kind=sleep'
    assert_jq '[.tasks[].id]' "[\"$running\",\"$ok\",\"$failed\"]"
    req GET '/v1/tasks?kind=exec'
    assert_jq .tasks '[]'
    req GET '/v1/tasks?state=done&queue=default&kind=sleep'
    assert_jq '[.tasks[].id]' "[\"$ok\",\"$failed\"]"
    req GET '/v1/tasks?state=active&queue=default'
    assert_jq .tasks '[]'
}

case_bad_state_is_400() {
    req GET '/v1/tasks?state=bogus'
    assert_error 400 invalid_request
}

case_bad_limit_is_400() {
    local l
    for l in 0 -1 abc 1.5 10abc ''; do
        req GET "/v1/tasks?limit=$l"
        assert_error 400 invalid_request
    done
}

case_limit_and_paging_walk_every_task_once() {
    # 1001 tasks in one curl run (one kept-alive connection), then pages.
    local i page after body=$CASE_TMP/task.json
    printf '%s' '{"kind":"sleep","args":{"seconds":0}}' >"$body"
    for ((i = 0; i < 1001; i++)); do
        printf 'url = "%s/v1/tasks"\ndata-binary = "@%s"\nnext\n' "$BASE" "$body"
    done >"$CASE_TMP/create.cfg"
    curl -sS -K "$CASE_TMP/create.cfg" | jq -r '.id // ("ERROR " + tostring)' >"$CASE_TMP/created"
    ! grep -q '^ERROR' "$CASE_TMP/created" ||
        fail "a create failed: $(grep -m1 '^ERROR' "$CASE_TMP/created")"
    assert_eq "$(wc -l <"$CASE_TMP/created")" 1001 "tasks created"

    req GET /v1/tasks
    assert_jq '.tasks | length' 100
    assert_jq '.next == .tasks[-1].id' true

    req GET '/v1/tasks?limit=5000'
    assert_status 200
    assert_jq '.tasks | length' 1000
    assert_jq '.next == .tasks[-1].id' true
    req GET '/v1/tasks?limit=1000'
    assert_jq '.tasks | length' 1000
    req GET '/v1/tasks?limit=99999999999999999999999'
    assert_status 200
    assert_jq '.tasks | length' 1000

    # Walk all pages of 300: every task once, in creation order, then null.
    : >"$CASE_TMP/walked"
    after=""
    for ((page = 0; page < 20; page++)); do
        req GET "/v1/tasks?limit=300${after:+&after=$after}"
        assert_status 200
        jqb '.tasks[].id' >>"$CASE_TMP/walked"
        after=$(jqb .next)
        [ "$after" = null ] && break
        assert_jq '.tasks | length' 300
        assert_jq ".tasks[-1].id" "$after"
    done
    [ "$after" = null ] || fail "paging did not end after 20 pages of 300"
    sort -c -u "$CASE_TMP/walked" || fail "paged ids are not strictly increasing"
    local missing
    missing=$(sort "$CASE_TMP/created" | comm -23 - <(sort "$CASE_TMP/walked") | head -n 3)
    [ -z "$missing" ] || fail "created tasks missing from the pages: $missing"
    req GET '/v1/tasks?limit=1000'
    jqb '.tasks[].id' >"$CASE_TMP/first1000"
    assert_eq "$(head -n 1000 "$CASE_TMP/walked" | cmp - "$CASE_TMP/first1000" && echo same)" \
        same "first 1000 walked ids vs ?limit=1000"

    # After the last id there is nothing.
    req GET "/v1/tasks?after=$(tail -n1 "$CASE_TMP/walked")"
    assert_jq .tasks '[]'
    assert_jq .next null
}

run_cases
