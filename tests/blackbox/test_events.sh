#!/usr/bin/env bash
# GET /v1/events: Server-Sent Events of every state change, ?id= to follow
# one task, Last-Event-ID to resume, ?access_token=, heartbeats, a stalled
# reader dropped with bounded memory, and SIGTERM with a stream open.
# Streams are read by curl -N in the background into a file that the case
# polls with a bounded loop.

. "$(dirname "$0")/lib.sh"

# Heartbeats every 300 ms instead of 15 s, so that a case can see one.
AWAITD_SSE_HEARTBEAT_MS=300 start_main_daemon '[queue:one]
concurrency = 1'

# sse_start NAME [QUERY [CURL_ARGS...]]: GET /v1/events?QUERY with curl -N in
# the background, into $CASE_TMP/NAME.sse (headers in NAME.h). Sets SSE_PID,
# curl's pid. Does not wait.
sse_start() {
    local name=$1 query=${2:-}
    shift
    [ $# -gt 0 ] && shift
    local auth=()
    [ -n "$TOKEN" ] && auth=(-H "Authorization: Bearer $TOKEN")
    : >"$CASE_TMP/$name.sse"
    curl -sS -N --max-time 25 -D "$CASE_TMP/$name.h" -o "$CASE_TMP/$name.sse" \
        "${auth[@]}" "$@" "$BASE/v1/events${query:+?$query}" 2>"$CASE_TMP/$name.err" &
    SSE_PID=$!
    LAST_CMD="curl -N $* $BASE/v1/events${query:+?$query}"
}

# sse_open NAME [QUERY [CURL_ARGS...]]: sse_start, then waits (5 s) for the
# stream's opening comment, so that the stream is known to be subscribed.
sse_open() {
    sse_start "$@"
    await_line "$1" '^: awaitd events'
}

# await_line NAME REGEX: bounded poll (5 s) until stream NAME has a line
# matching REGEX.
await_line() {
    local i
    for ((i = 0; i < 100; i++)); do
        grep -qE "$2" "$CASE_TMP/$1.sse" && return 0
        sleep 0.05
    done
    fail "stream $1 had no line matching '$2' within 5 s; it has: $(head -c 400 "$CASE_TMP/$1.sse" | tr '\n' '|')"
}

# sse_states NAME ID: the states of task ID's events in stream NAME, in
# order, on one line. A data line curl has not finished writing is skipped.
sse_states() {
    sed -n 's/^data: //p' "$CASE_TMP/$1.sse" |
        jq -rR --arg id "$2" 'fromjson? | select(.id == $id) | .state' | paste -sd' ' -
}

# await_states NAME ID STATES: bounded poll (5 s) until stream NAME's
# states of task ID are exactly STATES (space-separated).
await_states() {
    local i got=""
    for ((i = 0; i < 100; i++)); do
        got=$(sse_states "$1" "$2")
        [ "$got" = "$3" ] && return 0
        sleep 0.05
    done
    fail "stream $1: task $2 went through '$got', expected '$3'"
}

# await_end NAME: bounded poll (5 s) until stream NAME's curl (the last
# sse_start's, SSE_PID) has exited; sets SSE_RC to its exit status.
await_end() {
    local i
    for ((i = 0; i < 100; i++)); do
        if ! kill -0 "$SSE_PID" 2>/dev/null; then
            wait "$SSE_PID"
            SSE_RC=$?
            return 0
        fi
        sleep 0.05
    done
    kill "$SSE_PID"
    fail "stream $1 was still open 5 s later; it has: $(tail -c 300 "$CASE_TMP/$1.sse" | tr '\n' '|')"
}

# event_id NAME ID STATE: the id: line of task ID's STATE event in stream NAME.
event_id() {
    awk -v id="\"id\":\"$2\"" -v st="\"state\":\"$3\"" '
        /^id: / { eid = $2 }
        /^data: / && index($0, id) && index($0, st) { print eid; exit }' "$CASE_TMP/$1.sse"
}

# big_tasks N NAME_BYTES: creates N zero-second sleeps, each named with
# NAME_BYTES bytes, in one curl run (three events of that size each).
big_tasks() {
    local i
    head -c "$2" /dev/zero | tr '\0' a | jq -Rc '{kind: "sleep", args: {seconds: 0}, name: .}' \
        >"$CASE_TMP/big.json"
    : >"$CASE_TMP/big.cfg"
    for ((i = 0; i < $1; i++)); do
        [ $i -gt 0 ] && echo next >>"$CASE_TMP/big.cfg"
        printf 'url = "%s/v1/tasks"\ndata-binary = "@%s"\noutput = "/dev/null"\n' \
            "$BASE" "$CASE_TMP/big.json" >>"$CASE_TMP/big.cfg"
        printf 'silent\nshow-error\nmax-time = 60\nwrite-out = "%%{http_code}\\n"\n' >>"$CASE_TMP/big.cfg"
    done
    curl -K "$CASE_TMP/big.cfg" >"$CASE_TMP/big.codes" ||
        fail "creating $1 tasks with $2-byte names failed"
    [ "$(grep -c '^201$' "$CASE_TMP/big.codes")" = "$1" ] ||
        fail "creating $1 tasks with $2-byte names: statuses $(sort "$CASE_TMP/big.codes" | uniq -c | tr '\n' ' ')"
}

# rss_kb: the daemon's resident memory, in kB.
rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$DPID/status"
}

