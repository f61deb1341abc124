#!/usr/bin/env bash
# Tasks that await tasks: `after` dependencies and the group kind (all =
# asyncio.TaskGroup, settle = gather(return_exceptions=True), race,
# sequence). One failure cancels the siblings at once, results come in
# order, a race's losers really get SIGTERM, a sequence stops at its first
# failure, cancelling a group of 100 running jobs leaves no process, nested
# groups, a dependency that fails, a group's children inside a queue of
# concurrency 2, bad input that creates nothing, listing by parent,
# deleting a group, and a group and an after chain across a restart.

. "$(dirname "$0")/lib.sh"

# The machine (and CI) run as root, hence allow_root.
GROUPS_CONF='[kinds]
exec = true
[exec]
allow = /bin/* /usr/bin/*
allow_root = true
kill_grace_seconds = 5
path = /usr/local/bin:/usr/bin:/bin
[tasks]
max_group_tasks = 150
[queue:jobs]
concurrency = 2
[queue:one]
concurrency = 1
[notify]
allow = 127.0.0.1:9
max_attempts = 1'

start_main_daemon "$GROUPS_CONF"

# group MODE CHILD_JSON...: a group create body.
group() {
    local mode=$1 tasks
    shift
    tasks=$(printf '%s\n' "$@" | jq -sc .)
    printf '{"kind":"group","args":{"mode":"%s","tasks":%s}}' "$mode" "$tasks"
}

sleep_ok() { printf '{"kind":"sleep","args":{"seconds":%s,"result":%s}}' "$1" "$2"; }
sleep_fail() { printf '{"kind":"sleep","args":{"seconds":%s,"fail":"%s"}}' "$1" "$2"; }
# sh_job SCRIPT [QUEUE]: an exec child running /bin/sh -c SCRIPT.
sh_job() {
    jq -nc --arg s "$1" --arg q "${2:-default}" \
        '{kind:"exec",queue:$q,args:{argv:["/bin/sh","-c",$s]}}'
}

# wait_done ID [S]: GET .../wait until done (default 10 s); the answer is BODY.
wait_done() {
    req GET "/v1/tasks/$1/wait?timeout=${2:-10}"
    assert_status 200
    assert_jq .done true
}

# children ID: CHILDREN gets the group's child ids, one a line.
children() {
    req GET "/v1/tasks/$1"
    CHILDREN=$(jqb '.children[]')
}

# ms_of ISO: milliseconds since the epoch of an RFC 3339 time of the daemon.
ms_of() {
    local s=${1%Z} frac
    frac=${s##*.}
    printf '%s%s\n' "$(date -u -d "${s%.*}Z" +%s)" "$frac"
}

case_taskgroup_one_failure_cancels_running_siblings_within_100ms() {
    # The jobs start at the create's commit, the failing sleep at once: a
    # second leaves them time to be running on a loaded machine.
    create "$(group all "$(sh_job 'sleep 30')" "$(sh_job 'sleep 30')" \
        "$(sleep_fail 1 boom)" "$(sleep_ok 30 1)")"
    local g=$ID
    wait_done "$g"
    assert_jq .state failed
    assert_jq .error.type child_failed
    children "$g"
    local bad ids
    ids=($CHILDREN)
    bad=${ids[2]}
    req GET "/v1/tasks/$g"
    assert_jq '.error.message | contains("'"$bad"'") and contains("failed")' true
    req GET "/v1/tasks?parent=$g"
    assert_jq '[.tasks[].state]' '["cancelled","cancelled","failed","cancelled"]'
    assert_jq '[.tasks[0,1].result.signal]' '["SIGTERM","SIGTERM"]'
    # Measured on the daemon's own clock: from the failure to each
    # sibling's end (exec ones after their process group was reaped).
    local failed_at t gap
    failed_at=$(ms_of "$(jqb '.tasks[2].finished_at')")
    for t in 0 1 3; do
        gap=$(( $(ms_of "$(jqb ".tasks[$t].finished_at")") - failed_at ))
        assert_less "$gap" 100 "ms from the failure to sibling $t's end"
    done
    req GET "/v1/tasks/$g"
    assert_jq '.finished_at >= (.started_at)' true
}

case_gather_results_in_order_and_settle_keeps_every_outcome() {
    # The first child ends last: the order is the children's, not the ends'.
    create "$(group all "$(sleep_ok 0.3 '"a"')" "$(sleep_ok 0.1 '{"b":2}')" "$(sleep_ok 0 3)")"
    wait_done "$ID"
    assert_jq .state succeeded
    assert_jq .result '["a",{"b":2},3]'
    create "$(group settle "$(sleep_ok 0.3 1)" "$(sleep_fail 0.1 nope)" "$(sleep_ok 0.2 3)")"
    local g=$ID
    wait_done "$g"
    assert_jq .state succeeded
    assert_jq '[.result[].state]' '["succeeded","failed","succeeded"]'
    assert_jq '[.result[].result]' '[1,null,3]'
    assert_jq '.result[1].error' '{"type":"task_error","message":"nope"}'
    assert_jq '.result[0].error' null
    children "$g"
    assert_jq '[.result[].id]' "$(ids_json $CHILDREN)"
}

case_race_returns_the_fastest_and_sigterms_the_rest() {
    local mark=$CASE_TMP/term
    create "$(group race "$(sh_job "trap 'echo TERM >$mark; exit 0' TERM; sleep 30 & wait")" \
        "$(sleep_ok 1.5 '"fast"')" "$(sleep_ok 30 '"slow"')")"
    local g=$ID
    wait_done "$g"
    assert_jq .state succeeded
    assert_jq .result fast
    req GET "/v1/tasks?parent=$g"
    assert_jq '[.tasks[].state]' '["cancelled","succeeded","cancelled"]'
    [ "$(cat "$mark" 2>/dev/null)" = TERM ] ||
        fail "the losing exec job's trap did not see SIGTERM ($mark: $(cat "$mark" 2>&1))"
    # All fail: the group fails child_failed.
    create "$(group race "$(sleep_fail 0.1 x)" "$(sleep_fail 0 y)")"
    wait_done "$ID"
    assert_jq .state failed
    assert_jq .error.type child_failed
}

case_sequence_runs_in_turn_and_stops_at_the_first_failure() {
    create "$(group sequence "$(sleep_ok 0.1 1)" "$(sleep_ok 0.1 2)")"
    local g=$ID
    wait_done "$g"
    assert_jq .state succeeded
    assert_jq .result '[1,2]'
    req GET "/v1/tasks?parent=$g"
    assert_jq '.tasks[1].started_at >= .tasks[0].finished_at' true
    create "$(group sequence "$(sleep_ok 0.1 1)" "$(sleep_fail 0.1 stop)" "$(sleep_ok 0 3)")"
    g=$ID
    wait_done "$g"
    assert_jq .state failed
    assert_jq .error.type child_failed
    req GET "/v1/tasks?parent=$g"
    assert_jq '[.tasks[].state]' '["succeeded","failed","cancelled"]'
    assert_jq '.tasks[2].started_at' null
}

case_cancelling_a_group_of_100_running_jobs_leaves_no_process() {
    local marker="29$RANDOM.5" i kids=()
    for ((i = 0; i < 100; i++)); do
        kids+=("$(jq -nc --arg m "$marker" '{kind:"exec",args:{argv:["sleep",$m]}}')")
    done
    create "$(group all "${kids[@]}")"
    local g=$ID n=0
    for ((i = 0; i < 200; i++)); do
        req GET "/v1/tasks?parent=$g&state=running&limit=1000"
        n=$(jqb '.tasks | length')
        [ "$n" = 100 ] && break
        sleep 0.05
    done
    assert_eq "$n" 100 "children running"
    procs=$(pgrep -f "^sleep $marker" | wc -l)
    assert_eq "$procs" 100 "sleep processes"
    # wait_for with cancel: answers once every child has really stopped.
    req GET "/v1/tasks/$g/wait?timeout=0&cancel=true"
    assert_status 200
    assert_jq .state cancelled
    req GET "/v1/tasks?parent=$g&limit=1000"
    assert_jq '[.tasks[] | select(.state != "cancelled")] | length' 0
    procs=$(pgrep -f "^sleep $marker" | wc -l)
    assert_eq "$procs" 0 "sleep processes left after the group's cancel"
}

case_group_timeout_cancels_its_children() {
    create "$(jq -c '.timeout = 0.3' <<<"$(group settle "$(sh_job 'sleep 30')" "$(sleep_ok 30 1)")")"
    local g=$ID
    wait_done "$g"
    assert_jq .state timed_out
    assert_jq .error.type timeout
    req GET "/v1/tasks?parent=$g"
    assert_jq '[.tasks[].state]' '["cancelled","cancelled"]'
}

case_nested_groups() {
    create "$(group all "$(group settle "$(sleep_ok 0.1 1)" "$(sleep_fail 0 x)")" \
        "$(group race "$(sleep_ok 0.2 '"r"')" "$(sleep_ok 30 0)")" "$(sleep_ok 0 '"leaf"')")"
    local g=$ID
    wait_done "$g"
    assert_jq .state succeeded
    assert_jq '.result[1]' r
    assert_jq '.result[2]' leaf
    assert_jq '[.result[0][].state]' '["succeeded","failed"]'
    children "$g"
    local ids=($CHILDREN)
    req GET "/v1/tasks/${ids[0]}"
    assert_jq .parent "$g"
    assert_jq '.children | length' 2
    local inner
    inner=$(jqb '.children[0]')
    req GET "/v1/tasks/$inner"
    assert_jq .parent "${ids[0]}"
    assert_jq .children null
    assert_jq .after '[]'
    # A nested failure fails every level above it (all inside all).
    create "$(group all "$(group all "$(sleep_fail 0.1 deep)" "$(sleep_ok 30 0)")" "$(sleep_ok 30 0)")"
    wait_done "$ID"
    assert_jq .state failed
    assert_jq .error.type child_failed
}

case_after_waits_for_success_and_fails_on_a_failed_dependency() {
    # Long enough for b's create to find a still running on a loaded machine.
    create "$(sleep_ok 2 '"a"')"
    local a=$ID
    create "$(jq -c --arg a "$a" '.after = [$a]' <<<"$(sleep_ok 0 '"b"')")"
    local b=$ID
    assert_jq .state pending
    assert_jq .after "[\"$a\"]"
    wait_done "$b"
    assert_jq .state succeeded
    local started
    started=$(jqb .started_at)
    req GET "/v1/tasks/$a"
    [[ "$started" > "$(jqb .finished_at)" || "$started" == "$(jqb .finished_at)" ]] ||
        fail "b started at $started, before a finished at $(jqb .finished_at)"
    create "$(sleep_fail 0.2 broken)"
    local f=$ID
    create "$(jq -c --arg a "$f" '.after = [$a]' <<<"$(sleep_ok 0 1)")"
    local d=$ID
    wait_done "$d"
    assert_jq .state failed
    assert_jq .error.type dependency
    assert_jq ".error.message | contains(\"$f\") and contains(\"failed\")" true
    # On a task already failed: failed at once.
    create "$(jq -c --arg a "$f" '.after = [$a]' <<<"$(sleep_ok 0 1)")"
    assert_jq .state failed
    assert_jq .error.type dependency
}

case_ten_jobs_of_a_group_in_a_queue_of_two_never_run_three() {
    local dir=$CASE_TMP/slots i kids=()
    mkdir -p "$dir"
    # Each job counts the jobs running with it and fails if they are more
    # than the queue's concurrency; it logs what it saw.
    local script="touch $dir/run.\$\$; n=\$(ls $dir | grep -c '^run\\.'); echo \$n >>$dir/log;
        sleep 0.2; rm $dir/run.\$\$; [ \$n -le 2 ]"
    for ((i = 0; i < 10; i++)); do
        kids+=("$(sh_job "$script" jobs)")
    done
    # The group sits in the same queue: it takes no slot of it.
    create "$(jq -c '.queue = "jobs"' <<<"$(group all "${kids[@]}")")"
    wait_done "$ID" 20
    assert_jq .state succeeded
    assert_eq "$(wc -l <"$dir/log")" 10 "jobs that ran"
    assert_eq "$(sort -n "$dir/log" | tail -n1)" 2 "most jobs seen running at once"
}

# A child's delay, priority and retry are its own, as a top-level task's.
case_children_keep_their_delay_priority_and_retry() {
    create "$(group settle "$(jq -nc '{kind:"sleep",args:{seconds:0},delay:0.5,priority:7}')" \
        "$(jq -nc '{kind:"sleep",args:{seconds:0,fail:"x"},retry:{attempts:2,backoff:0}}')")"
    local g=$ID d r
    d=$(jq -r '.children[0]' <<<"$BODY"); r=$(jq -r '.children[1]' <<<"$BODY")
    req GET "/v1/tasks/$d"
    assert_jq .priority 7
    assert_jq '.not_before != null' true
    req GET "/v1/tasks/$g/wait?timeout=10"
    assert_jq .state succeeded
    req GET "/v1/tasks/$d"
    assert_jq '.started_at >= .not_before' true
    req GET "/v1/tasks/$r"
    assert_jq '[.state, .attempt]' '["failed",2]'
}

case_bad_input_creates_nothing() {
    count_tasks
    local before=$COUNT kids=() i
    req POST /v1/tasks '{"kind":"sleep","args":{"seconds":0},"after":["t_01NOSUCHTASK0000000000000"]}'
    assert_error 400 unknown_dependency
    assert_jq '.error.message | contains("t_01NOSUCHTASK0000000000000")' true
    req POST /v1/tasks '{"kind":"sleep","args":{"seconds":0},"after":"x"}'
    assert_error 400 invalid_request
    req POST /v1/tasks "$(group bad "$(sleep_ok 0 1)")"
    assert_error 400 invalid_request
    req POST /v1/tasks '{"kind":"group","args":{"tasks":[]}}'
    assert_error 400 invalid_request
    # The last child is invalid: not even the first ones are created.
    req POST /v1/tasks "$(group all "$(sleep_ok 0 1)" "$(sleep_ok 30 1)" '{"kind":"sleep","args":{}}')"
    assert_error 400 invalid_request
    assert_jq '.error.message | startswith("args.tasks[2]")' true
    req POST /v1/tasks "$(group all "$(sleep_ok 30 1)" '{"kind":"nope"}')"
    assert_error 400 unknown_kind
    req POST /v1/tasks "$(group all "$(sleep_ok 30 1)" \
        "$(jq -nc '{kind:"sleep",args:{seconds:0},after:["t_01NOSUCHTASK0000000000000"]}')")"
    assert_error 400 unknown_dependency
    # A group's attempt is its children: a retry goes on them, not on it;
    # a child's own scheduling fields are read and checked like a task's.
    req POST /v1/tasks "$(jq -nc --argjson c "$(sleep_ok 0 1)" \
        '{kind:"group",args:{tasks:[$c]},retry:{attempts:2}}')"
    assert_error 400 invalid_request
    assert_jq '.error.message | contains("retry")' true
    req POST /v1/tasks "$(group all "$(sleep_ok 30 1)" \
        "$(jq -nc '{kind:"sleep",args:{seconds:0},priority:101}')")"
    assert_error 400 invalid_request
    req POST /v1/tasks "$(group all "$(jq -nc '{kind:"sleep",args:{seconds:0},delay:1,start_at:"2030-01-01T00:00:00Z"}')")"
    assert_error 400 invalid_request
    req GET /v1/info
    assert_jq .limits.max_group_tasks 150
    # max_group_tasks = 150 in this file's configuration, nested ones counted.
    for ((i = 0; i < 151; i++)); do kids+=("$(sleep_ok 30 0)"); done
    req POST /v1/tasks "$(group all "${kids[@]}")"
    assert_error 400 invalid_request
    req POST /v1/tasks "$(group all "$(group all "${kids[@]:0:100}")" "$(group all "${kids[@]:0:50}")")"
    assert_error 400 invalid_request
    # Nine levels of groups; eight are fine.
    local body
    body=$(sleep_ok 0 1)
    for ((i = 0; i < 8; i++)); do body=$(group all "$body"); done
    local eight=$body
    body=$(group all "$body")
    req POST /v1/tasks "$body"
    assert_error 400 invalid_request
    count_tasks
    assert_eq "$COUNT" "$before" "tasks held after the refused creates"
    create "$eight"
    wait_done "$ID"
    assert_jq .state succeeded
    assert_jq .result '[[[[[[[[1]]]]]]]]'
}

# A child's notify headers may hold the receiver's credentials: neither the
# child nor the group's args show them.
case_children_notify_headers_are_not_shown() {
    local child='{"kind":"sleep","args":{"seconds":0},"notify":{"url":"http://127.0.0.1:9/hook","headers":{"Authorization":"Bearer s3cret"}}}'
    create "$(group all "$child" "$(group all "$child")")"
    local g=$ID
    assert_jq 'tostring | contains("s3cret")' false
    assert_jq '.args.tasks[0].notify' '{"url":"http://127.0.0.1:9/hook"}'
    children "$g"
    local ids=($CHILDREN)
    req GET "/v1/tasks/${ids[0]}"
    assert_jq .notify.url http://127.0.0.1:9/hook
    assert_jq 'tostring | contains("s3cret")' false
    req GET "/v1/tasks/${ids[1]}"
    assert_jq 'tostring | contains("s3cret")' false
}

case_list_by_parent_in_order_with_paging() {
    create "$(group settle "$(sleep_ok 0 1)" "$(sleep_ok 0 2)" "$(sleep_ok 0 3)" \
        "$(sleep_ok 0 4)" "$(sleep_ok 0 5)")"
    local g=$ID
    wait_done "$g"
    children "$g"
    req GET "/v1/tasks?parent=$g"
    assert_status 200
    assert_jq '[.tasks[].id]' "$(ids_json $CHILDREN)"
    assert_jq '[.tasks[].result]' '[1,2,3,4,5]'
    assert_jq .next null
    req GET "/v1/tasks?parent=$g&limit=2"
    assert_jq '[.tasks[].result]' '[1,2]'
    local next
    next=$(jqb .next)
    req GET "/v1/tasks?parent=$g&limit=2&after=$next"
    assert_jq '[.tasks[].result]' '[3,4]'
    # Newest first, paged the other way, and cut to the fields asked.
    req GET "/v1/tasks?parent=$g&order=desc&limit=2&fields=result"
    assert_jq '[.tasks[].result]' '[5,4]'
    assert_jq '.tasks[0] | keys' '["id","result"]'
    next=$(jqb .next)
    req GET "/v1/tasks?parent=$g&order=desc&after=$next"
    assert_jq '[.tasks[].result]' '[3,2,1]'
    local ids=($CHILDREN)
    req GET "/v1/tasks?parent=${ids[0]}"
    assert_jq .tasks '[]'
}

case_deleting_a_finished_group_deletes_its_children() {
    create "$(group all "$(sleep_ok 30 1)" "$(sleep_ok 0 2)")"
    local g=$ID
    children "$g"
    local ids=($CHILDREN)
    await_state "${ids[1]}" succeeded
    req DELETE "/v1/tasks/${ids[1]}"
    assert_error 409 not_done
    req DELETE "/v1/tasks/$g"
    assert_error 409 not_done
    req POST "/v1/tasks/$g/cancel"
    wait_done "$g"
    assert_jq .state cancelled
    req DELETE "/v1/tasks/$g"
    assert_status 204
    for id in "$g" "${ids[@]}"; do
        req GET "/v1/tasks/$id"
        assert_error 404 not_found
    done
}

case_a_group_and_an_after_chain_survive_a_restart() {
    [ -n "${AW_MEMORY:-}" ] && return 0      # nothing to restart from
    local conf
    conf="$GROUPS_CONF
[storage]
state_dir = $CASE_TMP/state"
    start_daemon "$conf"
    # blocker holds queue one, so a stays pending, and b waits for a.
    create '{"kind":"sleep","queue":"one","args":{"seconds":30}}'
    local blocker=$ID
    create '{"kind":"sleep","queue":"one","args":{"seconds":0.2,"result":"a"}}'
    local a=$ID
    create "$(jq -c --arg a "$a" '.after = [$a]' <<<"$(sleep_ok 0 '"b"')")"
    local b=$ID
    # settle: one child done, one running (it ends interrupted), one
    # pending in queue one; sequence: its second child not yet released.
    create "$(group settle "$(sleep_ok 0 1)" "$(sleep_ok 30 2)" \
        '{"kind":"sleep","queue":"one","args":{"seconds":0,"result":3}}')"
    local s=$ID
    create "$(group sequence "$(sleep_ok 30 1)" "$(sleep_ok 0 2)")"
    local q=$ID
    kill -KILL "$DPID"
    for ((i = 0; i < 100; i++)); do [ -s "$DDIR/exit" ] && break; sleep 0.05; done
    start_daemon "$conf"
    req GET "/v1/tasks/$blocker"
    assert_jq .error.type interrupted
    wait_done "$b"
    assert_jq .state succeeded
    assert_jq .after "[\"$a\"]"
    req GET "/v1/tasks/$a"
    assert_jq .state succeeded
    wait_done "$s"
    assert_jq .state succeeded
    assert_jq '[.result[].state]' '["succeeded","failed","succeeded"]'
    assert_jq '.result[1].error.type' interrupted
    assert_jq '[.result[].result]' '[1,null,3]'
    wait_done "$q"
    assert_jq .state failed
    assert_jq .error.type child_failed
    req GET "/v1/tasks?parent=$q"
    assert_jq '[.tasks[].state]' '["failed","cancelled"]'
    assert_jq '[.tasks[].parent] | unique' "[\"$q\"]"
    stop_daemon
}

# SIGTERM: the running job of a group is interrupted at once and the
# daemon does not wait for the group (it is not stopped: it follows its
# mode, here settle, and goes on after the restart with its pending child).
case_a_clean_restart_interrupts_the_jobs_not_the_group() {
    [ -n "${AW_MEMORY:-}" ] && return 0
    local conf
    conf="$GROUPS_CONF
[storage]
state_dir = $CASE_TMP/state"
    start_daemon "$conf"
    create '{"kind":"sleep","queue":"one","args":{"seconds":30}}'
    create "$(group settle "$(sh_job 'sleep 30')" \
        '{"kind":"sleep","queue":"one","args":{"seconds":0,"result":2}}')"
    local g=$ID
    children "$g"
    local ids=($CHILDREN)
    await_state "${ids[0]}" running
    local t0
    t0=$(now)
    stop_daemon
    assert_less "$(elapsed "$t0")" 4 "seconds from SIGTERM to exit"
    start_daemon "$conf"
    wait_done "$g"
    assert_jq .state succeeded
    assert_jq '[.result[].state]' '["failed","succeeded"]'
    assert_jq '.result[0].error.type' interrupted
    stop_daemon
}

run_cases
