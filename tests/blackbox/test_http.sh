#!/usr/bin/env bash
# The http kind against a real HTTP server on loopback (helpers/http_target.c):
# GET and POST with headers and body, status as data, fail_on_status,
# transport failures, cancel closing the connection at once, the task
# timeout, the transfer cap, and the allow-list for hosts and for the
# address a name resolves to.

. "$(dirname "$0")/lib.sh"

build_helpers http_target

# The target server, started before the daemon: its port goes into the
# daemon's allow-list. Its pid joins the daemons the cleanup kills.
TLOG=$AW_TMP/target.log
: >"$TLOG"
TPORT=""
if [ -z "$HELPER_ERR" ]; then
    mkfifo "$AW_TMP/target.port"
    "$HELPERS/http_target" "$TLOG" >"$AW_TMP/target.port" 2>"$AW_TMP/target.err" &
    echo $! >>"$AW_TMP/daemons"
    disown
    # The helper prints its port once it listens; read blocks until then.
    read -r -t 10 TPORT <"$AW_TMP/target.port"
fi
T=http://127.0.0.1:$TPORT

# localhost (any port) passes the host rule, but only 127.0.0.1 on the
# target's port and on port 1 (nothing listens there) passes the address
# rule: http://localhost:<awaitd's own port>/ is the DNS trick to refuse.
start_main_daemon "[kinds]
http = true
[http]
allow = 127.0.0.1:$TPORT 127.0.0.1:1 localhost
max_transfers = 20
max_response_bytes = 1048576"

# http_body URL [JSON_FIELDS]: a create body for an http task.
http_body() {
    printf '{"kind":"http","args":{"url":"%s"%s}}' "$1" "${2:+,$2}"
}

# run_http URL [JSON_FIELDS] [TASK_FIELDS]: creates the task and waits (10 s) for its end.
run_http() {
    create "{\"kind\":\"http\",\"args\":{\"url\":\"$1\"${2:+,$2}}${3:+,$3}}"
    req GET "/v1/tasks/$ID/wait?timeout=10"
    assert_status 200
    assert_jq .done true
}

case_get_with_headers() {
    need_helpers
    run_http "$T/echo" '"headers":{"X-Test":"hello"}'
    assert_jq .state succeeded
    assert_jq .result.status 200
    assert_jq .result.body 'GET|hello|'
    assert_jq '.result.headers["x-reply"]' yes
    assert_jq '.result.headers["x-multi"]' 'a, b'
    assert_jq .result.truncated false
}

case_post_with_body() {
    need_helpers
    run_http "$T/echo" '"method":"POST","headers":{"X-Test":"p"},"body":"a=1&b=2"'
    assert_jq .state succeeded
    assert_jq .result.body 'POST|p|a=1&b=2'
}

case_404_is_data() {
    need_helpers
    run_http "$T/status/404"
    assert_jq .state succeeded
    assert_jq .result.status 404
    assert_jq .result.body 'status 404'
}

case_fail_on_status() {
    need_helpers
    run_http "$T/status/503" '"fail_on_status":true'
    assert_jq .state failed
    assert_jq .error.type http_status
    assert_jq .result.status 503
}

case_connection_refused() {
    run_http "http://127.0.0.1:1/"
    assert_jq .state failed
    assert_jq .error.type http_error
}

case_invalid_utf8_and_truncation() {
    need_helpers
    run_http "$T/latin1"
    assert_jq .result.body "$(printf 'caf\357\277\275')"
    run_http "$T/big" '"max_response_bytes":1000'
    assert_jq .state succeeded
    assert_jq .result.truncated true
    assert_jq '.result.body | length' 1000
}

case_redirects_off_unless_asked() {
    need_helpers
    run_http "$T/redirect"
    assert_jq .result.status 302
    run_http "$T/redirect" '"follow_redirects":true'
    assert_jq .result.status 200
    assert_jq .result.body 'GET||'
}

case_cancel_closes_the_connection() {
    need_helpers
    local before slow t0 closed_at
    before=$(grep -c '^closed' "$TLOG")
    slow=$(grep -c '^slow' "$TLOG")
    create "$(http_body "$T/slow")"
    await_line_count '^slow' "$((slow + 1))"
    t0=$(($(now) / 1000))
    req POST "/v1/tasks/$ID/cancel"
    assert_status 200
    assert_jq .state cancelled
    await_line_count '^closed' "$((before + 1))"
    closed_at=$(grep '^closed' "$TLOG" | tail -n1 | cut -d' ' -f2)
    assert_less "$((closed_at - t0))" 100 "ms from cancel to the server seeing the close"
}

case_timeout() {
    need_helpers
    run_http "$T/slow" "" '"timeout":0.3'
    assert_jq .state timed_out
    assert_jq .error.type timeout
}

case_transfer_cap() {
    need_helpers
    local ids=() pending=0
    # 50 clients at once, so that the creates outrun 20 transfers of 200 ms.
    mapfile -t ids < <(seq 200 | xargs -P 50 -I{} curl -sS --max-time 20 \
        -d "$(http_body "$T/delay")" "$BASE/v1/tasks" | jq -r .id)
    assert_eq "${#ids[@]}" 200 "tasks created"
    req GET '/v1/tasks?state=pending&kind=http&limit=1000'
    pending=$(jqb '.tasks | length')
    req POST /v1/wait "{\"ids\":$(ids_json "${ids[@]}"),\"timeout\":60}"
    assert_status 200
    assert_jq '.pending | length' 0
    assert_jq '[.done[] | select(.state == "succeeded")] | length' 200
    # Asked through awaitd: a connection of its own cache, not a new one.
    run_http "$T/stats"
    local max
    max=$(jqb .result.body | sed 's/max=//')
    note "most connections at the server: $max; pending after the creates: $pending"
    assert_less "$max" 21 "connections open at once at the server"
    assert_less 0 "$pending" "tasks left pending by the cap after 200 creates"
}

case_disallowed_host_is_403() {
    req POST /v1/tasks "$(http_body "http://example.com/")"
    assert_error 403 forbidden
    req POST /v1/tasks "$(http_body "http://127.0.0.1:$PORT/v1/info")"
    assert_error 403 forbidden
    req POST /v1/tasks "$(http_body "file:///etc/passwd")"
    assert_error 400 invalid_request
}

case_name_resolving_to_loopback_is_refused() {
    # localhost is on the list as a host, but its address 127.0.0.1 is
    # allowed only on the target's port: not on awaitd's own.
    run_http "http://localhost:$PORT/v1/info"
    assert_jq .state failed
    assert_jq .error.type http_error
    assert_jq '.error.message | test("refused: it is a loopback")' true
}

# await_line_count REGEX N: bounded poll (5 s) until TLOG has N lines matching REGEX.
await_line_count() {
    local i
    for ((i = 0; i < 500; i++)); do
        [ "$(grep -Ec -- "$1" "$TLOG")" -ge "$2" ] && return 0
        sleep 0.01
    done
    fail "the target's log has fewer than $2 lines matching /$1/ after 5 s"
}

run_cases
