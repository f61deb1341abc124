#!/usr/bin/env bash
# The exec kind: a program run without a shell, its result (exit code,
# signal, output), cancel and timeout of its whole process group, output
# capping, the output endpoint (plain and follow=true), the allow-list, and
# that many jobs leave no fd or child behind.

. "$(dirname "$0")/lib.sh"

# On Debian /bin is a symlink to /usr/bin: a bare name ("echo") resolves
# through `path` to /usr/bin/echo, an argv[0] of /bin/sh stays /bin/sh. The
# machine (and CI) run as root, hence allow_root.
EXEC_CONF='[kinds]
exec = true
[exec]
allow = /bin/* /usr/bin/*
kill_grace_seconds = 5
max_output_bytes = 1048576
allow_root = true
path = /usr/local/bin:/usr/bin:/bin
[queue:jobs]
concurrency = 2'

# A small ASan quarantine: freed memory is then reused, so the RSS bound
# of the 15 MB case means in the sanitized build what it means in the
# plain one (the store copies a finished job's result once, then frees it).
ASAN_OPTIONS="${ASAN_OPTIONS:-}:quarantine_size_mb=4" start_main_daemon "$EXEC_CONF"

# argv_json ARG...: the JSON array of the given strings ("--": jq would
# take an argument such as -c for an option of its own).
argv_json() {
    jq -nc '$ARGS.positional' --args -- "$@"
}

# exec_body [JSON_FIELDS] -- ARG...: a create body for argv ARG..., with
# JSON_FIELDS (e.g. '"env":{"A":"1"}') added to args.
exec_body() {
    local extra=""
    if [ "$1" != -- ]; then
        extra=",$1"
        shift
    fi
    shift
    printf '{"kind":"exec","args":{"argv":%s%s}}' "$(argv_json "$@")" "$extra"
}

# run_job [JSON_FIELDS] -- ARG...: creates the job and waits (10 s) for its end.
run_job() {
    create "$(exec_body "$@")"
    req GET "/v1/tasks/$ID/wait?timeout=10"
    assert_status 200
    assert_jq .done true
}

# procs PATTERN: sets NPROC to the number of processes whose command line
# matches PATTERN (pgrep -f; anchor it with ^ so that the `sh -c` line that
# started them does not count).
procs() {
    NPROC=$(pgrep -f -- "$1" | wc -l)
}

# rss_kb: the current daemon's resident set size in kB.
rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$DPID/status"
}

# await_output ID TEXT: polls GET /v1/tasks/ID/output every 50 ms (up to 5 s)
# until the stdout kept so far is exactly TEXT (trailing newlines included).
await_output() {
    local i
    for ((i = 0; i < 100; i++)); do
        req GET "/v1/tasks/$1/output"
        [ "$STATUS" = 200 ] && printf '%s' "$2" | cmp -s - "$CASE_TMP/body" && return 0
        sleep 0.05
    done
    fail "output of task $1 did not become '$2' within 5 s$(ctx)"
}

# A keep-alive HTTP/1.1 client in bash, for the 1,000-job case only: a curl
# per request costs ~10 ms of forks, which would make that case take ~10 s.
# kopen opens the connection as fd KA; kreq METHOD PATH [BODY] sends one
# request on it and sets KSTATUS and KBODY (answers with Content-Length).
# Each request is written in one write(2): bash line-buffers its output, so a
# body after the last newline would go out in a second segment and wait for
# the server's delayed ACK (40 ms); callers end a body with a newline.
kopen() {
    exec {KA}<>"/dev/tcp/127.0.0.1/$PORT" || fail "cannot connect to 127.0.0.1:$PORT"
}

kreq() {
    local rq m=$1 p=$2 b=${3:-} line len=0
    if [ -n "$b" ]; then
        printf -v rq '%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
            "$m" "$p" "${#b}" "$b"
    else
        printf -v rq '%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' "$m" "$p"
    fi
    LAST_CMD="$m $p (keep-alive connection)"
    printf '%s' "$rq" >&"$KA" || fail "cannot send $m $p on the keep-alive connection"
    IFS= read -r -t 10 -u "$KA" line || fail "no answer to $m $p on the keep-alive connection"
    KSTATUS=${line#HTTP/1.1 }
    KSTATUS=${KSTATUS%% *}
    while IFS= read -r -t 10 -u "$KA" line; do
        line=${line%$'\r'}
        [ -z "$line" ] && break
        case ${line,,} in content-length:*) len=${line#*:}; len=${len// /} ;; esac
    done
    KBODY=""
    if [ "$len" -gt 0 ]; then
        IFS= read -r -t 10 -N "$len" -u "$KA" KBODY || fail "short body for $m $p"
    fi
}

case_echo_hi_succeeds_with_its_stdout() {
    run_job -- echo hi
    assert_jq .state succeeded
    assert_jq .kind exec
    assert_jq .error null
    assert_jq '.result | keys' '["exit_code","signal","stderr","stdout","truncated"]'
    assert_jq .result.exit_code 0
    assert_jq .result.signal null
    assert_jq '.result.stdout == "hi\n"' true
    assert_jq .result.stderr ''
    assert_jq .result.truncated false
    req GET /v1/info
    assert_jq .kinds.exec true
}

case_stdin_is_passed_through() {
    run_job '"stdin":"abc"' -- cat
    assert_jq .state succeeded
    assert_jq .result.stdout abc
    # More than a pipe holds (64 KiB): written as the job reads it.
    head -c 300000 /dev/zero | tr '\0' x >"$CASE_TMP/big"
    jq -Rsc '{kind:"exec",args:{argv:["cat"],stdin:.}}' "$CASE_TMP/big" >"$CASE_TMP/cat.json"
    req --data-file "$CASE_TMP/cat.json" POST /v1/tasks
    assert_status 201
    req GET "/v1/tasks/$(jqb .id)/wait?timeout=10"
    assert_jq .state succeeded
    assert_jq '.result.stdout | length' 300000
    assert_jq '.result.stdout | test("^x+$")' true
}

case_a_job_that_does_not_read_its_stdin_does_not_hurt_the_daemon() {
    head -c 300000 /dev/zero | tr '\0' x >"$CASE_TMP/big"
    jq -Rsc '{kind:"exec",args:{argv:["/bin/true"],stdin:.}}' "$CASE_TMP/big" >"$CASE_TMP/true.json"
    req --data-file "$CASE_TMP/true.json" POST /v1/tasks
    assert_status 201
    req GET "/v1/tasks/$(jqb .id)/wait?timeout=10"
    assert_jq .state succeeded
    assert_jq .result.exit_code 0
    req GET /healthz
    assert_status 200
}

case_env_is_exactly_what_was_given_plus_a_default_path() {
    local lines='.result.stdout | split("\n") | map(select(length > 0)) | sort'
    run_job '"env":{"A":"1"}' -- /usr/bin/env
    assert_jq .state succeeded
    assert_jq "$lines" '["A=1","PATH=/usr/local/bin:/usr/bin:/bin"]'
    # A PATH of the job's own replaces the default one.
    run_job '"env":{"PATH":"/usr/bin","B":"x y"}' -- /usr/bin/env
    assert_jq "$lines" '["B=x y","PATH=/usr/bin"]'
    # No env at all: only the default PATH.
    run_job -- /usr/bin/env
    assert_jq "$lines" '["PATH=/usr/local/bin:/usr/bin:/bin"]'
}

case_cwd_is_honoured() {
    run_job '"cwd":"/tmp"' -- pwd
    assert_jq .state succeeded
    assert_jq '.result.stdout == "/tmp\n"' true
}

case_false_fails_with_exit_status_1() {
    run_job -- false
    assert_jq .state failed
    assert_jq .error.type exit_status
    assert_jq '.error.message | type == "string" and length > 0' true
    assert_jq .result.exit_code 1
    assert_jq .result.signal null
    assert_jq .result.truncated false
}

case_a_job_killed_by_another_signal_fails_with_signal() {
    run_job -- /bin/sh -c 'kill -KILL $$'
    assert_jq .state failed
    assert_jq .error.type signal
    assert_jq .result.exit_code null
    assert_jq .result.signal SIGKILL
}

case_nul_and_invalid_utf8_output_is_still_valid_json() {
    run_job -- /usr/bin/head -c 3 /dev/zero
    assert_jq .state succeeded
    assert_jq '.result.stdout | explode' '[0,0,0]'
    run_job -- /usr/bin/printf 'a\377b'
    assert_jq '.result.stdout | explode' '[97,65533,98]'
}

case_15_mb_of_output_is_capped_at_max_output_without_growing_the_daemon() {
    local before after
    run_job -- echo warm-up
    before=$(rss_kb)
    # seq 1 2000000 prints 14,888,896 bytes.
    run_job '"max_output":1048576' -- /usr/bin/seq 1 2000000
    assert_jq .state succeeded
    assert_jq .result.exit_code 0
    assert_jq .result.truncated true
    assert_jq '.result.stdout | length <= 1048576 and length > 1000000' true
    assert_jq '.result.stdout | startswith("1\n2\n3\n4\n")' true
    req GET "/v1/tasks/$ID/output"
    assert_status 200
    [ "${#BODY}" -le 1048576 ] || fail "GET output returned ${#BODY} bytes, more than max_output"
    after=$(rss_kb)
    note "daemon VmRSS ${before} kB before, ${after} kB after 15 MB of output"
    assert_less "$((after - before))" 10240 "kB the daemon's VmRSS grew by after a job printed 15 MB"
}

case_max_output_below_and_above_the_ceiling() {
    run_job '"max_output":100' -- seq 1 1000
    assert_jq .state succeeded
    assert_jq .result.truncated true
    assert_jq '.result.stdout | length' 100
    # The configured max_output_bytes is a ceiling a client cannot raise.
    run_job '"max_output":104857600' -- seq 1 2000000
    assert_jq .result.truncated true
    assert_jq '.result.stdout | length <= 1048576' true
}

case_cancel_sends_sigterm_and_ends_cancelled_within_1_s() {
    local m="30.$RANDOM$RANDOM" t0
    create "$(exec_body -- sleep "$m")"
    local id=$ID
    await_state "$id" running
    t0=$(now)
    req POST "/v1/tasks/$id/cancel"
    assert_status 202
    assert_jq .id "$id"
    assert_jq .done false
    req GET "/v1/tasks/$id/wait?timeout=1"
    assert_less "$(elapsed "$t0")" 1 "seconds from cancel to the cancelled state"
    assert_jq .state cancelled
    assert_jq .done true
    assert_jq .error.type cancelled
    assert_jq .result.exit_code null
    assert_jq .result.signal SIGTERM
    procs "^sleep $m"
    assert_eq "$NPROC" 0 "processes 'sleep $m' left after the cancel"
}

case_a_child_ignoring_sigterm_is_killed_after_the_grace() {
    start_daemon "${EXEC_CONF/kill_grace_seconds = 5/kill_grace_seconds = 1}"
    local m="30.$RANDOM$RANDOM" t0
    create "$(exec_body -- /bin/sh -c "trap '' TERM; echo ready; sleep $m")"
    local id=$ID
    # The trap is in place once the job said so.
    await_output "$id" $'ready\n'
    t0=$(now)
    req POST "/v1/tasks/$id/cancel"
    assert_status 202
    req GET "/v1/tasks/$id"
    assert_jq .done false
    req GET "/v1/tasks/$id/wait?timeout=10"
    assert_between "$(elapsed "$t0")" 0.9 4 "seconds from cancel to cancelled with kill_grace_seconds = 1"
    assert_jq .state cancelled
    assert_jq .error.type cancelled
    assert_jq .result.exit_code null
    assert_jq .result.signal SIGKILL
    procs "^sleep $m"
    assert_eq "$NPROC" 0 "processes 'sleep $m' left after the SIGKILL"
    stop_daemon
}

case_cancel_kills_the_grandchildren_of_the_job() {
    local m="300.$RANDOM$RANDOM" i
    create "$(exec_body -- /bin/sh -c "sleep ${m}1 & sleep ${m}2")"
    local id=$ID
    # Bounded poll (5 s) until both sleeps run.
    for ((i = 0; i < 100; i++)); do
        procs "^sleep $m"
        [ "$NPROC" = 2 ] && break
        sleep 0.05
    done
    assert_eq "$NPROC" 2 "processes 'sleep $m*' of the job before the cancel"
    req POST "/v1/tasks/$id/cancel"
    assert_status 202
    req GET "/v1/tasks/$id/wait?timeout=10"
    assert_jq .state cancelled
    # The grandchild is not the daemon's to reap: allow it 1 s to vanish.
    for ((i = 0; i < 20; i++)); do
        procs "^sleep $m"
        [ "$NPROC" = 0 ] && break
        sleep 0.05
    done
    assert_eq "$NPROC" 0 "processes 'sleep $m*' left 1 s after the job was cancelled"
}

case_task_timeout_ends_timed_out_with_sigterm() {
    local t0
    t0=$(now)
    create '{"kind":"exec","args":{"argv":["sleep","30"]},"timeout":0.5}'
    req GET "/v1/tasks/$ID/wait?timeout=10"
    assert_between "$(elapsed "$t0")" 0.45 2 "seconds until a job with timeout 0.5 was done"
    assert_jq .state timed_out
    assert_jq .error.type timeout
    assert_jq .result.exit_code null
    assert_jq .result.signal SIGTERM
}

case_1000_sequential_jobs_leave_no_fd_or_child_behind() {
    local fd0 fd1 ch0 ch1 i t0 secs n=1000
    kopen
    # One job first, so that the connection and whatever the first job
    # opens for good are counted in the baseline.
    kreq POST /v1/tasks $'{"kind":"exec","args":{"argv":["/bin/true"]}}\n'
    [[ $KBODY =~ \"id\":\"([^\"]+)\" ]] || fail "create answered $KSTATUS $KBODY"
    kreq GET "/v1/tasks/${BASH_REMATCH[1]}/wait?timeout=10"
    fd0=$(ls "/proc/$DPID/fd" | wc -l)
    ch0=$(ps --no-headers --ppid "$DPID" | wc -l)
    t0=$(now)
    for ((i = 0; i < n; i++)); do
        kreq POST /v1/tasks $'{"kind":"exec","args":{"argv":["/bin/true"]}}\n'
        [ "$KSTATUS" = 201 ] && [[ $KBODY =~ \"id\":\"([^\"]+)\" ]] ||
            fail "job $i: create answered $KSTATUS $KBODY"
        kreq GET "/v1/tasks/${BASH_REMATCH[1]}/wait?timeout=10"
        [[ $KBODY == *'"state":"succeeded"'* ]] || fail "job $i did not succeed: $KSTATUS $KBODY"
    done
    secs=$(elapsed "$t0")
    note "$n sequential /bin/true jobs in $secs s: $(awk -v n=$n -v s="$secs" 'BEGIN { printf "%.0f", n / s }') jobs/s"
    fd1=$(ls "/proc/$DPID/fd" | wc -l)
    ch1=$(ps --no-headers --ppid "$DPID" | wc -l)
    assert_eq "$fd1" "$fd0" "daemon's open fds after $n jobs (before: $fd0)"
    assert_eq "$ch1" "$ch0" "daemon's children after $n jobs (before: $ch0; now: $(ps --no-headers -o pid,stat,cmd --ppid "$DPID" | head -3 | tr '\n' ';'))"
}

case_queue_concurrency_2_runs_two_jobs_at_a_time() {
    local ids=() i t0 running active maxr=0 maxc=0 kids
    t0=$(now)
    for i in 1 2 3 4 5 6; do
        create '{"kind":"exec","args":{"argv":["sleep","1"]},"queue":"jobs"}'
        ids+=("$ID")
    done
    # Bounded poll (at most 100 times) while they run: never more than 2
    # running, by the API and by the daemon's child processes (`sleep 1`
    # only: a case that failed before may have left a job of its own).
    for ((i = 0; i < 100; i++)); do
        req GET '/v1/tasks?queue=jobs&state=active&limit=1000'
        assert_status 200
        active=$(jqb '.tasks | length')
        running=$(jqb '[.tasks[] | select(.state == "running")] | length')
        kids=$(ps --no-headers -o args --ppid "$DPID" | grep -c '^sleep 1$')
        ((running > maxr)) && maxr=$running
        ((kids > maxc)) && maxc=$kids
        [ "$active" = 0 ] && break
        sleep 0.05
    done
    assert_eq "$maxr" 2 "most jobs of queue jobs seen running at once"
    [ "$maxc" -le 2 ] || fail "the daemon had $maxc child processes at once, expected at most 2"
    req POST /v1/wait "{\"ids\":$(ids_json "${ids[@]}"),\"timeout\":10}"
    assert_status 200
    assert_jq '[.done[].state] | unique' '["succeeded"]'
    assert_jq '.done | length' 6
    assert_between "$(elapsed "$t0")" 2.9 4.5 "seconds for 6 one-second jobs, 2 at a time"
}

case_program_not_on_the_allow_list_is_403_forbidden() {
    local before
    count_tasks; before=$COUNT
    req POST /v1/tasks "$(exec_body -- /usr/sbin/nologin)"
    assert_error 403 forbidden
    # The allow-list applies to the path a bare name resolves to.
    req POST /v1/tasks "$(exec_body '"env":{"PATH":"/usr/sbin"}' -- nologin)"
    assert_error 403 forbidden
    # '..' does not lead out of an allowed directory.
    req POST /v1/tasks "$(exec_body -- /usr/bin/../sbin/nologin)"
    [ "$STATUS" = 400 ] || [ "$STATUS" = 403 ] ||
        fail "expected 400 or 403 for /usr/bin/../sbin/nologin$(ctx)"
    count_tasks
    assert_eq "$COUNT" "$before" "tasks after refused creates"
}

case_exec_disabled_is_403_kind_disabled() {
    start_daemon '[kinds]
exec = false
[exec]
allow = /bin/* /usr/bin/*
allow_root = true'
    req POST /v1/tasks "$(exec_body -- echo hi)"
    assert_error 403 kind_disabled
    # The shape is checked first: a malformed request is a 400.
    req POST /v1/tasks '{"kind":"exec","args":{"argv":[]}}'
    assert_status 400
    req GET /v1/info
    assert_jq .kinds.exec false
    stop_daemon
}

case_bad_args_are_400() {
    local body before
    count_tasks; before=$COUNT
    for body in '{"kind":"exec"}' \
        '{"kind":"exec","args":{}}' \
        '{"kind":"exec","args":{"argv":[]}}' \
        '{"kind":"exec","args":{"argv":"echo hi"}}' \
        '{"kind":"exec","args":{"argv":["echo",1]}}' \
        '{"kind":"exec","args":{"argv":[1]}}' \
        '{"kind":"exec","args":{"argv":["echo"],"env":{"A":1}}}' \
        '{"kind":"exec","args":{"argv":["echo"],"cwd":"/no/such/dir-xyz"}}' \
        '{"kind":"exec","args":{"argv":["echo"],"cwd":"/etc/passwd"}}' \
        '{"kind":"exec","args":{"argv":["echo"],"stdin":5}}' \
        '{"kind":"exec","args":{"argv":["echo"],"max_output":-1}}'; do
        req POST /v1/tasks "$body"
        assert_status 400
        assert_jq '.error.code | type == "string" and length > 0' true
    done
    count_tasks
    assert_eq "$COUNT" "$before" "tasks after refused creates"
}

case_missing_program_fails_with_spawn_error() {
    run_job -- /usr/bin/does-not-exist-xyz
    assert_jq .state failed
    assert_jq .error.type spawn_error
    assert_jq '.error.message | test("No such file or directory")' true
    assert_jq .result.exit_code null
    assert_jq .result.stdout ''
}

case_output_returns_the_output_so_far_and_stderr() {
    create "$(exec_body -- /bin/sh -c 'echo one; echo err1 >&2; sleep 1; echo two')"
    local id=$ID
    await_output "$id" $'one\n'
    assert_eq "$(header Content-Type | cut -d';' -f1)" text/plain "Content-Type of output"
    req GET "/v1/tasks/$id/output?stream=stdout"
    assert_eq "$BODY" one "stdout so far"
    req GET "/v1/tasks/$id/output?stream=stderr"
    assert_status 200
    assert_eq "$BODY" err1 "stderr so far"
    req GET "/v1/tasks/$id"
    assert_jq .state running
    req GET "/v1/tasks/$id/output?stream=bogus"
    assert_status 400
    assert_jq '.error.code | type == "string" and length > 0' true
    req GET /v1/tasks/t_no_such_task/output
    assert_error 404 not_found
    req GET "/v1/tasks/$id/wait?timeout=10"
    assert_jq .state succeeded
    req GET "/v1/tasks/$id/output"
    assert_status 200
    # $(...) drops trailing newlines: compare the file.
    printf 'one\ntwo\n' | cmp -s - "$CASE_TMP/body" || fail "final output is not 'one\\ntwo\\n'$(ctx)"
}

case_output_follow_streams_until_the_task_ends() {
    create "$(exec_body -- /bin/sh -c 'echo one; sleep 2; echo two')"
    local id=$ID i cpid got="" state rc
    curl -sS -N --max-time 15 -D "$CASE_TMP/fh" -o "$CASE_TMP/follow" \
        "$BASE/v1/tasks/$id/output?follow=true" 2>"$CASE_TMP/fcurl.err" &
    cpid=$!
    LAST_CMD="curl -N $BASE/v1/tasks/$id/output?follow=true"
    # Bounded poll (1.5 s) of what curl received so far.
    for ((i = 0; i < 30; i++)); do
        [ -s "$CASE_TMP/follow" ] && break
        sleep 0.05
    done
    got=$(cat "$CASE_TMP/follow")
    req GET "/v1/tasks/$id"
    state=$(jqb .state)
    [ "$got" = one ] ||
        fail "follow=true had received '$got' 1.5 s into the job, expected 'one' (headers: $(tr '\r\n' '  ' <"$CASE_TMP/fh"); body: $got)"
    assert_eq "$state" running "state of the task when follow=true had received 'one'"
    req GET "/v1/tasks/$id/wait?timeout=10"
    assert_jq .state succeeded
    # The stream ends when the task does (bounded: 2 s).
    for ((i = 0; i < 40; i++)); do
        kill -0 "$cpid" 2>/dev/null || break
        sleep 0.05
    done
    kill -0 "$cpid" 2>/dev/null && { kill "$cpid"; fail "follow=true still open 2 s after the task ended"; }
    wait "$cpid"
    rc=$?
    assert_eq "$rc" 0 "curl's exit status ($(cat "$CASE_TMP/fcurl.err"))"
    grep -q '^HTTP/1.1 200' "$CASE_TMP/fh" || fail "follow=true status line: $(head -n1 "$CASE_TMP/fh")"
    grep -qi '^transfer-encoding: *chunked' "$CASE_TMP/fh" ||
        fail "follow=true answer is not chunked: $(tr '\r\n' '  ' <"$CASE_TMP/fh")"
    grep -qi '^content-type: *text/plain' "$CASE_TMP/fh" ||
        fail "follow=true Content-Type: $(grep -i '^content-type' "$CASE_TMP/fh")"
    printf 'one\ntwo\n' | cmp -s - "$CASE_TMP/follow" ||
        fail "follow=true received '$(cat "$CASE_TMP/follow")', expected 'one\\ntwo\\n'"
}

case_output_follow_of_a_finished_task_ends_at_once() {
    run_job -- /bin/sh -c 'echo out; echo err >&2'
    assert_jq .state succeeded
    local t0 rc
    t0=$(now)
    curl -sS -N --max-time 5 -o "$CASE_TMP/f1" "$BASE/v1/tasks/$ID/output?follow=true"
    rc=$?
    assert_less "$(elapsed "$t0")" 1 "seconds for follow=true on a finished task"
    assert_eq "$rc" 0 "curl's exit status for follow=true on a finished task"
    assert_eq "$(cat "$CASE_TMP/f1")" out "follow=true stdout of a finished task"
    curl -sS -N --max-time 5 -o "$CASE_TMP/f2" "$BASE/v1/tasks/$ID/output?stream=stderr&follow=true"
    assert_eq "$(cat "$CASE_TMP/f2")" err "follow=true stderr of a finished task"
}

case_exec_as_root_without_allow_root_refuses_to_start() {
    local conf=$CASE_TMP/root.conf rc err
    printf '[kinds]\nexec = true\n[exec]\nallow = /usr/bin/*\n' >"$conf"
    timeout 10 "$AWAITD" --check-config --config "$conf" >/dev/null 2>"$CASE_TMP/err" </dev/null
    rc=$?
    err=$(cat "$CASE_TMP/err")
    if [ "$(id -u)" != 0 ]; then
        assert_eq "$rc" 0 "exit status of --check-config when not root (stderr: $err)"
        return
    fi
    assert_eq "$rc" 2 "exit status of --check-config with exec = true as root without allow_root"
    [[ $err == *allow_root* ]] || fail "stderr does not mention allow_root: $err"
    timeout 10 "$AWAITD" --config "$conf" --listen 127.0.0.1:0 >/dev/null 2>"$CASE_TMP/err" </dev/null
    rc=$?
    err=$(cat "$CASE_TMP/err")
    assert_eq "$rc" 2 "exit status of awaitd started with exec = true as root without allow_root"
    [[ $err == *allow_root* ]] || fail "stderr does not mention allow_root: $err"
    [[ $err != *"listening on"* ]] || fail "it listened before refusing: $err"
}

run_cases
