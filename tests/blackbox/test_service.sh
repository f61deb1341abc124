#!/usr/bin/env bash
# Running as a service: a graceful SIGTERM with many open waits and with a
# job that will not stop, SIGHUP reloads (a new token, a bad file, what
# needs a restart), socket activation and sd_notify the way systemd does
# them (LISTEN_FDS/LISTEN_PID, NOTIFY_SOCKET, WATCHDOG_USEC; no systemd
# needed), and journald-style log lines. Each case starts and stops its own
# daemon. Two small C helpers (helpers/sockact.c, helpers/notify_recv.c)
# are built here with cc.

. "$(dirname "$0")/lib.sh"

build_helpers sockact notify_recv


# await_waiters N: bounded poll of /metrics until awaitd_waiters is N (10 s).
await_waiters() {
    local i n=""
    for ((i = 0; i < 200; i++)); do
        req GET /metrics
        n=$(metric awaitd_waiters)
        [ "$n" = "$1" ] && return 0
        sleep 0.05
    done
    fail "awaitd_waiters did not reach $1 within 10 s (last: $n)"
}

# await_line FILE REGEX [WHAT]: bounded poll (5 s) until a line of FILE
# matches the extended REGEX.
await_line() {
    local i
    for ((i = 0; i < 100; i++)); do
        grep -Eq -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    fail "${3:-$1} has no line matching /$2/ within 5 s; last lines: $(tail -n 5 "$1" | tr '\n' '|')"
}

# reload CONF_TEXT: writes the daemon's config file anew, sends SIGHUP, and
# waits for the log line that says how the reload went (applied or kept).
reload() {
    local pat='SIGHUP: (configuration reloaded|.*keeping the running configuration)' before i
    before=$(grep -Ec "$pat" "$DLOG")
    printf '%s\n' "$1" >"$DDIR/awaitd.conf"
    kill -HUP "$DPID"
    for ((i = 0; i < 100; i++)); do
        [ "$(grep -Ec "$pat" "$DLOG")" -gt "$before" ] && return 0
        sleep 0.05
    done
    fail "no reload outcome in the log within 5 s of SIGHUP; last lines: $(tail -n 3 "$DLOG" | tr '\n' '|')"
}

# await_exit: like stop_daemon, without sending a signal: the daemon exits
# with status 0 within 10 s and its stderr holds no sanitizer report.
await_exit() {
    local i rc report
    for ((i = 0; i < 200; i++)); do
        [ -s "$DDIR/exit" ] && break
        sleep 0.05
    done
    [ -s "$DDIR/exit" ] || fail "daemon did not exit within 10 s; stderr: $(tail -n 5 "$DLOG" | tr '\n' ' ')"
    rc=$(cat "$DDIR/exit")
    report=$(grep -E -m 3 -A 3 'ERROR: [A-Za-z]*Sanitizer|runtime error:' "$DLOG")
    [ -z "$report" ] || fail "sanitizer report in the daemon's stderr: $report"
    [ "$rc" = 0 ] || fail "daemon exited with status $rc; stderr: $(tail -n 5 "$DLOG" | tr '\n' ' ')"
}

# EXEC_CONF GRACE: a daemon config with exec enabled for /bin/sh (tests run
# as root on CI, hence allow_root), the given shutdown grace, and a kill
# grace longer than any case.
exec_conf() {
    printf '[server]\nshutdown_grace_seconds = %s\n[kinds]\nexec = true\n[exec]\nallow = /bin/* /usr/bin/*\nallow_root = true\nkill_grace_seconds = 30\n' "$1"
}

# start_stubborn_job PIDFILE: creates an exec task whose shell ignores
# SIGTERM, waits until it runs, sets ID and JOBPID.
start_stubborn_job() {
    create "{\"kind\":\"exec\",\"args\":{\"argv\":[\"/bin/sh\",\"-c\",\"echo \$\$ > $1; trap '' TERM; sleep 30\"]}}"
    await_state "$ID" running
    await_line "$1" '^[0-9]+$' "the job's pid file"
    JOBPID=$(cat "$1")
}