# ----- the stream of every change

case_stream_shows_pending_running_succeeded_in_order() {
    local blocker id
    create '{"kind":"sleep","args":{"seconds":30},"queue":"one"}'
    blocker=$ID
    sse_open all
    grep -q '^HTTP/1.1 200' "$CASE_TMP/all.h" || fail "status line: $(head -n1 "$CASE_TMP/all.h")"
    grep -qi '^content-type: *text/event-stream' "$CASE_TMP/all.h" ||
        fail "content type: $(tr '\r\n' '  ' <"$CASE_TMP/all.h")"
    create '{"kind":"sleep","args":{"seconds":0.2,"result":"r"},"queue":"one"}'
    id=$ID
    assert_jq .state pending
    await_states all "$id" pending
    req POST "/v1/tasks/$blocker/cancel"
    assert_status 200
    await_states all "$id" 'pending running succeeded'
    await_states all "$blocker" cancelled
    # Each event is a complete SSE record with the task object.
    grep -A2 "^id: $(event_id all "$id" succeeded)\$" "$CASE_TMP/all.sse" >"$CASE_TMP/rec"
    [ "$(sed -n 2p "$CASE_TMP/rec")" = "event: task" ] ||
        fail "the record is not id/event/data: $(tr '\n' '|' <"$CASE_TMP/rec")"
    BODY=$(sed -n 's/^data: //p' "$CASE_TMP/rec")
    assert_jq .result r
    assert_jq .done true
    kill "$SSE_PID" 2>/dev/null
}

case_event_ids_increase_by_one() {
    sse_open ids
    create '{"kind":"sleep","args":{"seconds":0}}'
    await_states ids "$ID" 'pending running succeeded'
    local a b c
    a=$(event_id ids "$ID" pending)
    b=$(event_id ids "$ID" running)
    c=$(event_id ids "$ID" succeeded)
    [ -n "$a" ] && [ "$b" = $((a + 1)) ] && [ "$c" = $((a + 2)) ] ||
        fail "ids of pending, running, succeeded: '$a' '$b' '$c'"
    kill "$SSE_PID" 2>/dev/null
}

case_a_hundred_streams_all_receive_an_event() {
    local i pids=() missing=0 n
    for ((i = 0; i < 100; i++)); do
        sse_start "c$i"
        pids+=("$SSE_PID")
    done
    for ((i = 0; i < 100; i++)); do
        await_line "c$i" '^: awaitd events'
    done
    create '{"kind":"sleep","args":{"seconds":0}}'
    for ((i = 0; i < 100; i++)); do
        await_states "c$i" "$ID" 'pending running succeeded'
    done
    kill "${pids[@]}" 2>/dev/null
}

case_heartbeat_comments_arrive_on_an_idle_stream() {
    # The main daemon runs with AWAITD_SSE_HEARTBEAT_MS=300.
    sse_open idle
    await_line idle '^: ping$'
    kill "$SSE_PID" 2>/dev/null
}

