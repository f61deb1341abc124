#!/usr/bin/env bash
# Persistence ([storage] state_dir): what a client was told survives kill -9
# (the crash test: concurrent clients, a kill at a random moment, a restart
# on the same directory), a clean restart keeps every task, idempotency key,
# pending order, retention and SSE event id, exec jobs do not outlive the
# daemon, a state_dir that cannot be used stops the daemon before it
# listens, two daemons cannot share a directory, and a full disk refuses
# writes with 503 storage, changes nothing, and recovers. Each case starts
# its daemons with an explicit [storage] section so that it can restart on
# the same directory.

. "$(dirname "$0")/lib.sh"

# Every case here is about a store: the memory-only pass (AW_MEMORY=1) has
# nothing to add, so it skips the file rather than run it twice.
[ -n "${AW_MEMORY:-}" ] && exit 0

# The file's own daemon: /v1/info's storage and the schema are read off it.
start_main_daemon "[storage]
state_dir = $AW_TMP/main-state"
MAIN_STATE=$AW_TMP/main-state

# storage_conf DIR [SYNC]: a [storage] section for DIR.
storage_conf() {
    printf '[storage]\nstate_dir = %s\nsync = %s\n' "$1" "${2:-full}"
}

# The machine (and CI) run as root, hence allow_root.
EXEC_CONF='[kinds]
exec = true
[exec]
allow = /bin/* /usr/bin/*
allow_root = true'

# crash: kill -9 the current daemon and wait (5 s) until it is reaped.
crash() {
    local i
    kill -KILL "$DPID" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
        [ -s "$DDIR/exit" ] && return 0
        sleep 0.05
    done
    fail "daemon $DPID was not reaped within 5 s of SIGKILL"
}

# iso_now: the current UTC time as the daemon writes it (RFC 3339, ms), so
# that timestamps compare as strings.
iso_now() {
    date -u +%Y-%m-%dT%H:%M:%S.%3NZ
}

# list_all FILE: every task the daemon holds (GET /v1/tasks, page after
# page) as one JSON array in FILE.
list_all() {
    local after="" i
    : >"$1.pages"
    for ((i = 0; i < 100; i++)); do
        req GET "/v1/tasks?limit=1000${after:+&after=$after}"
        assert_status 200
        cat "$CASE_TMP/body" >>"$1.pages"
        after=$(jqb '.next // empty')
        [ -z "$after" ] && break
    done
    jq -s '[.[].tasks[]]' "$1.pages" >"$1"
}

# gone PID: the process no longer runs (it does not exist, or it is a zombie
# nobody reaped yet: it runs no code any more).
gone() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    [ "${stat%% *}" = Z ]
}

# group_gone PGID: no process of group PGID runs any more.
group_gone() {
    local p
    for p in $(pgrep -g "$1"); do
        gone "$p" || return 1
    done
    return 0
}

# refuses_to_start NEEDLE CMD...: CMD --listen 127.0.0.1:0 exits with status
# 2 within 10 s, says one line on stderr that contains NEEDLE, and never
# says "listening on" (the daemon says it only after its store is open).
refuses_to_start() {
    local needle=$1 rc lines err
    shift
    LAST_CMD="$* --listen 127.0.0.1:0"
    timeout 10 "$@" --listen 127.0.0.1:0 </dev/null >"$CASE_TMP/start.out" 2>"$CASE_TMP/start.err"
    rc=$?
    err=$(head -c 600 "$CASE_TMP/start.err" | tr '\n' '|')
    [ "$rc" != 124 ] || fail "$LAST_CMD was still running after 10 s; stderr: $err"
    ! grep -q 'listening on' "$CASE_TMP/start.err" ||
        fail "$LAST_CMD listened before it failed; stderr: $err"
    assert_eq "$rc" 2 "exit status of $LAST_CMD (stderr: $err)"
    lines=$(wc -l <"$CASE_TMP/start.err")
    assert_eq "$lines" 1 "lines on stderr of $LAST_CMD (stderr: $err)"
    grep -qF -- "$needle" "$CASE_TMP/start.err" ||
        fail "stderr of $LAST_CMD does not contain '$needle': $err"
}

# check_config_refuses NEEDLE CMD...: CMD --check-config exits with status 2
# and one line on stderr that contains NEEDLE.
check_config_refuses() {
    local needle=$1 rc err
    shift
    LAST_CMD="$* --check-config"
    timeout 10 "$@" --check-config </dev/null >"$CASE_TMP/check.out" 2>"$CASE_TMP/check.err"
    rc=$?
    err=$(head -c 600 "$CASE_TMP/check.err" | tr '\n' '|')
    assert_eq "$rc" 2 "exit status of $LAST_CMD (stderr: $err)"
    assert_eq "$(wc -l <"$CASE_TMP/check.err")" 1 "lines on stderr of $LAST_CMD (stderr: $err)"
    grep -qF -- "$needle" "$CASE_TMP/check.err" ||
        fail "stderr of $LAST_CMD does not contain '$needle': $err"
}

# conf_file NAME TEXT: writes TEXT to $CASE_TMP/NAME.conf and prints its path.
conf_file() {
    printf '%s\n' "$2" >"$CASE_TMP/$1.conf"
    printf '%s\n' "$CASE_TMP/$1.conf"
}

# ---------------------------------------------------------------------------
# 1. The crash test

# crash_client N BASE OUT: one client of the crash test. Until the daemon
# is gone (connection refused: curl exit status 7), it creates, cancels and
# deletes tasks of its own at random, and writes one line per request to OUT
# (status 000 is "no answer"):
#   create TYPE NAME STATUS CURL_RC ID|- STATE|- SECONDS   (STATE: what the 201 showed)
#   cancel ID STATUS CURL_RC SECONDS
#   delete ID STATUS CURL_RC SECONDS
# Types: s0, s05 (sleeps of 0 and 0.05 s, result = the name), s30 (30 s),
# q1 (0.01 s in queue `one`, behind the round's 30 s blocker: pending),
# exec (/bin/sleep 30), bad (a create that is refused with 400).
crash_client() {
    local c=$1 base=$2 out=$3 resp=$3.body n=0 st rc id state name type body line t ids=()
    RANDOM=$(((c * 7919 + BASHPID + ${EPOCHREALTIME#*.}) % 32768))
    : >"$out"
    while ((n < 3000)); do
        n=$((n + 1))
        name=$CRASH_ROUND-c$c-$n
        type=""
        case $((RANDOM % 12)) in
        0 | 1) type=s0 body="{\"kind\":\"sleep\",\"name\":\"$name\",\"args\":{\"seconds\":0,\"result\":\"$name\"}}" ;;
        2) type=s05 body="{\"kind\":\"sleep\",\"name\":\"$name\",\"args\":{\"seconds\":0.05,\"result\":\"$name\"}}" ;;
        3) type=s30 body="{\"kind\":\"sleep\",\"name\":\"$name\",\"args\":{\"seconds\":30}}" ;;
        4) type=q1 body="{\"kind\":\"sleep\",\"name\":\"$name\",\"queue\":\"one\",\"args\":{\"seconds\":0.01,\"result\":\"$name\"}}" ;;
        5) type=exec body="{\"kind\":\"exec\",\"name\":\"$name\",\"args\":{\"argv\":[\"/bin/sleep\",\"30\"]}}" ;;
        6) type=bad body="{\"kind\":\"sleep\",\"name\":\"$name\",\"args\":{\"seconds\":-1}}" ;;
        7 | 8) type=cancel ;;
        *) type=delete ;;
        esac
        if [ "$type" = cancel ] || [ "$type" = delete ]; then
            [ ${#ids[@]} -gt 0 ] || continue
            id=${ids[RANDOM % ${#ids[@]}]}
            if [ "$type" = cancel ]; then
                st=$(curl -s -o "$resp" -w '%{http_code} %{time_total}' --max-time 10 -X POST "$base/v1/tasks/$id/cancel")
            else
                st=$(curl -s -o "$resp" -w '%{http_code} %{time_total}' --max-time 10 -X DELETE "$base/v1/tasks/$id")
            fi
            rc=$?
            printf '%s %s %s %s %s\n' "$type" "$id" "${st% *}" "$rc" "${st#* }" >>"$out"
        else
            st=$(curl -s -o "$resp" -w '%{http_code} %{time_total}' --max-time 10 -d "$body" "$base/v1/tasks")
            rc=$?
            t=${st#* }
            st=${st% *}
            id=- state=-
            if [ "$st" = 201 ]; then
                line=""
                IFS= read -r line <"$resp"
                [[ $line =~ ^\{\"id\":\"(t_[0-9A-Za-z]+)\" ]] && id=${BASH_REMATCH[1]}
                [[ $line =~ \"state\":\"([a-z_]+)\" ]] && state=${BASH_REMATCH[1]}
                ids+=("$id")
            fi
            printf 'create %s %s %s %s %s %s %s\n' "$type" "$name" "$st" "$rc" "$id" "$state" "$t" >>"$out"
        fi
        [ "$rc" = 7 ] && break
    done
}

# The checks of one round, in jq: $recs are the clients' lines, $tasks the
# list after the restart, $since the moment just before the restart. It
# prints one line per broken promise.
CRASH_CHECK='
def set(f): [.[] | f] | map({(.): true}) | add // {};
def interrupted: .state == "failed" and .error.type == "interrupted" and .finished_at >= $since;
def show: "\(.state) \(.error.type // "") finished_at \(.finished_at)";
($tasks | map({(.id): .}) | add // {}) as $by_id
| ($recs | split("\n") | map(select(length > 0) | split(" "))) as $l
| [$l[] | select(.[0] == "create")] as $creates
| [$creates[] | select(.[3] == "201") | {id: .[5], type: .[1], name: .[2], told: .[6]}] as $ok
| ($creates | set(select(.[3] == "000" and .[4] != "7") | .[2])) as $unknown
| ($creates | set(select(.[3] != "201" and (.[3] != "000" or .[4] == "7")) | .[2])) as $refused
| ($l | set(select(.[0] == "cancel" and (.[2] == "200" or .[2] == "202")) | .[1])) as $cancelled
| ($l | set(select(.[0] == "cancel" and .[2] == "000" and .[3] != "7") | .[1])) as $cancel_unknown
| ($l | set(select(.[0] == "delete" and .[2] == "204") | .[1])) as $deleted
| ($l | set(select(.[0] == "delete" and .[2] == "000" and .[3] != "7") | .[1])) as $delete_unknown
| ($ok | map({(.id): true}) | add // {}) as $ok_ids
| [$tasks[] | select(.name != null and (.name | startswith($round + "-c")))] as $mine
| (
    ($ok[] | . as $c | $by_id[$c.id] as $t
     | ($cancel_unknown[$c.id] == true and $t.state == "cancelled") as $maybe_cancelled
     | if ($deleted[$c.id] | not) and $t != null and ($c.told | IN("succeeded", "failed", "cancelled", "timed_out"))
            and $t.state != $c.told then
           "\($c.id) (\($c.type)): its 201 showed it \($c.told), after the restart it is \($t | show)"
       elif $deleted[$c.id] then
           if $t then "\($c.id) (\($c.type)): DELETE answered 204, but it is back as \($t | show)" else empty end
       elif $t == null then
           if $delete_unknown[$c.id] then empty
           else "\($c.id) (\($c.type)): created with 201, missing after the restart" end
       elif $cancelled[$c.id] then
           if $t.state == "cancelled" then empty
           else "\($c.id) (\($c.type)): cancel answered 200/202, but it is \($t | show)" end
       elif $c.type == "s30" or $c.type == "exec" then
           if ($t | interrupted) or $maybe_cancelled then empty
           else "\($c.id) (\($c.type)): ran at the crash, expected failed/interrupted finished at or after \($since), got \($t | show)" end
       elif $c.type == "s0" or $c.type == "s05" then
           if ($t.state == "succeeded" and $t.result == $c.name) or ($t | interrupted) or $maybe_cancelled then empty
           else "\($c.id) (\($c.type)): expected succeeded with result \($c.name) or interrupted, got \($t | show) result \($t.result)" end
       elif $c.type == "q1" then
           if $t.state == "pending" or $t.state == "running" or $maybe_cancelled or
              ($t.state == "succeeded" and $t.started_at >= $since and $t.result == $c.name) then empty
           else "\($c.id) (q1): was pending at the crash, expected it to run after the restart, got \($t | show) started_at \($t.started_at)" end
       else "\($c.id): created with 201 by a create that should have been refused (\($c.type))" end),
    ($mine[] | select($ok_ids[.id] | not)
     | if $refused[.name] then "\(.id) (\(.name)): exists, but its create was refused"
       elif $unknown[.name] then empty
       else "\(.id) (\(.name)): exists, but no client created it" end),
    (if ($mine | length) > ($ok | length) - ($deleted | length) + ($unknown | length)
     then "\($mine | length) tasks of the round listed, more than \($ok | length) created - \($deleted | length) deleted + \($unknown | length) unanswered creates"
     else empty end),
    ($by_id[$blocker] | if . and interrupted then empty
     else "the blocker \($blocker) ran at the crash, expected failed/interrupted, got \(. // {} | show)" end)
  )
'

# The numbers a round reports (AW_VERBOSE): 201s, unanswered creates, acked
# cancels and deletes, tasks interrupted.
CRASH_STATS='
($recs | split("\n") | map(select(length > 0) | split(" "))) as $l
| "\([$l[] | select(.[0] == "create" and .[3] == "201")] | length) created, "
  + "\([$l[] | select(.[0] == "create" and .[3] == "000" and .[4] != "7")] | length) creates unanswered, "
  + "\([$l[] | select(.[0] == "create" and .[3] == "400")] | length) refused, "
  + "\([$l[] | select(.[0] == "cancel" and (.[2] == "200" or .[2] == "202"))] | length) cancels and "
  + "\([$l[] | select(.[0] == "delete" and .[2] == "204")] | length) deletes acknowledged, "
  + "\([$tasks[] | select(.name != null and (.name | startswith($round + "-c")) and .error.type == "interrupted")] | length) interrupted"
'

case_crash_test_kill_9_at_random_moments_keeps_every_acknowledged_change() {
    local conf r c ms since pids bad n want q1 prev="" stats id
    conf="$EXEC_CONF
[server]
log_level = info
[queue:one]
concurrency = 1
$(storage_conf "$CASE_TMP/state")"
    start_daemon "$conf"
    for r in 1 2 3 4 5; do
        CRASH_ROUND=r$r
        # Queue one's tasks stay pending behind this one until the crash.
        create "{\"kind\":\"sleep\",\"name\":\"r$r-blocker\",\"queue\":\"one\",\"args\":{\"seconds\":30}}"
        local blocker=$ID
        pids=()
        for c in 1 2 3 4; do
            crash_client "$c" "$BASE" "$CASE_TMP/r$r-c$c.log" &
            pids+=($!)
        done
        # The kill moment: 300-1500 ms after the clients start, in a
        # different fifth of that span in each round.
        ms=$((300 + (r - 1) * 240 + RANDOM % 240))
        sleep "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
        crash
        wait "${pids[@]}"
        cat "$CASE_TMP"/r$r-c?.log >"$CASE_TMP/r$r.log"
        since=$(iso_now)
        start_daemon "$conf"
        list_all "$CASE_TMP/r$r.tasks"
        bad=$(jq -nr --rawfile recs "$CASE_TMP/r$r.log" --slurpfile t "$CASE_TMP/r$r.tasks" \
            --arg since "$since" --arg round "r$r" --arg blocker "$blocker" \
            "\$t[0] as \$tasks | $CRASH_CHECK" 2>&1)
        [ -z "$bad" ] || fail "round $r (kill after $ms ms): $(printf '%s\n' "$bad" | head -n 5 | tr '\n' ';') ($(printf '%s\n' "$bad" | wc -l) problems)"
        # What the list says, as a client would see it too.
        for id in $(awk '$1 == "delete" && $3 == 204 { print $2 }' "$CASE_TMP/r$r.log"); do
            req GET /v1/tasks/$id
            assert_error 404 not_found
        done
        stats=$(jq -nr --rawfile recs "$CASE_TMP/r$r.log" --slurpfile t "$CASE_TMP/r$r.tasks" \
            --arg round "r$r" "\$t[0] as \$tasks | $CRASH_STATS")
        note "round $r, kill after $ms ms: $stats"
        # The restart read back exactly the tasks it lists.
        n=$(jq length "$CASE_TMP/r$r.tasks")
        grep -q "store .*: $n tasks read back in [0-9]* ms, 0 expired" "$DLOG" ||
            fail "round $r: the restart does not say '$n tasks read back': $(grep 'read back' "$DLOG")"
        # Earlier rounds' finished tasks are as the previous round left them.
        # (Not every earlier task is finished: one whose create went
        # unanswered may have been pending at the crash and run now.)
        if [ -n "$prev" ]; then
            bad=$(jq -nr --slurpfile p "$prev" --slurpfile t "$CASE_TMP/r$r.tasks" '
                ($t[0] | map({(.id): .}) | add) as $now
                | $p[0][] | select(.done) | . as $was | $now[.id] as $is
                | select($is == null or ($is | {state, finished_at, result, error}) != ($was | {state, finished_at, result, error}))
                | "\($was.id) was \($was.state) \($was.finished_at), now \($is.state // "missing") \($is.finished_at // "")"')
            [ -z "$bad" ] || fail "round $r: a task of an earlier round changed: $(printf '%s\n' "$bad" | head -n 3 | tr '\n' ';')"
        fi
        # The pending ones run now and succeed, in their order (each
        # started after the restart, in creation order).
        q1=$(jq -c --arg round "r$r" '[.[] | select((.name // "" | startswith($round + "-c")) and .queue == "one" and (.done | not)) | .id]' \
            "$CASE_TMP/r$r.tasks")
        want=$(jq length <<<"$q1")
        if [ "$want" -gt 0 ]; then
            req --max-time 60 POST /v1/wait "{\"ids\":$q1,\"timeout\":50}"
            assert_status 200
            assert_jq "[(.pending | length), (.done | map(select(.state == \"succeeded\" and .result == .name)) | length)]" "[0,$want]"
        fi
        list_all "$CASE_TMP/r$r.after"
        prev=$CASE_TMP/r$r.after
        BODY=$(jq -c --arg round "r$r" --arg since "$since" \
            '[.[] | select((.name // "" | startswith($round + "-c")) and .queue == "one" and .state != "cancelled")]
             | [length, (map(.started_at >= $since) | all), (map(.started_at) == (map(.started_at) | sort))]' \
            "$prev")
        LAST_CMD="the queue-one tasks of round $r after the restart"
        assert_jq '.[1:]' '[true,true]'
        jqb '.[0]' >>"$CASE_TMP/pending-runs"
    done
    # The rounds did exercise what they check.
    cat "$CASE_TMP"/r?.log >"$CASE_TMP/all.log"
    n=$(awk '$1 == "cancel" && ($3 == 200 || $3 == 202)' "$CASE_TMP/all.log" | wc -l)
    [ "$n" -gt 0 ] || fail "no cancel was acknowledged in 5 rounds"
    n=$(awk '$1 == "delete" && $3 == 204' "$CASE_TMP/all.log" | wc -l)
    [ "$n" -gt 0 ] || fail "no delete was acknowledged in 5 rounds"
    n=$(awk '{ s += $1 } END { print s + 0 }' "$CASE_TMP/pending-runs")
    [ "$n" -gt 0 ] || fail "no task was pending at any of the 5 crashes"
    stop_daemon
}

# ---------------------------------------------------------------------------
# 2. A clean restart

case_sigterm_and_restart_keep_tasks_results_keys_and_pending_order() {
    local conf s f e k a b c before after
    conf="$EXEC_CONF
[queue:one]
concurrency = 1
$(storage_conf "$CASE_TMP/state")"
    start_daemon "$conf"
    create '{"kind":"sleep","name":"with-result","args":{"seconds":0,"result":{"a":[1,2,"x"],"b":null}}}'; s=$ID
    create '{"kind":"sleep","name":"fails","args":{"seconds":0,"fail":"boom"}}'; f=$ID
    create '{"kind":"exec","name":"echo","args":{"argv":["/bin/sh","-c","echo hi; echo oops >&2; exit 3"]}}'; e=$ID
    create -H 'Idempotency-Key: durable-key-1' '{"kind":"sleep","name":"keyed","args":{"seconds":0}}'; k=$ID
    create '{"kind":"sleep","name":"a","queue":"one","args":{"seconds":30}}'; a=$ID
    create '{"kind":"sleep","name":"b","queue":"one","args":{"seconds":30}}'; b=$ID
    create '{"kind":"sleep","name":"c","queue":"one","args":{"seconds":0,"result":"c ran"}}'; c=$ID
    for id in "$s" "$f" "$e" "$k"; do
        req GET "/v1/tasks/$id/wait?timeout=10"
        assert_jq .done true
    done
    await_state "$a" running
    req GET /v1/tasks/$e
    assert_jq '[.state, .error.type, .result.exit_code, .result.stdout, .result.stderr]' \
        '["failed","exit_status",3,"hi\n","oops\n"]'
    list_all "$CASE_TMP/before"
    stop_daemon
    start_daemon "$conf"
    list_all "$CASE_TMP/after"
    # Every finished task is back with every field as it was.
    before=$(jq -Sc --arg a "$a" --arg b "$b" --arg c "$c" 'map(select(.id != $a and .id != $b and .id != $c))' "$CASE_TMP/before")
    after=$(jq -Sc --arg a "$a" --arg b "$b" --arg c "$c" 'map(select(.id != $a and .id != $b and .id != $c))' "$CASE_TMP/after")
    assert_eq "$after" "$before" "the finished tasks after the restart vs before it"
    assert_eq "$(jq length "$CASE_TMP/after")" 7 "number of tasks after the restart"
    req GET /v1/tasks/$s
    assert_jq '[.name, .state, .result]' '["with-result","succeeded",{"a":[1,2,"x"],"b":null}]'
    req GET /v1/tasks/$f
    assert_jq '[.name, .state, .error.type, .error.message]' '["fails","failed","task_error","boom"]'
    # SIGTERM interrupted the running one; the pending ones kept their
    # order: b runs now, c still waits behind it.
    req GET /v1/tasks/$a
    assert_jq '[.state, .error.type]' '["failed","interrupted"]'
    await_state "$b" running
    req GET /v1/tasks/$c
    assert_jq .state pending
    # The key still names the first task, whatever the body.
    req -H 'Idempotency-Key: durable-key-1' POST /v1/tasks '{"kind":"sleep","args":{"seconds":5}}'
    assert_status 200
    assert_jq '[.id, .name]' "[\"$k\",\"keyed\"]"
    count_tasks
    assert_eq "$COUNT" 7 "number of tasks after a repeat create with the same key"
    req POST /v1/tasks/$b/cancel
    assert_status 200
    req GET "/v1/tasks/$c/wait?timeout=10"
    assert_jq '[.state, .result]' '["succeeded","c ran"]'
    stop_daemon
}

case_retention_counts_from_finished_at_across_a_restart() {
    local conf x y t0 age i
    conf="[tasks]
retention_seconds = 2
$(storage_conf "$CASE_TMP/state")"
    # x: the daemon is down for the first second of x's retention and
    # comes back within it; x is forgotten 2 s after it finished, not 2 s
    # after the restart (that would be 3 s or more).
    start_daemon "$conf"
    create '{"kind":"sleep","name":"x","args":{"seconds":0}}'; x=$ID
    await_state "$x" succeeded
    t0=$(date -d "$(jqb .finished_at)" +%s%3N)
    stop_daemon
    # Waiting for time itself: there is no condition to poll while the
    # daemon is down.
    age=$((($(now) / 1000) - t0))
    [ "$age" -lt 1000 ] && sleep "$(awk -v a="$age" 'BEGIN { printf "%.3f", (1000 - a) / 1000 }')"
    start_daemon "$conf"
    req GET /v1/tasks/$x
    age=$((($(now) / 1000) - t0))
    if [ "$age" -lt 1800 ]; then
        assert_status 200
    fi
    for ((i = 0; i < 100; i++)); do
        req GET /v1/tasks/$x
        [ "$STATUS" = 404 ] && break
        sleep 0.05
    done
    assert_status 404
    age=$((($(now) / 1000) - t0))
    assert_between "$(awk -v a="$age" 'BEGIN { print a / 1000 }')" 1.9 2.9 \
        "seconds from the task's finished_at until it was forgotten"
    # y: the daemon is down when y's retention passes; the restart drops it.
    create '{"kind":"sleep","name":"y","args":{"seconds":0}}'; y=$ID
    await_state "$y" succeeded
    t0=$(date -d "$(jqb .finished_at)" +%s%3N)
    stop_daemon
    age=$((($(now) / 1000) - t0))
    [ "$age" -lt 2200 ] && sleep "$(awk -v a="$age" 'BEGIN { printf "%.3f", (2200 - a) / 1000 }')"
    start_daemon "$conf"
    req GET /v1/tasks/$y
    assert_error 404 not_found
    grep -q 'tasks read back in [0-9]* ms, 1 expired' "$DLOG" ||
        fail "the restart does not say '1 expired': $(grep 'read back' "$DLOG")"
    stop_daemon
}

# ---------------------------------------------------------------------------
# 3. SSE event ids

# stream_ids NAME: GET /v1/events into $CASE_TMP/NAME.sse while a sleep of 0 s
# is created and finishes; sets FIRST_ID and LAST_ID to the ids of the
# stream's first and last events (bounded polls, 5 s each).
stream_ids() {
    local i spid f=$CASE_TMP/$1.sse
    : >"$f"
    curl -sS -N --max-time 20 -o "$f" "$BASE/v1/events" 2>/dev/null &
    spid=$!
    for ((i = 0; i < 100; i++)); do
        grep -q '^: awaitd events' "$f" && break
        sleep 0.05
    done
    create '{"kind":"sleep","args":{"seconds":0}}'
    for ((i = 0; i < 100; i++)); do
        grep -q "^data: {\"id\":\"$ID\".*\"state\":\"succeeded\"" "$f" && break
        sleep 0.05
    done
    kill "$spid" 2>/dev/null
    wait "$spid" 2>/dev/null
    FIRST_ID=$(sed -n 's/^id: \([0-9][0-9]*\)$/\1/p' "$f" | head -n1)
    LAST_ID=$(sed -n 's/^id: \([0-9][0-9]*\)$/\1/p' "$f" | tail -n1)
    [ -n "$FIRST_ID" ] && grep -q '"state":"succeeded"' "$f" ||
        fail "stream $1 did not show task $ID succeed within 5 s: $(head -c 400 "$f" | tr '\n' '|')"
}

case_sse_event_ids_keep_growing_across_restarts() {
    local conf last
    conf=$(storage_conf "$CASE_TMP/state")
    start_daemon "$conf"
    stream_ids run1
    last=$LAST_ID
    stop_daemon
    start_daemon "$conf"
    stream_ids run2
    note "event ids: last $last in run 1, first $FIRST_ID in run 2"
    [ "$FIRST_ID" -gt "$last" ] ||
        fail "the first event id after a restart is $FIRST_ID, not larger than $last of the run before"
    last=$LAST_ID
    crash
    start_daemon "$conf"
    stream_ids run3
    note "event ids: last $last in run 2, first $FIRST_ID after kill -9"
    [ "$FIRST_ID" -gt "$last" ] ||
        fail "the first event id after kill -9 is $FIRST_ID, not larger than $last of the run before"
    stop_daemon
}

# ---------------------------------------------------------------------------
# 4. Exec jobs and kill -9

case_exec_jobs_do_not_outlive_kill_9_and_leftovers_die_at_the_next_start() {
    local conf j1 j2 p1 p2 grand t0 i
    conf="$EXEC_CONF
[server]
log_level = info
$(storage_conf "$CASE_TMP/state")"
    start_daemon "$conf"
    create '{"kind":"exec","args":{"argv":["/bin/sleep","300"]}}'; j1=$ID
    # Not just "sleep 300": sh would exec it, and there would be no grandchild.
    create '{"kind":"exec","args":{"argv":["/bin/sh","-c","sleep 300; echo never"]}}'; j2=$ID
    await_state "$j1" running
    await_state "$j2" running
    # Each job leads a process group of its own: its pid is the group's id.
    for ((i = 0; i < 100; i++)); do
        p1=$(pgrep -P "$DPID" -x sleep)
        # By its command line: awaitd execs the resolved file, so where /bin/sh
        # is a link to dash the process is named dash.
        p2=$(pgrep -P "$DPID" -f '^/bin/sh -c sleep 300')
        grand=""
        [ -n "$p2" ] && grand=$(pgrep -P "$p2" -x sleep)
        [ -n "$p1" ] && [ -n "$grand" ] && break
        sleep 0.05
    done
    [ -n "$p1" ] && [ -n "$p2" ] && [ -n "$grand" ] ||
        fail "jobs not found: sleep '$p1', sh '$p2', its sleep '$grand'; children: $(pgrep -a -P "$DPID" | tr '\n' '|')"
    assert_eq "$(ps -o pgid= -p "$p1" | tr -d ' ')" "$p1" "process group of the sleep job"
    assert_eq "$(ps -o pgid= -p "$grand" | tr -d ' ')" "$p2" "process group of the sh job's sleep"
    # A create answered after the jobs started: its commit comes after the
    # one that stored the jobs' process groups (store.h: an answer waits
    # for the batch that holds every change made before it).
    create '{"kind":"sleep","args":{"seconds":0}}'
    t0=$(now)
    crash
    for ((i = 0; i < 200; i++)); do
        gone "$p1" && gone "$p2" && break
        sleep 0.01
    done
    gone "$p1" || fail "job $p1 (/bin/sleep 300) still runs $(elapsed "$t0") s after kill -9 of the daemon"
    gone "$p2" || fail "job $p2 (/bin/sh) still runs $(elapsed "$t0") s after kill -9 of the daemon"
    assert_less "$(elapsed "$t0")" 1 "seconds from kill -9 until both jobs were gone"
    # The death signal reaches the job, not what it started: the shell's
    # sleep is left for the next start to kill.
    gone "$grand" && fail "the sh job's sleep $grand died with the daemon: nothing is left for the restart to kill"
    t0=$(now)
    start_daemon "$conf"
    for ((i = 0; i < 200; i++)); do
        group_gone "$p2" && break
        sleep 0.01
    done
    group_gone "$p2" || fail "process group $p2 still runs $(elapsed "$t0") s after the restart began: $(pgrep -a -g "$p2" | tr '\n' '|')"
    assert_less "$(elapsed "$t0")" 5 "seconds from the restart until the leftover group was gone"
    grep -Eq ' [1-9][0-9]* leftover job process groups killed' "$DLOG" ||
        fail "the restart does not say it killed a leftover group: $(grep 'read back' "$DLOG")"
    for id in "$j1" "$j2"; do
        req GET /v1/tasks/$id
        assert_jq '[.state, .error.type]' '["failed","interrupted"]'
    done
    stop_daemon
}

# ---------------------------------------------------------------------------
# 5. A state_dir that cannot be used

case_unusable_state_dirs_exit_2_with_one_line_naming_the_path() {
    local conf dir
    # Parent missing.
    dir=$CASE_TMP/no-such-parent/state
    conf=$(conf_file missing "$(storage_conf "$dir")")
    refuses_to_start "$dir" "$AWAITD" --config "$conf"
    check_config_refuses "$dir" "$AWAITD" --config "$conf"
    [ ! -e "$CASE_TMP/no-such-parent" ] || fail "the daemon created $CASE_TMP/no-such-parent"
    # A regular file.
    dir=$CASE_TMP/a-file
    echo data >"$dir"
    conf=$(conf_file file "$(storage_conf "$dir")")
    refuses_to_start "$dir" "$AWAITD" --config "$conf"
    check_config_refuses "$dir" "$AWAITD" --config "$conf"
    # A state.db that is no database.
    dir=$CASE_TMP/corrupt
    mkdir -p "$dir"
    for i in $(seq 200); do echo "these bytes are not an SQLite database $i"; done >"$dir/state.db"
    cp "$dir/state.db" "$CASE_TMP/corrupt.copy"
    conf=$(conf_file corrupt "$(storage_conf "$dir")")
    refuses_to_start "$dir/state.db" "$AWAITD" --config "$conf"
    check_config_refuses "$dir/state.db" "$AWAITD" --config "$conf"
    cmp -s "$dir/state.db" "$CASE_TMP/corrupt.copy" || fail "the daemon changed the corrupt $dir/state.db"
    # A newer schema, in a database the daemon made itself.
    dir=$CASE_TMP/newer
    start_daemon "$(storage_conf "$dir")"
    create '{"kind":"sleep","args":{"seconds":0}}'
    stop_daemon
    sqlite3 "$dir/state.db" 'PRAGMA user_version = 99' || fail "sqlite3 cannot set user_version"
    conf=$(conf_file newer "$(storage_conf "$dir")")
    refuses_to_start "$dir/state.db" "$AWAITD" --config "$conf"
    grep -q 'schema version 99' "$CASE_TMP/start.err" ||
        fail "the message does not give the version: $(cat "$CASE_TMP/start.err")"
    check_config_refuses "$dir/state.db" "$AWAITD" --config "$conf"
    # A good one.
    conf=$(conf_file good "$(storage_conf "$CASE_TMP/good")")
    LAST_CMD="$AWAITD --config $conf --check-config"
    "$AWAITD" --config "$conf" --check-config >"$CASE_TMP/check.out" 2>"$CASE_TMP/check.err"
    assert_eq "$?" 0 "exit status of --check-config with a good state_dir (stderr: $(cat "$CASE_TMP/check.err"))"
}

# Root writes anywhere, so the daemon runs as nobody (65534), on a directory
# of root's with mode 0755, from a copy of the binary in a directory nobody
# can read ($AW_TMP is 0700).
if ! command -v setpriv >/dev/null; then
    report ok "$AW_FILE: unwritable_state_dir_exits_2_for_an_unprivileged_user # skipped: setpriv is missing"
else
case_unwritable_state_dir_exits_2_for_an_unprivileged_user() {
    local u
    u=$(mktemp -d /tmp/awaitd-bb-nobody.XXXXXX)
    trap "rm -rf '$u'; aw_case_cleanup" EXIT
    chmod 0755 "$u"
    cp "$AWAITD" "$u/awaitd"
    mkdir -m 0755 "$u/state"
    storage_conf "$u/state" >"$u/awaitd.conf"
    chmod 0644 "$u/awaitd.conf"
    local run=(setpriv --reuid=65534 --regid=65534 --clear-groups "$u/awaitd" --config "$u/awaitd.conf")
    refuses_to_start "$u/state" "${run[@]}"
    grep -q 'not writable' "$CASE_TMP/start.err" || fail "the message does not say why: $(cat "$CASE_TMP/start.err")"
    check_config_refuses "$u/state" "${run[@]}"
    [ -z "$(ls -A "$u/state")" ] || fail "the daemon left files in $u/state: $(ls -A "$u/state")"
}
fi

# ---------------------------------------------------------------------------
# 6. Two daemons, one state_dir

case_a_second_daemon_on_the_same_state_dir_exits_2_and_the_first_serves_on() {
    local conf id
    conf=$(storage_conf "$CASE_TMP/state")
    start_daemon "$conf"
    create '{"kind":"sleep","args":{"seconds":0,"result":"first"}}'; id=$ID
    refuses_to_start "in use by another awaitd" "$AWAITD" --config "$(conf_file second "$conf")"
    grep -qF "$CASE_TMP/state" "$CASE_TMP/start.err" ||
        fail "the message does not name the directory: $(cat "$CASE_TMP/start.err")"
    kill -0 "$DPID" 2>/dev/null || fail "the first daemon is gone"
    req GET /healthz
    assert_status 200
    req GET /v1/tasks/$id
    assert_jq .result first
    create '{"kind":"sleep","args":{"seconds":0}}'
    stop_daemon
    # Its lock goes with it.
    start_daemon "$conf"
    req GET /v1/tasks/$id
    assert_status 200
    stop_daemon
}

# ---------------------------------------------------------------------------
# 7. A full disk

case_disk_full_refuses_writes_with_503_storage_and_recovers() {
    local conf dir p f wal n201=0 i t0 big
    dir=$CASE_TMP/state
    conf="[queue:one]
concurrency = 1
$(storage_conf "$dir")"
    start_daemon "$conf"
    create '{"kind":"sleep","name":"blocker","queue":"one","args":{"seconds":30}}'
    create '{"kind":"sleep","name":"pending","queue":"one","args":{"seconds":30}}'; p=$ID
    create '{"kind":"sleep","name":"finished","args":{"seconds":0,"result":"kept"}}'; f=$ID
    await_state "$f" succeeded
    head -c 200000 /dev/zero | tr '\0' x | jq -Rsc '{kind:"sleep",args:{seconds:0,result:.}}' >"$CASE_TMP/big.json"
    # Room for a create or two more. Only the soft limit: raising it back
    # needs no privilege. The daemon ignores SIGXFSZ, so writes past the
    # limit fail with EFBIG, as on a full disk.
    wal=$(stat -c %s "$dir/state.db-wal")
    prlimit --pid "$DPID" --fsize=$((wal + 600000)):unlimited || fail "prlimit failed"
    for ((i = 0; i < 30; i++)); do
        req --data-file "$CASE_TMP/big.json" POST /v1/tasks
        [ "$STATUS" = 201 ] || break
        n201=$((n201 + 1))
    done
    note "creates of 200 kB accepted before the disk was full: $n201"
    assert_error 503 storage
    # A file-size limit leaves room below it that a full disk would not (a
    # small write still fits under it): from now on no file may grow past
    # 4 kB, and every file of the store is larger, so no write fits.
    prlimit --pid "$DPID" --fsize=4096:unlimited || fail "prlimit failed"
    count_tasks
    assert_eq "$COUNT" $((3 + n201)) "tasks listed after the refused create (3 + the $n201 accepted)"
    req GET /healthz
    assert_status 200
    req GET /v1/tasks/$f
    assert_jq '[.state, .result]' '["succeeded","kept"]'
    req POST /v1/tasks/$p/cancel
    assert_error 503 storage
    req DELETE /v1/tasks/$f
    assert_error 503 storage
    req GET /v1/tasks/$p
    assert_jq .state pending
    req GET /v1/tasks/$f
    assert_status 200
    req POST /v1/tasks '{"kind":"sleep","args":{"seconds":0}}'
    assert_error 503 storage
    # Not storage.failing == true: a refused create leaves nothing to write
    # again but its (empty) delete, whose retry a second later commits and
    # ends "failing", although the next real write fails again.
    req GET /v1/info
    assert_jq '.storage.failing | type' boolean
    req GET /metrics
    [ "$(metric awaitd_store_commit_failures_total)" -gt 0 ] ||
        fail "awaitd_store_commit_failures_total is $(metric awaitd_store_commit_failures_total)"
    # Room again: the store retries on its own, and writes are accepted.
    prlimit --pid "$DPID" --fsize=unlimited || fail "prlimit failed"
    t0=$(now)
    for ((i = 0; i < 50; i++)); do
        req POST /v1/tasks '{"kind":"sleep","name":"after","args":{"seconds":0}}'
        [ "$STATUS" = 201 ] && break
        sleep 0.1
    done
    assert_status 201
    assert_less "$(elapsed "$t0")" 5 "seconds from the room coming back to a create accepted"
    req GET /v1/info
    assert_jq .storage.failing false
    req GET /v1/tasks/$p
    assert_jq .state pending
    count_tasks
    assert_eq "$COUNT" $((4 + n201)) "tasks listed once creates work again"
    # What was refused stays refused after a restart, too.
    stop_daemon
    start_daemon "$conf"
    count_tasks
    assert_eq "$COUNT" $((4 + n201)) "tasks listed after the restart"
    req GET /v1/tasks/$f
    assert_jq '[.state, .result]' '["succeeded","kept"]'
    req GET /v1/tasks/$p
    assert_jq '.state == "pending" or .state == "running"' true
    stop_daemon
}

# ---------------------------------------------------------------------------
# 8-10. /v1/info, the schema, sync = normal

case_info_storage_describes_the_store() {
    create '{"kind":"sleep","args":{"seconds":0}}'
    req GET /v1/info
    assert_status 200
    assert_jq .storage.path "$MAIN_STATE/state.db"
    assert_jq '.storage.path | endswith("/state.db")' true
    assert_jq .storage.sync full
    assert_jq '.storage.bytes > 0' true
    assert_jq '.storage.commits > 0' true
    assert_jq '.storage.commit_ms_p99 | type' number
    start_daemon '[storage]
state_dir ='
    req GET /v1/info
    assert_jq .storage.path null
    stop_daemon
}

case_the_schema_explains_itself() {
    local schema
    schema=$(sqlite3 "$MAIN_STATE/state.db" .schema) || fail "sqlite3 cannot read $MAIN_STATE/state.db"
    for want in "time-ordered" "Unix time in ms" "events_next" "Idempotency-Key"; do
        grep -qF -- "$want" <<<"$schema" || fail "the schema has no comment with '$want': $(head -c 300 <<<"$schema" | tr '\n' '|')"
    done
    assert_eq "$(sqlite3 "$MAIN_STATE/state.db" 'PRAGMA user_version')" 3 "user_version"
    grep -qF -- "notify_target" <<<"$schema" || fail "the schema has no notify columns"
    grep -qF -- "CREATE TABLE queues" <<<"$schema" || fail "the schema has no queues table"
    grep -qF -- "retry_at" <<<"$schema" || fail "the schema has no retry columns"
    grep -qF -- "group_spec" <<<"$schema" || fail "the schema has no group columns"
}

# drop_schema_3 DB: takes a database back to schema 2 (no priority,
# not_before, retry columns, queues table).
drop_schema_3() {
    local col
    for col in priority not_before retry attempt last_error_type last_error_message retry_at \
               after parent group_spec; do
        sqlite3 "$1" "ALTER TABLE tasks DROP COLUMN $col" || fail "sqlite3 cannot drop $col"
    done
    sqlite3 "$1" 'DROP TABLE queues; PRAGMA user_version = 2' || fail "sqlite3 cannot drop queues"
}

# A database of schema 2 (before priorities, delays, queue pauses and
# retries) is upgraded in place: its tasks come back with priority 0, no
# not_before and one attempt; a pause can be stored and a retry runs.
case_a_schema_2_database_is_upgraded_in_place() {
    local conf a
    conf=$(storage_conf "$CASE_TMP/state" full)
    start_daemon "$conf"
    create '{"kind":"sleep","name":"old2","args":{"seconds":0,"result":"kept"}}'; a=$ID
    await_state "$a" succeeded
    stop_daemon
    drop_schema_3 "$CASE_TMP/state/state.db"
    start_daemon "$conf"
    req GET /v1/tasks/$a
    assert_status 200
    assert_jq '[.name, .state, .result, .priority, .not_before, .attempt, .last_error, .after, .parent]' \
        '["old2","succeeded","kept",0,null,1,null,[],null]'
    create '{"kind":"sleep","args":{"seconds":0,"fail":"x"},"retry":{"attempts":2,"backoff":0}}'
    await_state "$ID" failed
    assert_jq '[.state, .attempt, .last_error.message]' '["failed",2,"x"]'
    create "{\"kind\":\"sleep\",\"args\":{\"seconds\":0},\"after\":[\"$a\"]}"
    await_state "$ID" succeeded
    req POST /v1/queues/default/pause
    assert_status 200
    stop_daemon
    assert_eq "$(sqlite3 "$CASE_TMP/state/state.db" 'PRAGMA user_version')" 3 "user_version"
    assert_eq "$(sqlite3 "$CASE_TMP/state/state.db" "SELECT paused FROM queues WHERE name = 'default'")" 1 \
        "the stored pause of default"
    assert_eq "$(sqlite3 "$CASE_TMP/state/state.db" "SELECT after FROM tasks WHERE id = '$ID'")" \
        "[\"$a\"]" "the after column"
}

# A database written before webhooks (schema 1: no notify_ columns) is
# upgraded in place, 1 -> 2 -> 3: its tasks come back.
case_a_schema_1_database_is_upgraded_in_place() {
    local conf a col
    conf=$(storage_conf "$CASE_TMP/state" full)
    start_daemon "$conf"
    create '{"kind":"sleep","name":"old","args":{"seconds":0,"result":"kept"}}'; a=$ID
    await_state "$a" succeeded
    stop_daemon
    drop_schema_3 "$CASE_TMP/state/state.db"
    for col in notify_target notify_state notify_attempts notify_last_status \
               notify_last_error notify_next_at; do
        sqlite3 "$CASE_TMP/state/state.db" "ALTER TABLE tasks DROP COLUMN $col" ||
            fail "sqlite3 cannot drop $col"
    done
    sqlite3 "$CASE_TMP/state/state.db" 'PRAGMA user_version = 1'
    start_daemon "$conf"
    req GET /v1/tasks/$a
    assert_status 200
    assert_jq '[.name, .state, .result, .notify]' '["old","succeeded","kept",null]'
    stop_daemon
    assert_eq "$(sqlite3 "$CASE_TMP/state/state.db" 'PRAGMA user_version')" 3 "user_version"
    sqlite3 "$CASE_TMP/state/state.db" 'SELECT notify_state, priority, retry_at, group_spec FROM tasks' \
        >/dev/null || fail "no notify_state, priority, retry_at or group_spec column after the upgrade"
}

case_sync_normal_keeps_tasks_across_sigterm_and_kill_9() {
    local conf a b
    conf=$(storage_conf "$CASE_TMP/state" normal)
    start_daemon "$conf"
    req GET /v1/info
    assert_jq .storage.sync normal
    create '{"kind":"sleep","name":"a","args":{"seconds":0,"result":"a"}}'; a=$ID
    await_state "$a" succeeded
    stop_daemon
    start_daemon "$conf"
    req GET /v1/tasks/$a
    assert_jq '[.name, .state, .result]' '["a","succeeded","a"]'
    create '{"kind":"sleep","name":"b","args":{"seconds":30}}'; b=$ID
    crash
    start_daemon "$conf"
    req GET /v1/tasks/$b
    assert_jq '[.name, .state, .error.type]' '["b","failed","interrupted"]'
    stop_daemon
}

run_cases
