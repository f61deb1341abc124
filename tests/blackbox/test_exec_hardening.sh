#!/usr/bin/env bash
# exec's allow-list against a hostile client or a changed configuration:
# env variables that make the dynamic loader load the client's code
# (LD_PRELOAD), a symlink inside an allowed directory that points at a
# program that is not allowed, and a SIGHUP that disables exec or narrows
# the allow-list while tasks wait in a queue (they end failed, error type
# forbidden, when their turn comes; the running job goes on).

. "$(dirname "$0")/lib.sh"

# One directory per run that the allow-list names with a glob; the cases
# put links and programs into it. /usr/bin/env is allowed by its resolved
# path (on Debian /bin is a link to usr/bin).
JOBS=$AW_TMP/jobs
mkdir -p "$JOBS"
EXEC_CONF="[kinds]
exec = true
[exec]
allow = $JOBS/* /usr/bin/env /usr/bin/true /usr/bin/sleep
allow_root = true"

start_main_daemon "$EXEC_CONF"

argv_json() {
    jq -nc '$ARGS.positional' --args -- "$@"
}

# exec_body [JSON_FIELDS] -- ARG...: a create body for argv ARG....
exec_body() {
    local extra=""
    if [ "$1" != -- ]; then
        extra=",$1"
        shift
    fi
    shift
    printf '{"kind":"exec","args":{"argv":%s%s}}' "$(argv_json "$@")" "$extra"
}

# A shared object whose constructor writes a marker file: if it is loaded
# into the job, the file exists. Built with cc at test time.
build_preload() {
    command -v cc >/dev/null || return 1
    cat >"$AW_TMP/preload.c" <<EOF
#include <fcntl.h>
#include <unistd.h>
__attribute__((constructor)) static void mark(void)
{
    int fd = open("$AW_TMP/preloaded", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0)
        close(fd);
}
EOF
    cc -shared -fPIC -o "$AW_TMP/preload.so" "$AW_TMP/preload.c" 2>"$AW_TMP/cc.err"
}

case_ld_preload_in_env_is_403_and_loads_nothing() {
    if ! build_preload; then
        note "skipped: no working cc to build the LD_PRELOAD object ($(cat "$AW_TMP/cc.err" 2>/dev/null))"
        return 0
    fi
    local before
    count_tasks; before=$COUNT
    rm -f "$AW_TMP/preloaded"
    req POST /v1/tasks "$(exec_body "\"env\":{\"LD_PRELOAD\":\"$AW_TMP/preload.so\"}" -- /usr/bin/true)"
    if [ "$STATUS" = 201 ]; then
        ID=$(jqb .id)
        await_state "$ID" succeeded failed
    fi
    [ ! -e "$AW_TMP/preloaded" ] || fail "the LD_PRELOAD object ran inside the job"
    assert_error 403 forbidden
    assert_jq '.error.message | test("LD_PRELOAD")' true
    count_tasks
    assert_eq "$COUNT" "$before" "tasks after the refused create"
}

case_other_loader_variables_are_403_but_ordinary_ones_pass() {
    local v
    for v in LD_LIBRARY_PATH LD_AUDIT GCONV_PATH GLIBC_TUNABLES; do
        req POST /v1/tasks "$(exec_body "\"env\":{\"$v\":\"/tmp\"}" -- /usr/bin/true)"
        assert_error 403 forbidden
    done
    # Not the loader's: TMPDIR and names that merely contain LD_.
    create "$(exec_body '"env":{"TMPDIR":"/tmp","OLD_PRELOAD":"x","BUILD_DIR":"y"}' -- /usr/bin/env)"
    await_state "$ID" succeeded
    assert_jq '.result.stdout | test("OLD_PRELOAD=x")' true
}

case_allow_loader_env_true_passes_ld_preload_on() {
    build_preload || { note "skipped: no cc"; return 0; }
    start_daemon "$EXEC_CONF
allow_loader_env = true"
    rm -f "$AW_TMP/preloaded"
    create "$(exec_body "\"env\":{\"LD_PRELOAD\":\"$AW_TMP/preload.so\"}" -- /usr/bin/true)"
    await_state "$ID" succeeded
    [ -e "$AW_TMP/preloaded" ] || fail "with allow_loader_env = true the object was not loaded"
    stop_daemon
}

case_a_symlink_in_an_allowed_directory_to_bash_is_403() {
    ln -sf /bin/bash "$JOBS/innocent"
    req POST /v1/tasks "$(exec_body -- "$JOBS/innocent" -c 'echo pwned')"
    if [ "$STATUS" = 201 ]; then
        ID=$(jqb .id)
        await_state "$ID" succeeded failed
        fail "the link to bash was run: $(jqb .result.stdout)"
    fi
    assert_error 403 forbidden
    assert_jq '.error.message | test("bash")' true
    # A bare name found through PATH is resolved the same way.
    req POST /v1/tasks "$(exec_body "\"env\":{\"PATH\":\"$JOBS\"}" -- innocent -c 'echo pwned')"
    assert_error 403 forbidden
}

case_a_link_to_an_allowed_program_runs_it() {
    ln -sf /usr/bin/env "$JOBS/myenv"
    create "$(exec_body '"env":{"A":"1"}' -- "$JOBS/myenv")"
    await_state "$ID" succeeded
    assert_jq '.result.stdout | test("A=1")' true
    # An entry written through a link (/bin is one on Debian) still allows.
    if [ -L /bin ]; then
        create "$(exec_body -- /bin/true)"
        await_state "$ID" succeeded
    fi
}

case_a_link_retargeted_after_create_is_refused_at_start() {
    # A queue with one slot held by a sleep: the linked job waits pending
    # while its link is pointed at bash, and must not run bash.
    start_daemon "$EXEC_CONF
[queue:one]
concurrency = 1"
    ln -sfn /usr/bin/true "$JOBS/swap"
    create '{"kind":"exec","queue":"one","args":{"argv":["/usr/bin/sleep","30"]}}'
    local blocker=$ID
    await_state "$blocker" running
    create "{\"kind\":\"exec\",\"queue\":\"one\",\"args\":{\"argv\":$(argv_json "$JOBS/swap" -c 'echo pwned')}}"
    local job=$ID
    assert_jq .state pending
    ln -sfn /bin/bash "$JOBS/swap"
    req POST "/v1/tasks/$blocker/cancel"
    await_state "$job" failed succeeded
    assert_jq .state failed
    assert_jq .error.type forbidden
    assert_jq '.result.stdout // "" | test("pwned") | not' true
    stop_daemon
}

# reload_to CONF: rewrites the daemon's config, sends SIGHUP and waits for
# the log line that says it applied (5 s).
reload_to() {
    local n i
    n=$(grep -c 'configuration reloaded' "$DLOG")
    printf '%s\n[storage]\nstate_dir = %s/state\n' "$1" "$DDIR" >"$DDIR/awaitd.conf"
    kill -HUP "$DPID"
    for ((i = 0; i < 100; i++)); do
        [ "$(grep -c 'configuration reloaded' "$DLOG")" -gt "$n" ] && return 0
        grep -q 'keeping the running configuration' "$DLOG" &&
            fail "reload refused: $(grep 'keeping the running' "$DLOG" | tail -n1)"
        sleep 0.05
    done
    fail "no 'configuration reloaded' within 5 s; log: $(tail -n 3 "$DLOG" | tr '\n' ' ')"
}

# queued_then_reload CONF: a running sleep job in a one-slot queue and a
# pending job behind it; reloads to CONF; cancels nothing. Sets RUN, PEND.
queued_then_reload() {
    start_daemon "$EXEC_CONF
[queue:one]
concurrency = 1"
    create '{"kind":"exec","queue":"one","args":{"argv":["/usr/bin/sleep","1"]}}'
    RUN=$ID
    await_state "$RUN" running
    create "{\"kind\":\"exec\",\"queue\":\"one\",\"args\":{\"argv\":$(argv_json /usr/bin/env)}}"
    PEND=$ID
    assert_jq .state pending
    reload_to "$1
[queue:one]
concurrency = 1"
}

case_sighup_disabling_exec_stops_queued_jobs_running_ones_go_on() {
    queued_then_reload "[kinds]
exec = false
[exec]
allow = $JOBS/* /usr/bin/env /usr/bin/true /usr/bin/sleep
allow_root = true"
    # The running job goes on and ends as it would have.
    await_state "$RUN" succeeded failed
    assert_jq .state succeeded
    await_state "$PEND" failed succeeded
    assert_jq .state failed
    assert_jq .error.type forbidden
    assert_jq '.error.message | test("disabled")' true
    assert_jq .result null
    stop_daemon
}

case_sighup_narrowing_the_allow_list_stops_queued_jobs_that_no_longer_pass() {
    queued_then_reload "[kinds]
exec = true
[exec]
allow = /usr/bin/sleep
allow_root = true"
    await_state "$RUN" succeeded failed
    assert_jq .state succeeded
    await_state "$PEND" failed succeeded
    assert_jq .state failed
    assert_jq .error.type forbidden
    assert_jq '.error.message | test("allow-list")' true
    # What is still allowed still runs.
    create '{"kind":"exec","queue":"one","args":{"argv":["/usr/bin/sleep","0"]}}'
    await_state "$ID" succeeded
    stop_daemon
}

run_cases
