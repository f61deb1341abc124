#!/usr/bin/env bash
# GET /v1/tasks: filters, limit, paging with after/next, bad query values;
# name=, order=desc (newest first, also across a restart) and fields=.
# The daemon starts empty, so the first case sees no task at all.

. "$(dirname "$0")/lib.sh"

start_main_daemon '[queue:jobs]
concurrency = 0
[kinds]
exec = true
[exec]
allow = /bin/* /usr/bin/*
allow_root = true
path = /usr/local/bin:/usr/bin:/bin'

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

# name=: the exact name, nothing else; combined with the other filters.
case_name_filters_by_the_exact_name() {
    local a b
    create '{"kind":"sleep","name":"nightly backup","args":{"seconds":0}}'; a=$ID
    create '{"kind":"sleep","name":"nightly backup 2","args":{"seconds":0}}'
    create '{"kind":"sleep","name":"Nightly backup","args":{"seconds":0}}'
    create '{"kind":"sleep","args":{"seconds":0}}'
    create '{"kind":"sleep","name":"nightly backup","queue":"jobs","args":{"seconds":30}}'; b=$ID
    await_state "$b" running
    req GET "/v1/tasks/$a/wait?timeout=10"
    assert_jq .state succeeded
    req GET '/v1/tasks?name=nightly%20backup'
    assert_status 200
    assert_jq '[.tasks[].id]' "[\"$a\",\"$b\"]"
    assert_jq '[.tasks[].name] | unique' '["nightly backup"]'
    assert_jq .next null
    req GET '/v1/tasks?name=nightly%20backup&queue=jobs&state=running&kind=sleep'
    assert_jq '[.tasks[].id]' "[\"$b\"]"
    req GET '/v1/tasks?name=nightly%20backup&state=done'
    assert_jq '[.tasks[].id]' "[\"$a\"]"
    req GET '/v1/tasks?name=nightly%20backup&state=pending'
    assert_jq .tasks '[]'
    req GET '/v1/tasks?name=nightly'
    assert_jq .tasks '[]'
    req GET '/v1/tasks?name=nightly%20backup&limit=1'
    assert_jq '[.tasks[].id]' "[\"$a\"]"
    assert_jq .next "$a"
    req GET "/v1/tasks?name=nightly%20backup&limit=1&after=$a"
    assert_jq '[.tasks[].id]' "[\"$b\"]"
    assert_jq .next null
    req POST "/v1/tasks/$b/cancel"
    assert_status 200
    create '{"kind":"sleep","name":"caf\u00e9 \u2615","args":{"seconds":0}}'; a=$ID
    req GET '/v1/tasks?name=caf%C3%A9%20%E2%98%95'
    assert_jq '[.tasks[].id]' "[\"$a\"]"
}

# order=desc: newest first; after= then means "older than", and paging by
# next walks every task once down to the oldest, also past a cursor that
# was deleted between two pages.
case_desc_lists_newest_first_and_pages_to_the_oldest() {
    local i ids=() page after want
    for ((i = 0; i < 7; i++)); do
        create '{"kind":"sleep","name":"desc-walk","args":{"seconds":0}}'; ids+=("$ID")
    done
    want=$(ids_json "${ids[@]}")
    req GET '/v1/tasks?name=desc-walk&order=desc'
    assert_status 200
    assert_jq '[.tasks[].id]' "$(jq -c reverse <<<"$want")"
    assert_jq .next null
    req GET '/v1/tasks?name=desc-walk&order=asc'
    assert_jq '[.tasks[].id]' "$want"
    # after = the 4th task: the three older ones, newest first.
    req GET "/v1/tasks?name=desc-walk&order=desc&after=${ids[3]}"
    assert_jq '[.tasks[].id]' "$(ids_json "${ids[2]}" "${ids[1]}" "${ids[0]}")"
    req GET "/v1/tasks?name=desc-walk&order=desc&after=${ids[0]}"
    assert_jq .tasks '[]'
    assert_jq .next null
    # Pages of 3: 6 5 4 | 3 2 1 | 0.
    : >"$CASE_TMP/walked"
    after=""
    for ((page = 0; page < 5; page++)); do
        req GET "/v1/tasks?name=desc-walk&order=desc&limit=3${after:+&after=$after}"
        assert_status 200
        jqb '.tasks[].id' >>"$CASE_TMP/walked"
        after=$(jqb .next)
        [ "$after" = null ] && break
        assert_jq '.tasks | length' 3
        assert_jq '.tasks[-1].id' "$after"
    done
    [ "$after" = null ] || fail "desc paging did not end after 5 pages of 3"
    assert_eq "$(jq -Rnc '[inputs]' <"$CASE_TMP/walked")" "$(jq -c reverse <<<"$want")" \
        "ids walked newest first in pages of 3"
    # The cursor is deleted before the next page is asked for.
    req GET '/v1/tasks?name=desc-walk&order=desc&limit=2'
    assert_jq .next "${ids[5]}"
    req DELETE "/v1/tasks/${ids[5]}"
    assert_status 204
    req GET "/v1/tasks?name=desc-walk&order=desc&limit=2&after=${ids[5]}"
    assert_jq '[.tasks[].id]' "$(ids_json "${ids[4]}" "${ids[3]}")"
}

# Newest-first pages keep the bounds: at most max_list_scan tasks looked at
# and max_list_bytes of tasks per page (counted on the objects as cut by
# fields=), each match still listed once, newest first.
case_desc_pages_keep_max_list_scan_and_bytes() {
    local i conf want=() big
    conf='[server]
max_list_scan = 4
max_list_bytes = 1500'
    start_daemon "$conf"
    big=$(printf 'r%.0s' {1..400})
    # 15 tasks, a match every third (14 12 ... in desc: 12, 9, 6, 3, 0);
    # each match's object is over 800 bytes (its result is in args too).
    for ((i = 0; i < 15; i++)); do
        if ((i % 3 == 0)); then
            create '{"kind":"sleep","name":"match","args":{"seconds":0,"result":"'"$big"'"}}'
            want=("$ID" "${want[@]}")
        else
            create '{"kind":"sleep","args":{"seconds":0}}'
        fi
    done
    walk_desc() {                       # QUERY MAX_ON_A_PAGE: sets PAGES
        local after="" page
        : >"$CASE_TMP/walked"
        for ((page = 0; page < 20; page++)); do
            req GET "/v1/tasks?name=match&order=desc$1${after:+&after=$after}"
            assert_status 200
            assert_jq ".tasks | length <= $2" true
            jqb '.tasks[].id' >>"$CASE_TMP/walked"
            after=$(jqb .next)
            [ "$after" = null ] && break
        done
        [ "$after" = null ] || fail "desc paging ($1) did not end after 20 pages"
        PAGES=$((page + 1))
        assert_eq "$(jq -Rnc '[inputs]' <"$CASE_TMP/walked")" "$(ids_json "${want[@]}")" \
            "matches walked newest first ($1)"
    }
    # Small objects: the scan bound ends the pages (4 looked at: at most
    # 2 matches), so 15 tasks take at least 4 pages.
    walk_desc '&fields=id' 2
    assert_less 3 "$PAGES" "pages of the desc walk with max_list_scan 4"
    # Whole objects: two of them pass max_list_bytes, so one a page.
    walk_desc '' 1
    walk_desc '&limit=1000' 1
    stop_daemon
}

# fields=: only those fields (and id), in the object's order; an exec job's
# output stays out of the answer.
case_fields_leave_out_what_was_not_asked() {
    local e s
    create '{"kind":"exec","name":"fields-out","args":{"argv":["/bin/sh","-c","head -c 20000 /dev/zero | tr \"\\000\" x"]}}'; e=$ID
    req GET "/v1/tasks/$e/wait?timeout=10"
    assert_jq .state succeeded
    assert_jq '.result.stdout | length' 20000
    create '{"kind":"sleep","name":"fields-out","args":{"seconds":0,"result":"kept"}}'; s=$ID

    req GET '/v1/tasks?name=fields-out'
    assert_jq '.tasks[0].result.stdout | length' 20000
    req GET '/v1/tasks?name=fields-out&fields=id,state'
    assert_status 200
    assert_jq '[.tasks[] | keys_unsorted]' '[["id","state"],["id","state"]]'
    assert_jq '[.tasks[] | [.id, .state]]' "[[\"$e\",\"succeeded\"],[\"$s\",\"succeeded\"]]"
    ! grep -q xxxxxxxxxx "$CASE_TMP/body" || fail "the exec job's output is in a fields=id,state answer"
    [ "$(wc -c <"$CASE_TMP/body")" -lt 1000 ] || fail "fields=id,state answer of $(wc -c <"$CASE_TMP/body") bytes"
    # id comes without asking; fields come in the task object's order.
    req GET '/v1/tasks?name=fields-out&fields=result,name&order=desc&limit=1'
    assert_jq '.tasks' "[{\"id\":\"$s\",\"name\":\"fields-out\",\"result\":\"kept\"}]"
    assert_jq .next "$s"
    req GET '/v1/tasks?name=fields-out&fields=id'
    assert_jq '[.tasks[] | keys_unsorted]' '[["id"],["id"]]'
    req GET '/v1/tasks?name=fields-out&fields=kind,error,done,created_at,state,state'
    assert_jq '.tasks[0] | keys_unsorted' '["id","kind","state","done","created_at","error"]'
    # Every field named: the same objects as without fields=.
    local all
    all=$(jq -r 'keys_unsorted | join(",")' <<<"$(req GET "/v1/tasks/$s"; printf '%s' "$BODY")")
    req GET "/v1/tasks?name=fields-out&fields=$all"
    jqb .tasks >"$CASE_TMP/cut"
    req GET '/v1/tasks?name=fields-out'
    assert_eq "$(jqb .tasks)" "$(cat "$CASE_TMP/cut")" "fields=<every field> vs no fields="
}

case_bad_order_or_fields_is_400_naming_it() {
    local v
    for v in up DESC '' 'asc,desc'; do
        req GET "/v1/tasks?order=$v"
        assert_error 400 invalid_request
        assert_jq '.error.message | contains("order")' true
    done
    req GET '/v1/tasks?fields=id,bogus,state'
    assert_error 400 invalid_request
    assert_jq '.error.message | contains("\"bogus\"")' true
    req GET '/v1/tasks?fields=id,output'
    assert_error 400 invalid_request
    assert_jq '.error.message | contains("\"output\"")' true
    for v in '' 'id,,state' 'id,' 'Id' 'state%20'; do
        req GET "/v1/tasks?fields=$v"
        assert_error 400 invalid_request
    done
    # A bad value is refused before anything is listed, whatever else is right.
    req GET '/v1/tasks?state=done&order=desc&fields=nope'
    assert_error 400 invalid_request
}

# Across a restart the tasks come back in their creation order: newest
# first is still newest first (with the filters and fields=), a cursor
# from before the restart still pages on, and a task created after it is
# the newest.
case_desc_order_survives_a_restart() {
    local conf i ids=() n
    conf="[queue:one]
concurrency = 1
[storage]
state_dir = $CASE_TMP/state"
    start_daemon "$conf"
    # Newest first: 5 (one, pending) 4 3 (one, pending) 2 1 (one, running) 0.
    for ((i = 0; i < 6; i++)); do
        if ((i % 2)); then
            create '{"kind":"sleep","queue":"one","args":{"seconds":60}}'
        else
            create '{"kind":"sleep","args":{"seconds":0}}'
        fi
        ids=("$ID" "${ids[@]}")
    done
    await_state "${ids[4]}" running
    req GET '/v1/tasks?order=desc'
    assert_jq '[.tasks[].id]' "$(ids_json "${ids[@]}")"
    req GET '/v1/tasks?order=desc&limit=2'
    assert_jq .next "${ids[1]}"
    stop_daemon
    start_daemon "$conf"
    req GET '/v1/tasks?order=desc'
    assert_status 200
    assert_jq '[.tasks[].id]' "$(ids_json "${ids[@]}")"
    # The running one ended interrupted; the next pending one runs now.
    await_state "${ids[2]}" running
    req GET '/v1/tasks?order=desc&fields=state&queue=one'
    assert_jq '.tasks' "$(jq -nc '$ARGS.positional | [{id: .[0], state: "pending"},
        {id: .[2], state: "running"}, {id: .[4], state: "failed"}]' --args "${ids[@]}")"
    # The cursor of a page before the restart goes on after it.
    req GET "/v1/tasks?order=desc&limit=2&after=${ids[1]}"
    assert_jq '[.tasks[].id]' "$(ids_json "${ids[2]}" "${ids[3]}")"
    assert_jq .next "${ids[3]}"
    create '{"kind":"sleep","args":{"seconds":0}}'; n=$ID
    req GET '/v1/tasks?order=desc&limit=1&fields=id'
    assert_jq .tasks "[{\"id\":\"$n\"}]"
    stop_daemon
}

run_cases
