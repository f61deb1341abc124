#!/usr/bin/env bash
# The seed's asyncio example over HTTP, and 200 waits held open at once.

. "$(dirname "$0")/lib.sh"

start_main_daemon '[server]
log_level = info'

case_asyncio_example_awaits_both_in_3_seconds() {
    # asyncio.create_task(process_item(1, 3)); create_task(process_item(2, 1));
    # await asyncio.wait([t1, t2])
    local t0 a b el
    t0=$(now)
    create '{"kind":"sleep","args":{"seconds":3,"result":"Result for item 1"},"name":"item 1"}'; a=$ID
    create '{"kind":"sleep","args":{"seconds":1,"result":"Result for item 2"},"name":"item 2"}'; b=$ID
    req POST /v1/wait "{\"ids\":$(ids_json "$a" "$b"),\"return_when\":\"ALL_COMPLETED\",\"timeout\":10}"
    el=$(elapsed "$t0")
    assert_status 200
    assert_between "$el" 3.0 3.5 "seconds for the asyncio example"
    assert_jq '[.done[].id]' "$(ids_json "$a" "$b")"
    assert_jq '[.done[].state]' '["succeeded","succeeded"]'
    assert_jq '[.done[].result]' '["Result for item 1","Result for item 2"]'
    assert_jq .pending '[]'
}

case_200_concurrent_waits_all_answer_done() {
    local t0 i el body=$CASE_TMP/task.json
    printf '%s' '{"kind":"sleep","args":{"seconds":1}}' >"$body"
    for ((i = 0; i < 200; i++)); do
        printf 'url = "%s/v1/tasks"\ndata-binary = "@%s"\nnext\n' "$BASE" "$body"
    done >"$CASE_TMP/create.cfg"
    t0=$(now)
    curl -sS --max-time 20 -K "$CASE_TMP/create.cfg" |
        jq -r '.id // ("ERROR " + tostring)' >"$CASE_TMP/ids"
    ! grep -q '^ERROR' "$CASE_TMP/ids" || fail "a create failed: $(grep -m1 '^ERROR' "$CASE_TMP/ids")"
    assert_eq "$(sort -u "$CASE_TMP/ids" | wc -l)" 200 "distinct tasks created"

    mkdir "$CASE_TMP/w"
    i=0
    while read -r id; do
        printf 'url = "%s/v1/tasks/%s/wait?timeout=30"\noutput = "%s/w/%03d"\n' \
            "$BASE" "$id" "$CASE_TMP" $((i++))
    done <"$CASE_TMP/ids" >"$CASE_TMP/wait.cfg"
    curl -s --max-time 25 --parallel --parallel-immediate --parallel-max 200 \
        -w '%{http_code}\n' -K "$CASE_TMP/wait.cfg" >"$CASE_TMP/codes"
    el=$(elapsed "$t0")

    assert_eq "$(grep -c '^200$' "$CASE_TMP/codes")" 200 \
        "answers 200 out of 200 (codes: $(sort "$CASE_TMP/codes" | uniq -c | tr '\n' ' '))"
    assert_eq "$(cat "$CASE_TMP"/w/* | jq -r 'select(.done == true and .state == "succeeded") | .id' |
        sort -u | wc -l)" 200 "waits answered done:true and succeeded"
    assert_less "$el" 3 "seconds to create 200 one-second tasks and await them all at once"
}

run_cases
