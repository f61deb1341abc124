#!/usr/bin/env bash
# A Unix domain socket listener: listen = unix:PATH (or --listen unix:PATH)
# with [server] unix_mode and unix_group, driven with curl --unix-socket.
# Cases: create, read and wait through the socket; the file's mode and
# group; the access log with a client that has no IP address; a live
# socket refuses a second daemon (exit 2); a stale one is replaced; a file
# that is not a socket, or a symlink, is never removed; SIGTERM removes the
# file; bad paths and groups exit 2; socket activation with an AF_UNIX fd
# (plain, and HTTPS when tls_cert is set). helpers/sockact_unix.c and
# helpers/unix_client.c are built here with cc; the HTTPS case needs openssl.

. "$(dirname "$0")/lib.sh"

build_helpers sockact_unix unix_client

# Every curl of this file, the ones lib.sh's req makes included, goes
# through the socket in $SOCK; curl sends "Host: localhost" there.
SOCK=""
curl() {
    if [ -n "$SOCK" ]; then
        command curl --unix-socket "$SOCK" "$@"
    else
        command curl "$@"
    fi
}

GROUP=$(id -gn)

# start_unix_daemon CONF_TEXT SOCK [ARGS...]: starts the daemon with
# CONF_TEXT and ARGS and waits (10 s) until it says it listens on SOCK.
# Sets SOCK, BASE, DPID, DDIR and DLOG, as start_daemon does; on failure
# sets AW_ERR and returns 1.
start_unix_daemon_try() {
    local conf=$1 sock=$2 d i
    shift 2
    d=$(mktemp -d "$AW_TMP/daemon.XXXXXX")
    printf '%s\n' "$conf" >"$d/awaitd.conf"
    (
        "$AWAITD" --config "$d/awaitd.conf" "$@" >"$d/stdout" 2>"$d/log" </dev/null &
        echo $! >"$d/pid"
        wait $!
        echo $? >"$d/exit"
    ) 2>/dev/null &
    for ((i = 0; i < 200; i++)); do
        grep -q "listening on unix:$sock" "$d/log" 2>/dev/null && break
        [ -s "$d/exit" ] && break
        sleep 0.05
    done
    for ((i = 0; i < 20; i++)); do
        [ -s "$d/pid" ] && break
        sleep 0.05
    done
    [ -s "$d/pid" ] && track_pid "$(cat "$d/pid")"
    DDIR=$d
    DLOG=$d/log
    DPID=$(cat "$d/pid" 2>/dev/null)
    if ! grep -q "listening on unix:$sock" "$d/log" 2>/dev/null; then
        AW_ERR="daemon did not say 'listening on unix:$sock' within 10 s"
        [ -s "$d/exit" ] && AW_ERR+=" (it exited with status $(cat "$d/exit"))"
        AW_ERR+="; stderr: $(tail -n 5 "$d/log" 2>/dev/null | tr '\n' ' ')"
        [ -n "$DPID" ] && kill -KILL "$DPID" 2>/dev/null
        return 1
    fi
    SOCK=$sock
    BASE=http://localhost
    return 0
}

start_unix_daemon() {
    start_unix_daemon_try "$@" || fail "$AW_ERR"
}

# start_refused CONF_TEXT [ARGS...]: runs the daemon, which must exit within
# 10 s; sets RC and ERRTEXT (its stderr).
start_refused() {
    local conf=$CASE_TMP/refused.conf
    printf '%s\n' "$1" >"$conf"
    shift
    timeout 10 "$AWAITD" --config "$conf" "$@" >/dev/null 2>"$CASE_TMP/refused.err" </dev/null
    RC=$?
    ERRTEXT=$(cat "$CASE_TMP/refused.err")
}

MAIN_CONF="[server]
unix_mode = 0640
unix_group = $GROUP
access_log = true
log_level = debug"
if start_unix_daemon_try "$MAIN_CONF" "$AW_TMP/api.sock" --listen "unix:$AW_TMP/api.sock"; then
    MAIN_STARTED=1
else
    MAIN_ERR=$AW_ERR
fi

case_create_read_and_wait_through_the_socket() {
    req GET /healthz
    assert_status 200
    create '{"kind":"sleep","args":{"seconds":0.2}}'
    req GET "/v1/tasks/$ID"
    assert_status 200
    assert_jq .id "$ID"
    req GET "/v1/tasks/$ID/wait?timeout=10"
    assert_status 200
    assert_jq .state succeeded
    req POST /v1/wait "{\"ids\":[\"$ID\"],\"timeout\":5}"
    assert_status 200
}

