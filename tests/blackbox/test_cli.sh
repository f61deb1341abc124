#!/usr/bin/env bash
# The command line: --version, --help, bad flags and --check-config. No
# daemon is kept running here; every command must exit on its own (a bound
# of 10 s turns "it started serving instead" into a failure, not a hang).

. "$(dirname "$0")/lib.sh"

# awaitd ARGS...: runs the binary; sets RC, OUT (stdout) and ERR (stderr).
awaitd() {
    timeout 10 "$AWAITD" "$@" >"$CASE_TMP/out.txt" 2>"$CASE_TMP/err.txt" </dev/null
    RC=$?
    OUT=$(cat "$CASE_TMP/out.txt")
    ERR=$(cat "$CASE_TMP/err.txt")
    [ "$RC" != 124 ] || fail "awaitd $* did not exit within 10 s"
}

# conf NAME TEXT: writes a config file into the case's folder, sets CONF.
conf() {
    CONF=$CASE_TMP/$1
    printf '%s\n' "$2" >"$CONF"
}

# assert_config_error LINE KEY: RC is 2 and stderr is one line that names the
# file, the line number and the key.
assert_config_error() {
    assert_eq "$RC" 2 "exit status of awaitd --check-config on a bad file"
    assert_eq "$(printf '%s\n' "$ERR" | grep -c .)" 1 "number of lines on stderr ($ERR)"
    [[ $ERR == *"$(basename "$CONF"):$1:"* ]] ||
        fail "stderr does not name $(basename "$CONF"):$1: — got: $ERR"
    [[ $ERR == *"$2"* ]] || fail "stderr does not name the key '$2' — got: $ERR"
}

case_version_prints_name_and_version() {
    awaitd --version
    assert_eq "$RC" 0 "exit status of awaitd --version"
    [[ $OUT =~ ^awaitd\ [0-9]+\.[0-9]+\.[0-9]+[^[:space:]]*$ ]] ||
        fail "awaitd --version printed '$OUT', expected 'awaitd X.Y.Z'"
}

case_help_exits_0_and_lists_options() {
    awaitd --help
    assert_eq "$RC" 0 "exit status of awaitd --help"
    [[ "$OUT$ERR" == *--config* ]] || fail "awaitd --help does not mention --config: $OUT$ERR"
    [[ "$OUT$ERR" == *--check-config* ]] || fail "awaitd --help does not mention --check-config"
}

case_unknown_flag_exits_2() {
    conf ok.conf '[server]'
    awaitd --config "$CONF" --frobnicate
    assert_eq "$RC" 2 "exit status of awaitd --frobnicate"
    [ -n "$ERR" ] || fail "nothing on stderr for an unknown flag"
}

case_bogus_listen_address_exits_2() {
    conf ok.conf '[server]'
    awaitd --config "$CONF" --listen bogus
    assert_eq "$RC" 2 "exit status of awaitd --listen bogus"
    [ -n "$ERR" ] || fail "nothing on stderr for --listen bogus"
    awaitd --config "$CONF" --listen 127.0.0.1:99999
    assert_eq "$RC" 2 "exit status of awaitd --listen 127.0.0.1:99999"
}

case_check_config_accepts_a_full_file() {
    conf full.conf '[server]
listen = 127.0.0.1:8080
auth_token =
max_body_bytes = 1048576
max_connections = 12000
log_level = info
[tasks]
max_tasks = 1000000
retention_seconds = 3600
max_wait_seconds = 300
max_wait_ids = 1000
[kinds]
sleep = true
exec = false
http = false
[queue:default]
concurrency = 0
[queue:jobs]
concurrency = 2'
    awaitd --check-config --config "$CONF"
    assert_eq "$RC" 0 "exit status of --check-config on a valid file (stderr: $ERR)"
}

case_check_config_accepts_an_almost_empty_file() {
    conf small.conf '[tasks]
max_tasks = 3'
    awaitd --check-config --config "$CONF"
    assert_eq "$RC" 0 "exit status of --check-config on a valid file (stderr: $ERR)"
}

case_check_config_accepts_the_shipped_config() {
    local shipped
    shipped=$(dirname "$0")/../../config/awaitd.conf
    [ -f "$shipped" ] || fail "config/awaitd.conf is missing"
    awaitd --check-config --config "$shipped"
    assert_eq "$RC" 0 "exit status of --check-config config/awaitd.conf (stderr: $ERR)"
}

case_check_config_rejects_a_non_integer() {
    conf bad.conf '[server]
log_level = info

[tasks]
retention_seconds = 60
# a comment
max_tasks = abc'
    awaitd --check-config --config "$CONF"
    assert_config_error 7 max_tasks
    [[ $ERR == *abc* ]] || fail "stderr does not quote the bad value 'abc': $ERR"
}

case_check_config_rejects_max_tasks_0() {
    conf zero.conf '[tasks]
max_tasks = 0'
    awaitd --check-config --config "$CONF"
    assert_config_error 2 max_tasks
}

case_check_config_rejects_an_unknown_key() {
    conf unknown.conf '[server]
log_level = info
foo = 1'
    awaitd --check-config --config "$CONF"
    assert_config_error 3 foo
}

case_check_config_rejects_a_negative_concurrency() {
    conf neg.conf '[queue:jobs]
concurrency = -1'
    awaitd --check-config --config "$CONF"
    assert_config_error 2 concurrency
}

case_check_config_of_a_missing_file_fails() {
    awaitd --check-config --config "$CASE_TMP/no-such.conf"
    [ "$RC" != 0 ] || fail "--check-config of a missing file exited 0"
    [[ $ERR == *no-such.conf* ]] || fail "stderr does not name the missing file: $ERR"
}

case_daemon_refuses_to_start_with_a_bad_config() {
    conf bad.conf '[tasks]
max_tasks = abc'
    awaitd --config "$CONF" --listen 127.0.0.1:0
    assert_eq "$RC" 2 "exit status of awaitd started with a bad config"
    [[ $ERR != *"listening on"* ]] || fail "it listened before rejecting the config: $ERR"
}

run_cases