# ----- ?id=: one task

case_id_starts_with_the_current_state_and_ends_after_the_final_one() {
    local blocker id
    create '{"kind":"sleep","args":{"seconds":30},"queue":"one"}'
    blocker=$ID
    create '{"kind":"sleep","args":{"seconds":0.2},"queue":"one"}'
    id=$ID
    create '{"kind":"sleep","args":{"seconds":0}}'     # another task: not in this stream
    sse_open one "id=$id"
    await_states one "$id" pending
    req POST "/v1/tasks/$blocker/cancel"
    await_states one "$id" 'pending running succeeded'
    await_end one
    assert_eq "$SSE_RC" 0 "curl's exit status at the end of ?id= ($(cat "$CASE_TMP/one.err"))"
    [ "$(grep -c '^data: ' "$CASE_TMP/one.sse")" = 3 ] ||
        fail "?id= stream had other events: $(grep -c '^data: ' "$CASE_TMP/one.sse") data lines"
}

case_id_of_a_finished_task_sends_its_state_and_ends() {
    create '{"kind":"sleep","args":{"seconds":0,"fail":"boom"}}'
    local id=$ID
    sse_start done "id=$id"
    await_end done
    assert_eq "$SSE_RC" 0 "curl's exit status"
    assert_eq "$(sse_states done "$id")" failed "states in the stream"
}

case_id_resumed_after_its_final_event_is_204() {
    create '{"kind":"sleep","args":{"seconds":0}}'
    local id=$ID last
    sse_start first "id=$id"
    await_end first
    last=$(sed -n 's/^id: //p' "$CASE_TMP/first.sse" | tail -n1)
    [ -n "$last" ] || fail "the ?id= stream's event had no id: line"
    # What EventSource does when the stream ends: reconnect with the id.
    req -H "Last-Event-ID: $last" GET "/v1/events?id=$id"
    assert_status 204
}

case_id_unknown_is_404() {
    req GET '/v1/events?id=t_doesnotexist'
    assert_error 404 not_found
}

# ----- Last-Event-ID

case_last_event_id_header_replays_what_came_after() {
    sse_open live
    create '{"kind":"sleep","args":{"seconds":0}}'
    local id=$ID last
    await_states live "$id" 'pending running succeeded'
    kill "$SSE_PID" 2>/dev/null
    last=$(event_id live "$id" pending)
    sse_start resumed '' -H "Last-Event-ID: $last"
    await_states resumed "$id" 'running succeeded'
    kill "$SSE_PID" 2>/dev/null
}

case_last_event_id_query_parameter_replays_too() {
    sse_open live
    create '{"kind":"sleep","args":{"seconds":0}}'
    local id=$ID last
    await_states live "$id" 'pending running succeeded'
    kill "$SSE_PID" 2>/dev/null
    last=$(event_id live "$id" running)
    sse_start resumed "last_event_id=$last"
    await_states resumed "$id" succeeded
    kill "$SSE_PID" 2>/dev/null
}

case_last_event_id_older_than_the_ring_starts_at_the_oldest_kept() {
    start_daemon ''
    sse_open live
    create '{"kind":"sleep","args":{"seconds":0}}'
    local first=$ID oldest
    await_states live "$first" 'pending running succeeded'
    kill "$SSE_PID" 2>/dev/null
    # 5 MB of events: more than the ring keeps (4 MiB), so id 1 is gone.
    big_tasks 35 50000
    sse_start old '' -H 'Last-Event-ID: 1'
    await_line old '^: last event id 1 is older than the kept events; starting from id [0-9]+'
    oldest=$(sed -n 's/^: last event id 1 .* starting from id \([0-9]*\).*/\1/p' "$CASE_TMP/old.sse")
    [ "$oldest" -gt 2 ] || fail "oldest kept id $oldest after 5 MB of events"
    await_line old "^id: $oldest\$"
    [ "$(sed -n 's/^id: //p' "$CASE_TMP/old.sse" | head -n1)" = "$oldest" ] ||
        fail "the replay did not start at id $oldest: $(grep -m3 '^id: ' "$CASE_TMP/old.sse" | tr '\n' ' ')"
    assert_eq "$(sse_states old "$first")" "" "states of the first task, whose events are gone"
    kill "$SSE_PID" 2>/dev/null
    stop_daemon
}