case_the_socket_file_has_unix_mode_and_unix_group() {
    assert_eq "$(stat -c '%F %a %G' "$SOCK")" "socket 640 $GROUP" "type, mode and group of $SOCK"
}

case_the_access_log_takes_a_client_without_an_address() {
    # A client on a Unix socket has no IP address: MHD hands over an
    # unnamed sockaddr_un. The request is logged and nothing breaks.
    req GET /healthz
    assert_status 200
    grep -q 'access GET /healthz 200' "$DLOG" ||
        fail "no access line for GET /healthz: $(tail -n 3 "$DLOG" | tr '\n' '|')"
    req GET /v1/info
    assert_status 200
    req GET /metrics
    assert_status 200
    kill -0 "$DPID" 2>/dev/null || fail "the daemon is gone"
}

case_a_client_bound_to_a_long_path_is_served() {
    # accept() then returns a sockaddr_un of about 100 bytes, longer than
    # the sockaddr_in6 libmicrohttpd keeps it in: the request is answered,
    # logged, and the daemon lives on.
    need_helpers
    local me=$CASE_TMP/$(head -c 60 /dev/zero | tr '\0' c).sock out
    out=$("$HELPERS/unix_client" "$me" "$SOCK" /healthz 2>&1)
    [[ $out == "HTTP/1.1 200 OK"* ]] || fail "answer to a bound client: $(head -c 200 <<<"$out")"
    out=$("$HELPERS/unix_client" "$me" "$SOCK" /v1/info 2>&1)
    [[ $out == "HTTP/1.1 200 OK"* ]] || fail "/v1/info to a bound client: $(head -c 200 <<<"$out")"
    req GET /healthz
    assert_status 200
    kill -0 "$DPID" 2>/dev/null || fail "the daemon is gone"
}

case_a_live_socket_refuses_a_second_daemon() {
    local ino
    ino=$(stat -c %i "$SOCK")
    start_refused "" --listen "unix:$SOCK"
    assert_eq "$RC" 2 "exit status of a second daemon on a socket in use"
    [[ $ERRTEXT == *"cannot listen on unix:$SOCK: another process is listening on it"* ]] ||
        fail "unclear message for a socket in use: $ERRTEXT"
    assert_eq "$(stat -c %i "$SOCK")" "$ino" "inode of the socket file after the refusal"
    req GET /healthz
    assert_status 200
}

case_a_stale_socket_is_replaced() {
    local sock=$CASE_TMP/stale.sock
    start_unix_daemon "" "$sock" --listen "unix:$sock"
    kill -KILL "$DPID"
    for ((i = 0; i < 100; i++)); do
        [ -s "$DDIR/exit" ] && break
        sleep 0.05
    done
    [ -S "$sock" ] || fail "SIGKILL left no socket file to be stale"
    start_unix_daemon "" "$sock" --listen "unix:$sock"
    grep -q "removed the stale socket file $sock" "$DLOG" ||
        fail "no log line about the stale socket: $(head -n 3 "$DLOG" | tr '\n' '|')"
    req GET /healthz
    assert_status 200
    stop_daemon
}

case_a_file_that_is_not_a_socket_is_never_removed() {
    local f=$CASE_TMP/plain.sock l=$CASE_TMP/link.sock
    printf 'keep me\n' >"$f"
    start_refused "" --listen "unix:$f"
    assert_eq "$RC" 2 "exit status with a regular file at the path"
    [[ $ERRTEXT == *"a file that is not a socket is in the way"* ]] ||
        fail "unclear message for a regular file: $ERRTEXT"
    assert_eq "$(cat "$f")" "keep me" "the regular file's content"
    # A symlink, even to a socket nobody listens on, is not followed.
    ln -s "$f" "$l"
    start_refused "" --listen "unix:$l"
    assert_eq "$RC" 2 "exit status with a symlink at the path"
    [ -L "$l" ] || fail "the symlink was removed"
    assert_eq "$(cat "$f")" "keep me" "the symlink target's content"
}

case_sigterm_removes_the_socket_file() {
    local sock=$CASE_TMP/term.sock
    # From the configuration file this time, not --listen.
    start_unix_daemon "$(printf '[server]\nlisten = unix:%s\n' "$sock")" "$sock"
    [ -S "$sock" ] || fail "no socket file at $sock"
    req GET /healthz
    assert_status 200
    stop_daemon
    [ ! -e "$sock" ] || fail "the socket file is still there after SIGTERM"
}