# ---------------------------------------------------------------------------
# SIGTERM

case_sigterm_with_500_open_waits_answers_all_and_exits_0() {
    start_daemon ''
    local ids=() i t0 codes
    for i in 1 2 3 4 5; do
        create '{"kind":"sleep","args":{"seconds":60}}'
        ids+=("$ID")
    done
    # Two curl processes (curl runs at most 300 transfers in parallel),
    # 250 waits each, 100 per task.
    mkdir -p "$CASE_TMP/w"
    for part in a b; do
        for ((i = 0; i < 250; i++)); do
            printf 'url = "%s/v1/tasks/%s/wait?timeout=60"\noutput = "%s/w/%s%03d.json"\n' \
                "$BASE" "${ids[i % 5]}" "$CASE_TMP" "$part" "$i"
        done >"$CASE_TMP/$part.curlrc"
        curl -s --parallel --parallel-immediate --parallel-max 250 --max-time 30 \
            -w '%{http_code}\n' -K "$CASE_TMP/$part.curlrc" >"$CASE_TMP/$part.codes" &
    done
    await_waiters 500
    t0=$(now)
    stop_daemon
    assert_less "$(elapsed "$t0")" 5 "seconds from SIGTERM to exit with 500 open waits"
    wait
    codes=$(cat "$CASE_TMP/a.codes" "$CASE_TMP/b.codes" | sort | uniq -c | tr -s ' ' | sed 's/^ //')
    assert_eq "$codes" "500 200" "HTTP statuses of the 500 waits open at SIGTERM (count status)"
    # The running tasks were interrupted before the waits were answered, so
    # every answer shows the final state.
    BODY=$(cat "$CASE_TMP"/w/*.json | jq -sc \
        '[length, (map(select(.done and .state == "failed" and .error.type == "interrupted")) | length)]')
    assert_eq "$BODY" "[500,500]" "[answers, answers showing failed/interrupted]"
    grep -q 'stopped accepting connections' "$DLOG" ||
        fail "no 'stopped accepting connections' in the log: $(tail -n 5 "$DLOG" | tr '\n' '|')"
}

case_sigterm_stops_accepting_then_waits_shutdown_grace_for_a_stubborn_job() {
    start_daemon "$(exec_conf 1.5)"
    local t0 wpid code
    start_stubborn_job "$CASE_TMP/job.pid"
    curl -s --max-time 20 -o "$CASE_TMP/wait.json" -w '%{http_code}' \
        "$BASE/v1/tasks/$ID/wait?timeout=60" >"$CASE_TMP/wait.code" &
    wpid=$!
    await_waiters 1
    t0=$(now)
    kill -TERM "$DPID"
    await_line "$DLOG" 'waiting up to 1.5 s for 1 task' "the daemon's log"
    # In its grace the daemon runs but accepts no new connection.
    kill -0 "$DPID" 2>/dev/null || fail "the daemon exited before its grace was over"
    curl -s --max-time 2 -o /dev/null "$BASE/healthz"
    assert_eq "$?" 7 "curl exit status of a connect during the shutdown grace (7: refused)"
    await_exit
    # The job ignores SIGTERM and SIGKILL would come only after 30 s: the
    # daemon waits its own 1.5 s, answers the wait, and kills the job.
    assert_between "$(elapsed "$t0")" 1.4 5 "seconds from SIGTERM to exit"
    wait "$wpid"
    code=$(cat "$CASE_TMP/wait.code")
    assert_eq "$code" 200 "HTTP status of the wait open at SIGTERM"
    BODY=$(cat "$CASE_TMP/wait.json")
    assert_jq .id "$ID"
    grep -q 'still stopping after shutdown_grace_seconds' "$DLOG" ||
        fail "no warning about the task still stopping: $(tail -n 5 "$DLOG" | tr '\n' '|')"
    ! kill -0 "$JOBPID" 2>/dev/null || fail "job process $JOBPID still exists after the daemon exited"
}

case_a_second_sigterm_ends_the_grace() {
    start_daemon "$(exec_conf 20)"
    local t0
    start_stubborn_job "$CASE_TMP/job.pid"
    kill -TERM "$DPID"
    await_line "$DLOG" 'waiting up to 20 s for 1 task' "the daemon's log"
    t0=$(now)
    kill -TERM "$DPID"
    await_exit
    assert_less "$(elapsed "$t0")" 4 "seconds from the second SIGTERM to exit"
    grep -q 'again: not waiting for running tasks' "$DLOG" ||
        fail "no log line for the second signal: $(tail -n 5 "$DLOG" | tr '\n' '|')"
}

# ---------------------------------------------------------------------------
# SIGHUP

case_sighup_new_token_refuses_the_old_one_and_keeps_connections() {
    start_daemon '[server]
auth_token = old-token-1'
    TOKEN=old-token-1
    create '{"kind":"sleep","args":{"seconds":60}}'
    local id=$ID
    # One curl, two requests on one keep-alive connection: a wait sent with
    # the old token, answered after the reload; then a request with the new
    # token. num_connects 0 on the second means the connection was reused.
    curl -s --max-time 20 -H 'Authorization: Bearer old-token-1' -o "$CASE_TMP/wait.json" \
        -w '%{http_code} %{num_connects}\n' "$BASE/v1/tasks/$id/wait?timeout=60" \
        --next -s --max-time 20 -H 'Authorization: Bearer new-token-2' -o "$CASE_TMP/info.json" \
        -w '%{http_code} %{num_connects}\n' "$BASE/v1/info" >"$CASE_TMP/codes" &
    local cpid=$!
    await_waiters 1
    reload '[server]
auth_token = new-token-2'
    grep -q 'SIGHUP: configuration reloaded' "$DLOG" ||
        fail "reload not applied: $(tail -n 3 "$DLOG" | tr '\n' '|')"
    req GET /v1/info
    assert_error 401 unauthorized
    TOKEN=new-token-2
    req GET /v1/info
    assert_status 200
    req POST "/v1/tasks/$id/cancel"
    assert_status 200
    wait "$cpid"
    assert_eq "$(tr '\n' ',' <"$CASE_TMP/codes")" "200 1,200 0," \
        "curl '<status> <new connections>' of the wait (old token) and the request after it (new token)"
    BODY=$(cat "$CASE_TMP/wait.json")
    assert_jq '[.id, .state]' "[\"$id\",\"cancelled\"]"
    TOKEN=new-token-2
    stop_daemon
}

case_sighup_with_a_bad_file_keeps_the_running_configuration() {
    start_daemon '[server]
auth_token = tok-1'
    TOKEN=tok-1
    reload '[server]
auth_token = tok-2
[tasks]
max_tasks = abc'
    grep -q "awaitd.conf:4: key 'max_tasks'.*keeping the running configuration" "$DLOG" ||
        fail "no warning naming the file, line and key: $(tail -n 3 "$DLOG" | tr '\n' '|')"
    req GET /v1/info
    assert_status 200
    TOKEN=tok-2
    req GET /v1/info
    assert_error 401 unauthorized
    TOKEN=tok-1
    # A file that parses but asks for what this build refuses is kept out
    # the same way, and nothing of it applies.
    # (An [http] allow entry that the kind cannot read.)
    reload '[server]
auth_token = tok-3
[kinds]
http = true
[http]
allow = a:b:c'
    grep -qF "[http] allow entry 'a:b:c'" "$DLOG" && grep -q "allow entry 'a:b:c'.*keeping the running configuration" "$DLOG" ||
        fail "no warning for the [http] allow entry: $(tail -n 3 "$DLOG" | tr '\n' '|')"
    req GET /v1/info
    assert_status 200
    stop_daemon
}

case_sighup_applies_kinds_limits_and_queues_but_not_listen() {
    # --listen on the command line would win over the file on every reload:
    # start this daemon from its file's address alone ("--config F" only).
    local w=$CASE_TMP/awaitd-file-listen
    printf '#!/bin/sh\nexec "%s" "$1" "$2"\n' "$AWAITD" >"$w"
    chmod +x "$w"
    AWAITD=$w
    start_daemon '[server]
listen = 127.0.0.1:0'
    req POST /v1/tasks '{"kind":"sleep","args":{"seconds":0},"queue":"extra"}'
    assert_error 400 unknown_queue
    reload '[server]
listen = 127.0.0.1:1
max_connections = 77
log_level = debug
[tasks]
max_wait_ids = 7
[kinds]
sleep = false
[queue:extra]
concurrency = 1'
    grep -q 'listen changed .* needs a restart' "$DLOG" ||
        fail "no warning about listen: $(tail -n 5 "$DLOG" | tr '\n' '|')"
    grep -q 'max_connections changed to 77; that needs a restart' "$DLOG" ||
        fail "no warning about max_connections: $(tail -n 5 "$DLOG" | tr '\n' '|')"
    grep -q 'SIGHUP: configuration reloaded' "$DLOG" ||
        fail "the rest was not applied: $(tail -n 5 "$DLOG" | tr '\n' '|')"
    # Still on the old port (req uses $BASE), with the new values.
    req GET /v1/info
    assert_status 200
    assert_jq '[.kinds.sleep, .limits.max_wait_ids]' '[false,7]'
    req POST /v1/tasks '{"kind":"sleep","args":{"seconds":0},"queue":"extra"}'
    assert_error 403 kind_disabled
    reload '[server]
listen = 127.0.0.1:0
[kinds]
sleep = true
[queue:extra]
concurrency = 1'
    create '{"kind":"sleep","args":{"seconds":0},"queue":"extra"}'
    assert_jq .queue extra
    stop_daemon
}

# ---------------------------------------------------------------------------
# systemd's protocols, without systemd

# sockact_awaitd [--wrong-pid]: a wrapper to use as $AWAITD that starts the
# real daemon through the sockact helper (exec all the way, so $DPID is the
# daemon's pid).
sockact_awaitd() {
    local w=$CASE_TMP/awaitd-sockact
    printf '#!/bin/sh\nexec "%s" %s "%s" "$@"\n' "$HELPERS/sockact" "$*" "$AWAITD" >"$w"
    chmod +x "$w"
    printf '%s\n' "$w"
}

case_socket_activation_serves_on_the_passed_socket() {
    need_helpers
    AWAITD=$(sockact_awaitd)
    start_daemon ''
    local passed
    passed=$(sed -n 's/^sockact: passing 127\.0\.0\.1:\([0-9]*\) as fd 3$/\1/p' "$DLOG")
    [ -n "$passed" ] || fail "sockact did not report its port: $(head -n 3 "$DLOG" | tr '\n' '|')"
    assert_eq "$PORT" "$passed" "port the daemon logged vs. port of the socket passed as fd 3"
    grep -q "listening on 127.0.0.1:$PORT (socket activation)" "$DLOG" ||
        fail "no 'listening on ... (socket activation)' line: $(head -n 3 "$DLOG" | tr '\n' '|')"
    req GET /healthz
    assert_status 200
    create '{"kind":"sleep","args":{"seconds":0,"result":"via fd 3"}}'
    assert_jq .result 'via fd 3'
    stop_daemon
}

case_socket_activation_for_another_pid_is_ignored() {
    need_helpers
    AWAITD=$(sockact_awaitd --wrong-pid)
    start_daemon ''
    local passed
    passed=$(sed -n 's/^sockact: passing 127\.0\.0\.1:\([0-9]*\) as fd 3$/\1/p' "$DLOG")
    [ -n "$passed" ] || fail "sockact did not report its port"
    [ "$PORT" != "$passed" ] || fail "the daemon used fd 3 although LISTEN_PID named another process"
    ! grep -q 'socket activation' "$DLOG" || fail "socket activation claimed: $(head -n 3 "$DLOG" | tr '\n' '|')"
    req GET /healthz
    assert_status 200
    stop_daemon
}

case_sd_notify_ready_status_watchdog_reloading_stopping() {
    need_helpers
    local sock=$CASE_TMP/notify.sock out=$CASE_TMP/notify.out rpid
    "$HELPERS/notify_recv" "$sock" >"$out" 2>&1 &
    rpid=$!
    track_pid "$rpid"
    await_line "$out" '^bound$' "notify_recv's output"
    NOTIFY_SOCKET=$sock WATCHDOG_USEC=200000 start_daemon ''
    await_line "$out" '^READY=1 STATUS=0 running, 0 pending, 0 waiting requests, [0-9]+ connections$' \
        "the notify socket"
    await_line "$out" '^WATCHDOG=1$' "the notify socket (WatchdogSec=0.2)"
    # Live counts: the status sent with READY=1 after a reload.
    create '{"kind":"sleep","args":{"seconds":60}}'
    reload ''
    await_line "$out" '^RELOADING=1' "the notify socket"
    await_line "$out" '^READY=1 STATUS=1 running, 0 pending' "the notify socket"
    stop_daemon
    await_line "$out" '^STOPPING=1 STATUS=stopping' "the notify socket"
    kill "$rpid"
}

case_journal_stream_gives_priority_prefixed_lines() {
    local d=$CASE_TMP/j log pid i port=""
    mkdir -p "$d"
    log=$d/log
    : >"$log"
    printf '[server]\nlog_level = info\n' >"$d/awaitd.conf"
    JOURNAL_STREAM=$(stat -c '%d:%i' "$log") \
        "$AWAITD" --config "$d/awaitd.conf" --listen 127.0.0.1:0 2>>"$log" </dev/null &
    pid=$!
    track_pid "$pid"
    await_line "$log" '^<6>listening on 127\.0\.0\.1:[0-9]+$' "the daemon's stderr"
    port=$(sed -n 's/^<6>listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$log")
    # A warning gets priority 4: a reload of a file with a mistake.
    printf '[server]\nlog_level = loud\n' >"$d/awaitd.conf"
    kill -HUP "$pid"
    await_line "$log" "^<4>SIGHUP: .*key 'log_level'.*keeping the running configuration$" \
        "the daemon's stderr"
    curl -s -o /dev/null --max-time 5 "http://127.0.0.1:$port/healthz" ||
        fail "no answer on port $port after the reload"
    kill -TERM "$pid"
    wait "$pid"
    assert_eq "$?" 0 "exit status after SIGTERM"
    grep -q '^<6>stopped$' "$log" || fail "no '<6>stopped' line: $(tail -n 3 "$log" | tr '\n' '|')"
    ! grep -q 'level=' "$log" || fail "logfmt lines on a journal stream: $(grep 'level=' "$log" | head -n 2)"
    ! grep -Eq 'ERROR: [A-Za-z]*Sanitizer|runtime error:' "$log" || fail "sanitizer report: $(grep -m 3 ERROR "$log")"
}

case_journal_stream_of_another_file_keeps_logfmt() {
    # JOURNAL_STREAM inherited from a service whose stderr went elsewhere.
    JOURNAL_STREAM=1:1 start_daemon ''
    grep -q '^level=info msg="listening on 127.0.0.1:' "$DLOG" ||
        fail "expected logfmt: $(head -n 2 "$DLOG" | tr '\n' '|')"
    stop_daemon
}

run_cases