case_last_event_id_from_another_run_is_said_unknown() {
    sse_start future '' -H 'Last-Event-ID: 99999999'
    await_line future '^: last event id 99999999 is unknown \(newer than any event of this daemon\)'
    kill "$SSE_PID" 2>/dev/null
}

case_last_event_id_not_a_number_is_400() {
    req GET '/v1/events?last_event_id=abc'
    assert_error 400 invalid_request
    req -H 'Last-Event-ID: -1' GET /v1/events
    assert_error 400 invalid_request
}

# ----- authentication

case_access_token_query_parameter_is_accepted() {
    start_daemon '[server]
auth_token = s3cret-token'
    TOKEN=s3cret-token create '{"kind":"sleep","args":{"seconds":0}}'
    local id=$ID
    sse_start tok "id=$id&access_token=s3cret-token"
    await_end tok
    assert_eq "$SSE_RC" 0 "curl's exit status ($(cat "$CASE_TMP/tok.err"))"
    assert_eq "$(sse_states tok "$id")" succeeded "states in the stream"
    req GET "/v1/events?id=$id"
    assert_error 401 unauthorized
    req GET "/v1/events?id=$id&access_token=wrong"
    assert_error 401 unauthorized
    req GET "/v1/events?id=$id&access_token="
    assert_error 401 unauthorized
    # Only the event stream takes the token from the URL.
    req GET "/v1/tasks/$id?access_token=s3cret-token"
    assert_error 401 unauthorized
    TOKEN=s3cret-token req GET "/v1/events?id=$id"
    assert_status 200
    stop_daemon
}

# ----- slow readers and shutdown

case_a_stalled_client_is_dropped_and_memory_stays_bounded() {
    # Retention 0: the tasks' own 50 kB names are not held, so what RSS
    # measures is the events. A small ASan quarantine: freed memory is then
    # reused, and RSS means what it means in the plain build.
    ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=4" start_daemon '[tasks]
retention_seconds = 0'
    local round line i rc before after open
    for round in 1 2; do
        # Connects, reads the answer's head, then never reads again.
        exec 5<>"/dev/tcp/127.0.0.1/$PORT" || fail "cannot connect to $PORT"
        printf 'GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' >&5
        line=""
        for ((i = 0; i < 20; i++)); do
            IFS= read -r -t 5 line <&5 || break
            [[ $line == ': awaitd events'* ]] && break
        done
        [[ $line == ': awaitd events'* ]] || fail "the stalled client's stream did not open (last line: $line)"
        [ $round = 2 ] && before=$(rss_kb)
        # 300 tasks, three 50 kB events each: 45 MB the client never reads.
        big_tasks 300 50000
        [ $round = 2 ] && after=$(rss_kb)
        # Dropped: the daemon closes the socket (bounded: cat ends at EOF).
        timeout 10 cat <&5 >/dev/null
        rc=$?
        exec 5<&-
        [ $rc != 124 ] || fail "the stalled client's socket was still open 10 s after 45 MB of events"
    done
    grep -q 'dropping a client' "$DLOG" || fail "no 'dropping a client' line in the log"
    assert_less $((after - before)) 8192 "kB of RSS grown while 45 MB of events passed a stalled client"
    for ((i = 0; i < 100; i++)); do
        req GET /metrics
        open=$(metric awaitd_http_connections)
        [ "$open" = 1 ] && break
        sleep 0.05
    done
    assert_eq "$open" 1 "open connections (this /metrics request only) after the drop"
    stop_daemon
}

case_sigterm_ends_an_open_stream_and_exits_0() {
    start_daemon ''
    sse_open open
    create '{"kind":"sleep","args":{"seconds":30}}'
    await_states open "$ID" 'pending running'
    stop_daemon
    await_end open
    assert_eq "$SSE_RC" 0 "curl's exit status for the stream open at SIGTERM ($(cat "$CASE_TMP/open.err"))"
}

run_cases