case_bad_paths_and_groups_exit_2() {
    start_refused "" --listen unix:relative.sock
    assert_eq "$RC" 2 "exit status with a relative path"
    [[ $ERRTEXT == *"expected unix:/ABSOLUTE/PATH"* ]] ||
        fail "unclear message for a relative path: $ERRTEXT"
    start_refused "" --listen "unix:/$(head -c 120 /dev/zero | tr '\0' a)"
    assert_eq "$RC" 2 "exit status with a path longer than sun_path"
    start_refused "$(printf '[server]\nunix_group = no-such-group-awaitd\n')" \
        --listen "unix:$CASE_TMP/g.sock"
    assert_eq "$RC" 2 "exit status with a unix_group that does not exist"
    [[ $ERRTEXT == *"unix_group = no-such-group-awaitd: no such group"* ]] ||
        fail "unclear message for an unknown group: $ERRTEXT"
    [ ! -e "$CASE_TMP/g.sock" ] || fail "a socket file was left behind"
    start_refused "$(printf '[server]\nunix_group = no-such-group-awaitd\nlisten = unix:%s\n' \
        "$CASE_TMP/g.sock")" --check-config
    assert_eq "$RC" 2 "--check-config exit status with an unknown group"
    start_refused "$(printf '[server]\nunix_mode = 0999\n')" --check-config
    assert_eq "$RC" 2 "--check-config exit status with unix_mode = 0999"
    [[ $ERRTEXT == *"expected octal permission bits"* ]] ||
        fail "unclear message for a bad mode: $ERRTEXT"
    start_refused "" --listen "unix:$CASE_TMP/nodir/x.sock"
    assert_eq "$RC" 2 "exit status with a directory that does not exist"
}

case_sighup_keeps_listening_on_the_socket() {
    local sock=$CASE_TMP/hup.sock before i
    start_unix_daemon "$(printf '[server]\nlisten = unix:%s\n' "$sock")" "$sock"
    printf '[server]\nlisten = 127.0.0.1:0\n' >"$DDIR/awaitd.conf"
    before=$(grep -c 'SIGHUP: configuration reloaded' "$DLOG")
    kill -HUP "$DPID"
    for ((i = 0; i < 100; i++)); do
        [ "$(grep -c 'SIGHUP: configuration reloaded' "$DLOG")" -gt "$before" ] && break
        sleep 0.05
    done
    grep -q 'SIGHUP: listen changed to a TCP address.*needs a restart' "$DLOG" ||
        fail "no warning that listen needs a restart: $(grep SIGHUP "$DLOG" | tr '\n' '|')"
    req GET /healthz
    assert_status 200
    stop_daemon
    [ ! -e "$sock" ] || fail "the socket file is still there after SIGTERM"
}

case_socket_activation_with_a_unix_socket() {
    need_helpers
    local sock=$CASE_TMP/act.sock w=$CASE_TMP/awaitd-act
    printf '#!/bin/sh\nexec "%s" "%s" "%s" "$@"\n' "$HELPERS/sockact_unix" "$sock" "$AWAITD" >"$w"
    chmod +x "$w"
    AWAITD=$w start_unix_daemon "" "$sock"
    grep -q "listening on unix:$sock (socket activation)" "$DLOG" ||
        fail "the daemon did not take systemd's socket: $(head -n 3 "$DLOG" | tr '\n' '|')"
    create '{"kind":"sleep","args":{"seconds":0}}'
    req GET "/v1/tasks/$ID/wait?timeout=5"
    assert_status 200
    stop_daemon
    # The file is systemd's (here the helper's): the daemon leaves it.
    [ -S "$sock" ] || fail "the daemon removed a socket file it did not make"
}

case_socket_activation_with_a_unix_socket_and_tls() {
    need_helpers
    command -v openssl >/dev/null || fail "openssl is not installed (Debian package openssl)"
    local sock=$CASE_TMP/acttls.sock w=$CASE_TMP/awaitd-act
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost -keyout "$CASE_TMP/k.pem" \
        -out "$CASE_TMP/c.pem" 2>"$CASE_TMP/openssl.err" ||
        fail "openssl req failed: $(head -c 300 "$CASE_TMP/openssl.err")"
    printf '#!/bin/sh\nexec "%s" "%s" "%s" "$@"\n' "$HELPERS/sockact_unix" "$sock" "$AWAITD" >"$w"
    chmod +x "$w"
    AWAITD=$w start_unix_daemon "$(printf '[server]\ntls_cert = %s\ntls_key = %s\n' \
        "$CASE_TMP/c.pem" "$CASE_TMP/k.pem")" "$sock"
    export CURL_CA_BUNDLE=$CASE_TMP/c.pem
    BASE=https://localhost
    req GET /healthz
    assert_status 200
    BASE=http://localhost
    req GET /healthz
    assert_eq "$STATUS" 000 "status of plain HTTP on the HTTPS unix socket"
    stop_daemon
}

run_cases
