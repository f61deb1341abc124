# lib.sh — helpers shared by the black-box cases; every test_*.sh sources it.
#
# A test file starts its daemon with start_main_daemon CONF_TEXT, defines its
# cases as functions named case_*, and ends with run_cases. Each case runs in a
# subshell of its own, in the order the functions appear in the file, so a
# failed assertion (fail exits the subshell) ends that case only. run_cases adds
# a last case, clean_shutdown, that sends the file's daemon SIGTERM and checks it
# exits 0 with no sanitizer report: that is where the sanitized build shows
# leaks. This file is not a test framework to grow; it is the few words the
# cases need to read like the curl session a user would type.

set -u
export LC_ALL=C
: "${AWAITD:?AWAITD must name the awaitd binary}"

AW_FILE=$(basename "$0" .sh)
AW_FILE=${AW_FILE#test_}
AW_TMP=$(mktemp -d "${TMPDIR:-/tmp}/awaitd-bb.XXXXXX")
: >"$AW_TMP/daemons"
MAIN_ERR=""
MAIN_STARTED=""
CASE_TMP=$AW_TMP
TOKEN=""

# pid_start PID: the process's start time (field 22 of /proc/PID/stat,
# read after the command name, which may hold spaces); empty when gone.
pid_start() {
    sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'
}

# track_pid PID: the cleanup kills PID if it still runs. Its start time
# is kept with it: pids wrap within minutes on a busy machine, and a
# number alone could name another suite's process by then.
track_pid() {
    local start
    start=$(pid_start "$1")
    [ -n "$start" ] && echo "$1 $start" >>"$AW_TMP/daemons"
    return 0
}

# Kills with SIGKILL every process a case left running (only the ones
# track_pid recorded, and only while they are still those), then removes
# the files.
aw_cleanup() {
    local pid start now
    while read -r pid start; do
        now=$(pid_start "$pid")
        [ -n "$now" ] && [ "$now" = "$start" ] && kill -KILL "$pid" 2>/dev/null
    done <"$AW_TMP/daemons"
    rm -rf "$AW_TMP"
}
trap aw_cleanup EXIT

# ---------------------------------------------------------------------------
# C helpers

# build_helpers NAME...: compiles tests/blackbox/helpers/NAME.c into
# $HELPERS/NAME with cc. A failure does not stop the file: it is kept in
# HELPER_ERR, and need_helpers fails the cases that use them.
HELPERS=$AW_TMP/helpers
HELPER_ERR=""
build_helpers() {
    local h
    mkdir -p "$HELPERS"
    for h in "$@"; do
        if ! "${CC:-cc}" -std=c11 -D_GNU_SOURCE -O1 -pthread -o "$HELPERS/$h" \
            "$(dirname "$0")/helpers/$h.c" 2>"$AW_TMP/cc.err"; then
            HELPER_ERR="cannot build helpers/$h.c: $(head -c 300 "$AW_TMP/cc.err")"
        fi
    done
}

need_helpers() {
    [ -z "$HELPER_ERR" ] || fail "$HELPER_ERR"
}

# ---------------------------------------------------------------------------
# Reporting

# fail MESSAGE: ends the current case as failed with MESSAGE.
fail() {
    printf '%s\n' "$*" >"$AW_TMP/why"
    exit 1
}

report() {
    local verdict=$1 name=$2 why=${3:-}
    if [ "$verdict" = ok ]; then
        printf 'ok - %s\n' "$name"
    else
        why=$(printf '%s' "$why" | tr '\n\r\t' '   ' | cut -c1-600)
        printf 'not ok - %s: %s\n' "$name" "$why"
    fi
    if [ -n "${AW_TALLY:-}" ]; then
        printf '%s\n' "$verdict" >>"$AW_TALLY"
    fi
}

# The context a failure message carries: the last request and its answer.
ctx() {
    local b
    b=$(printf '%s' "${BODY:-}" | tr '\n' ' ' | cut -c1-300)
    printf ' [after: %s -> %s %s]' "${LAST_CMD:-none}" "${STATUS:-}" "$b"
}

# ---------------------------------------------------------------------------
# Daemons

# start_daemon_try CONF_TEXT [ARGS...]: writes CONF_TEXT to a config file and
# starts the daemon on 127.0.0.1:0. On success sets BASE, PORT, DPID, DDIR
# and DLOG and returns 0; on failure sets AW_ERR and returns 1. The daemon's
# exit status lands in $DDIR/exit, so any shell can see how it ended.
start_daemon_try() {
    local conf=$1
    shift
    local d i port=""
    d=$(mktemp -d "$AW_TMP/daemon.XXXXXX")
    printf '%s\n' "$conf" >"$d/awaitd.conf"
    # Durable by default, as the shipped configuration is: every case runs
    # against a store of its own unless its configuration has [storage]
    # or AW_MEMORY=1 asks for the memory-only daemon.
    if [ -z "${AW_MEMORY:-}" ] && ! grep -q '^\[storage\]' "$d/awaitd.conf"; then
        printf '\n[storage]\nstate_dir = %s/state\n' "$d" >>"$d/awaitd.conf"
    fi
    (
        "$AWAITD" --config "$d/awaitd.conf" --listen 127.0.0.1:0 "$@" \
            >"$d/stdout" 2>"$d/log" </dev/null &
        echo $! >"$d/pid"
        wait $!
        echo $? >"$d/exit"
    ) 2>/dev/null &
    # Bounded poll of the log for the line that names the port (10 s).
    for ((i = 0; i < 200; i++)); do
        if [ -s "$d/pid" ]; then
            port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' \
                "$d/log" | head -n1)
            [ -n "$port" ] && break
            [ -s "$d/exit" ] && break
        fi
        sleep 0.05
    done
    if [ -s "$d/pid" ]; then
        track_pid "$(cat "$d/pid")"
    fi
    if [ -z "$port" ]; then
        AW_ERR="daemon did not say 'listening on 127.0.0.1:PORT' within 10 s"
        [ -s "$d/exit" ] && AW_ERR+=" (it exited with status $(cat "$d/exit"))"
        AW_ERR+="; stderr: $(tail -n 5 "$d/log" 2>/dev/null | tr '\n' ' ')"
        [ -s "$d/pid" ] && kill -KILL "$(cat "$d/pid")" 2>/dev/null
        return 1
    fi
    DDIR=$d
    DPID=$(cat "$d/pid")
    DLOG=$d/log
    PORT=$port
    BASE=http://127.0.0.1:$port
    return 0
}

# start_daemon CONF_TEXT [ARGS...]: start_daemon_try that fails the case.
start_daemon() {
    start_daemon_try "$@" || fail "$AW_ERR"
}

# start_main_daemon CONF_TEXT: starts the daemon a test file's cases share.
# If it does not start, every case of the file fails with the reason.
start_main_daemon() {
    if start_daemon_try "$@"; then
        MAIN_STARTED=1
    else
        MAIN_ERR=$AW_ERR
    fi
}

# stop_daemon: sends SIGTERM to the current daemon and checks that it exits
# with status 0 within 5 s and that its stderr holds no sanitizer report.
stop_daemon() {
    local i rc report
    kill -TERM "$DPID" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
        [ -s "$DDIR/exit" ] && break
        sleep 0.05
    done
    if [ ! -s "$DDIR/exit" ]; then
        kill -KILL "$DPID" 2>/dev/null
        fail "daemon did not exit within 5 s of SIGTERM; stderr: $(tail -n 5 "$DLOG" | tr '\n' ' ')"
    fi
    rc=$(cat "$DDIR/exit")
    report=$(grep -E -m 3 -A 3 'ERROR: [A-Za-z]*Sanitizer|runtime error:' "$DLOG")
    [ -z "$report" ] || fail "sanitizer report in the daemon's stderr: $report"
    [ "$rc" = 0 ] || fail "daemon exited with status $rc after SIGTERM; stderr: $(tail -n 5 "$DLOG" | tr '\n' ' ')"
}

# ---------------------------------------------------------------------------
# Requests

# req [-H HEADER]... [--data-file FILE] [--no-ct] [--max-time S] METHOD PATH [BODY]
# Sends one request to the current daemon (with the bearer $TOKEN when set).
# Sets STATUS (000 when there was no HTTP answer), BODY, CURL_RC and LAST_CMD;
# the answer's headers are read with `header NAME`.
req() {
    local hdrs=() data=() ct=1 maxt=${REQ_MAX_TIME:-20} show=""
    while [ $# -gt 0 ]; do
        case $1 in
        -H) hdrs+=(-H "$2"); show+=" -H '$2'"; shift 2 ;;
        --data-file) data=(--data-binary "@$2"); show+=" --data-binary @$2"; shift 2 ;;
        --no-ct) ct=0; shift ;;
        --max-time) maxt=$2; shift 2 ;;
        *) break ;;
        esac
    done
    local method=$1 path=$2
    if [ $# -ge 3 ]; then
        data=(--data-binary "$3")
        show+=" -d '$(printf '%s' "$3" | cut -c1-200)'"
    fi
    if [ ${#data[@]} -gt 0 ] && [ $ct = 1 ]; then
        hdrs+=(-H 'Content-Type: application/json')
    fi
    if [ -n "$TOKEN" ]; then
        hdrs+=(-H "Authorization: Bearer $TOKEN")
    fi
    : >"$CASE_TMP/headers"
    : >"$CASE_TMP/body"
    STATUS=$(curl -sS -o "$CASE_TMP/body" -D "$CASE_TMP/headers" -w '%{http_code}' \
        --max-time "$maxt" -X "$method" "${hdrs[@]}" "${data[@]}" "$BASE$path" \
        2>"$CASE_TMP/curl.err")
    CURL_RC=$?
    BODY=$(cat "$CASE_TMP/body")
    LAST_CMD="curl -X $method$show $BASE$path"
    if [ "$CURL_RC" != 0 ]; then
        LAST_CMD+=" (curl: $(tr '\n' ' ' <"$CASE_TMP/curl.err"))"
    fi
}

# header NAME: the value of header NAME in the last answer (empty if absent).
header() {
    grep -i "^$1:" "$CASE_TMP/headers" | tail -n1 | cut -d: -f2- | tr -d '\r' |
        sed 's/^ *//; s/ *$//'
}

# jqb EXPR: EXPR applied to the last answer's body (raw strings, compact JSON).
jqb() {
    printf '%s' "$BODY" | jq -rc "$1" 2>&1
}

# create [-H HEADER]... BODY: POST /v1/tasks, expects 201, sets ID.
create() {
    local body=${*: -1}
    req "${@:1:$#-1}" POST /v1/tasks "$body"
    assert_status 201
    ID=$(jqb .id)
    [ -n "$ID" ] && [ "$ID" != null ] || fail "201 without an id$(ctx)"
}

# count_tasks: sets COUNT to the number of tasks GET /v1/tasks lists.
count_tasks() {
    req GET '/v1/tasks?limit=1000'
    assert_status 200
    COUNT=$(jqb '.tasks | length')
}

# await_state ID STATE...: polls GET /v1/tasks/ID every 50 ms (up to 5 s)
# until the task is in one of STATEs.
await_state() {
    local id=$1 i s st=""
    shift
    for ((i = 0; i < 100; i++)); do
        req GET "/v1/tasks/$id"
        st=$(jqb .state)
        for s in "$@"; do
            [ "$st" = "$s" ] && return 0
        done
        sleep 0.05
    done
    fail "task $id did not reach state $* within 5 s (last: $st)$(ctx)"
}

# ids_json ID...: the JSON array of the given ids.
ids_json() {
    jq -nc '$ARGS.positional' --args "$@"
}

# metric NAME [LABEL=VALUE]...: sum of the samples of NAME in $BODY (a /metrics
# answer) whose labels include every LABEL="VALUE"; 0 when there is none.
metric() {
    local name=$1
    shift
    printf '%s\n' "$BODY" | awk -v name="$name" -v want="$*" '
        /^#/ { next }
        {
            key = $1; n = index(key, "{")
            base = n ? substr(key, 1, n - 1) : key
            if (base != name) next
            labels = n ? substr(key, n) : ""
            ok = 1; m = split(want, w, " ")
            for (i = 1; i <= m; i++) {
                split(w[i], kv, "=")
                if (index(labels, kv[1] "=\"" kv[2] "\"") == 0) ok = 0
            }
            if (ok) sum += $2
        }
        END { printf "%.17g\n", sum }'
}

# ---------------------------------------------------------------------------
# Time

# now: microseconds since the epoch.
now() {
    local t=$EPOCHREALTIME
    printf '%s\n' "${t/./}"
}

# elapsed T0: seconds (3 decimals) since T0, a value of now.
elapsed() {
    awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f\n", (b - a) / 1e6 }'
}

# ---------------------------------------------------------------------------
# Assertions (each fails the case with what it saw)

assert_eq() {
    [ "$1" = "$2" ] || fail "${3:-value}: expected '$2', got '$1'"
}

assert_status() {
    [ "$STATUS" = "$1" ] || fail "expected HTTP $1, got $STATUS$(ctx)"
}

# assert_jq EXPR EXPECTED: jq -rc EXPR on the last body prints EXPECTED.
assert_jq() {
    local got
    got=$(jqb "$1")
    [ "$got" = "$2" ] || fail "$1: expected $2, got $got$(ctx)"
}

# assert_jq_true EXPR: EXPR is true of the last body.
assert_jq_true() {
    assert_jq "$1" true
}

# assert_error STATUS CODE: the answer is STATUS with the contract's error body
# {"error":{"code":CODE,"message":"non-empty"}}.
assert_error() {
    assert_status "$1"
    assert_jq '.error.code' "$2"
    assert_jq '.error.message | type == "string" and length > 0' true
}

# note TEXT: with AW_VERBOSE set, prints "# TEXT" among the case lines
# (measured times, to see how close a run came to a bound).
note() {
    if [ -n "${AW_VERBOSE:-}" ]; then
        printf '# %s\n' "$*" >&3
    fi
}

# assert_between VALUE LOW HIGH WHAT: LOW <= VALUE < HIGH (decimal numbers).
assert_between() {
    note "${4:-value}: $1 (bounds $2, $3)"
    awk -v v="$1" -v lo="$2" -v hi="$3" 'BEGIN { exit !(v >= lo && v < hi) }' ||
        fail "${4:-value} was $1, expected between $2 and $3$(ctx)"
}

# assert_less VALUE HIGH WHAT: VALUE < HIGH.
assert_less() {
    note "${3:-value}: $1 (bound $2)"
    awk -v v="$1" -v hi="$2" 'BEGIN { exit !(v < hi) }' ||
        fail "${3:-value} was $1, expected less than $2$(ctx)"
}

# ---------------------------------------------------------------------------
# Running cases

aw_case_cleanup() {
    # A case that fails half-way may leave a daemon of its own running.
    if [ -n "${DPID:-}" ] && [ "$DPID" != "${MAIN_DPID:-}" ] &&
        [ ! -s "$DDIR/exit" ]; then
        kill -KILL "$DPID" 2>/dev/null
    fi
}

run_one() {
    local name="$AW_FILE: $1" fn=$2 rc why
    if [ -n "$MAIN_ERR" ]; then
        report "not ok" "$name" "$MAIN_ERR"
        return
    fi
    CASE_TMP=$(mktemp -d "$AW_TMP/case.XXXXXX")
    rm -f "$AW_TMP/why"
    (
        trap aw_case_cleanup EXIT
        "$fn"
    ) >"$CASE_TMP/out" 2>&1
    rc=$?
    if [ $rc = 0 ]; then
        report ok "$name"
    else
        if [ -s "$AW_TMP/why" ]; then
            why=$(cat "$AW_TMP/why")
        else
            why="case exited with status $rc: $(tail -n 3 "$CASE_TMP/out")"
        fi
        report "not ok" "$name" "$why"
    fi
}

# run_cases: runs the file's case_* functions in the order they are defined,
# then the clean_shutdown case for the daemon started by start_main_daemon.
run_cases() {
    local fn fns
    MAIN_DPID=${DPID:-}
    exec 3>&1
    shopt -s extdebug
    fns=$(for fn in $(declare -F | awk '$3 ~ /^case_/ { print $3 }'); do
        declare -F "$fn"
    done | sort -k2,2n | awk '{ print $1 }')
    shopt -u extdebug
    for fn in $fns; do
        run_one "${fn#case_}" "$fn"
    done
    if [ -n "$MAIN_STARTED" ] || [ -n "$MAIN_ERR" ]; then
        run_one clean_shutdown stop_daemon
    fi
    exit 0
}
