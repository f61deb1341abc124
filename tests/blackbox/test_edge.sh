#!/usr/bin/env bash
# Who may drive the API: the Host rule (421 misdirected, DNS rebinding),
# the Origin rule (403 origin; CORS for cors_origins only), tokens from
# files, scoped tokens (read, write, exec) with RFC 6750 answers, and the
# browser attack itself in a real headless Chromium: a page on another
# loopback port tries a no-cors POST of an exec job and an EventSource,
# and nothing is created; the same-origin dashboard (/ui) still lists and
# creates. helpers/edge_static.c serves the attacker's page.
#
# The main daemon is the set-up of the original report: exec enabled, no
# token, 127.0.0.1.

. "$(dirname "$0")/lib.sh"

build_helpers edge_static
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)

MAIN_CONF='[server]
access_log = true
cors_origins = http://good.example:3000
allowed_hosts = awaitd.test
[kinds]
exec = true
[exec]
allow = /usr/bin/touch /bin/touch
allow_root = true'

start_main_daemon "$MAIN_CONF"

PWNED=$AW_TMP/pwned
EXEC_BODY='{"kind":"exec","args":{"argv":["/usr/bin/touch","'$PWNED'"]},"name":"attack"}'

# attack_count: sets COUNT to the number of tasks named "attack".
attack_count() {
    req GET '/v1/tasks?limit=1000'
    assert_status 200
    COUNT=$(jqb '[.tasks[] | select(.name == "attack")] | length')
}

assert_nothing_created() {
    attack_count
    assert_eq "$COUNT" 0 "tasks named attack"
    [ ! -e "$PWNED" ] || fail "$PWNED exists: the exec job ran"
}

# need_chromium: passes the case with a note when chromium is missing
# (make deps installs it; a machine without it cannot run these cases).
need_chromium() {
    need_helpers
    if [ -z "$CHROMIUM" ]; then
        printf '# skip: chromium is not installed (apt-get install chromium)\n' >&3
        exit 0
    fi
}

# chromium_dom URL: the DOM of URL after its scripts ran (--dump-dom).
chromium_dom() {
    timeout 90 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run \
        --disable-dev-shm-usage --user-data-dir="$CASE_TMP/chromium" \
        --virtual-time-budget=15000 --dump-dom "$1" 2>"$CASE_TMP/chromium.err"
}

# static_start FILE: serves FILE from another loopback port (SPORT, SPID).
static_start() {
    local i
    rm -f "$CASE_TMP/port"
    "$HELPERS/edge_static" "$1" "$CASE_TMP/port" 2>"$CASE_TMP/static.err" &
    SPID=$!
    for ((i = 0; i < 100; i++)); do
        [ -s "$CASE_TMP/port" ] && break
        sleep 0.05
    done
    SPORT=$(cat "$CASE_TMP/port" 2>/dev/null)
    [ -n "$SPORT" ] || { kill "$SPID"; fail "edge_static did not start: $(cat "$CASE_TMP/static.err")"; }
}

static_stop() {
    kill "$SPID" 2>/dev/null
    wait "$SPID" 2>/dev/null
}

# ---- the Host rule ----

case_dns_rebinding_host_is_421() {
    req -H 'Host: evil.example' GET /v1/tasks
    assert_error 421 misdirected
    req -H "Host: evil.example:$PORT" -H 'Content-Type: text/plain' --no-ct \
        POST /v1/tasks "$EXEC_BODY"
    assert_error 421 misdirected
    req -H "Host: 127.0.0.1.evil.example:$PORT" GET /healthz
    assert_error 421 misdirected
    assert_nothing_created
}

case_ip_literals_localhost_and_allowed_hosts_pass() {
    local h
    for h in "127.0.0.1:$PORT" "localhost:$PORT" "LocalHost" "[::1]:$PORT" \
        "awaitd.test:$PORT" "AWAITD.test" "10.1.2.3"; do
        req -H "Host: $h" GET /healthz
        assert_status 200
    done
}

# ---- the Origin rule ----

case_cross_origin_no_cors_post_is_403_and_creates_nothing() {
    req -H 'Origin: http://127.0.0.1:9' -H 'Content-Type: text/plain' --no-ct \
        POST /v1/tasks "$EXEC_BODY"
    assert_error 403 origin
    req -H 'Origin: http://localhost:8081' GET /v1/events
    assert_error 403 origin
    req -H "Origin: http://evil.example:$PORT" GET /v1/tasks
    assert_error 403 origin
    assert_nothing_created
}

case_origin_null_is_403() {
    req -H 'Origin: null' --no-ct POST /v1/tasks "$EXEC_BODY"
    assert_error 403 origin
    req -H 'Origin: null' GET /healthz
    assert_error 403 origin
    assert_nothing_created
}

case_own_origin_passes() {
    req -H "Origin: http://127.0.0.1:$PORT" POST /v1/tasks '{"kind":"sleep","args":{"seconds":0}}'
    assert_status 201
    [ -z "$(header Access-Control-Allow-Origin)" ] ||
        fail "CORS header on a same-origin answer$(ctx)"
    req -H "Origin: http://localhost:$PORT" -H "Host: localhost:$PORT" GET /v1/tasks
    assert_status 200
}

case_listed_origin_gets_cors_headers_and_preflight() {
    req -H 'Origin: http://good.example:3000' GET /v1/tasks
    assert_status 200
    assert_eq "$(header Access-Control-Allow-Origin)" http://good.example:3000 \
        "Access-Control-Allow-Origin"
    assert_eq "$(header Vary)" Origin "Vary"
    assert_eq "$(header Access-Control-Expose-Headers)" Location "Expose-Headers"
    req -H 'Origin: http://good.example:3000' -H 'Access-Control-Request-Method: POST' \
        -H 'Access-Control-Request-Headers: authorization, content-type' OPTIONS /v1/tasks
    assert_status 204
    assert_eq "$(header Access-Control-Allow-Origin)" http://good.example:3000 "preflight ACAO"
    case $(header Access-Control-Allow-Headers) in
    *Authorization*Content-Type*Idempotency-Key*) ;;
    *) fail "preflight Allow-Headers: '$(header Access-Control-Allow-Headers)'$(ctx)" ;;
    esac
    case $(header Access-Control-Allow-Methods) in
    *POST*) ;;
    *) fail "preflight Allow-Methods: '$(header Access-Control-Allow-Methods)'$(ctx)" ;;
    esac
}

case_unlisted_preflight_is_403_without_cors_headers() {
    req -H 'Origin: http://bad.example:3000' -H 'Access-Control-Request-Method: POST' \
        OPTIONS /v1/tasks
    assert_error 403 origin
    [ -z "$(header Access-Control-Allow-Origin)" ] || fail "CORS header for an unlisted origin$(ctx)"
}

case_refusals_are_in_the_access_log() {
    req -H 'Origin: http://127.0.0.1:9' --no-ct POST /v1/tasks "$EXEC_BODY"
    grep -q 'access POST /v1/tasks 403' "$DLOG" ||
        fail "no 'access POST /v1/tasks 403' line in the log: $(tail -n 3 "$DLOG" | tr '\n' ' ')"
}

# ---- the browser attack in Chromium ----

case_browser_attack_from_another_port_creates_nothing() {
    need_chromium
    local page=$CASE_TMP/attack.html dom
    cat >"$page" <<EOF
<!DOCTYPE html><html><head><title>attack</title></head><body>
<pre id="result">running</pre>
<script>
const target = "http://127.0.0.1:$PORT";
const out = [];
const body = JSON.stringify($EXEC_BODY);
(async () => {
  // The request of the report: a "simple" request, no preflight.
  try {
    await fetch(target + "/v1/tasks", { method: "POST", mode: "no-cors",
                headers: { "Content-Type": "text/plain" }, body });
    out.push("nocors:sent");
  } catch (e) { out.push("nocors:error"); }
  // A CORS request needs a preflight, which must not be granted.
  try {
    const r = await fetch(target + "/v1/tasks", { method: "POST",
                headers: { "Content-Type": "application/json" }, body });
    out.push("cors:" + r.status);
  } catch (e) { out.push("cors:blocked"); }
  await new Promise((done) => {
    const es = new EventSource(target + "/v1/events");
    es.addEventListener("task", () => { out.push("es:event"); es.close(); done(); });
    es.onopen = () => out.push("es:open");
    es.onerror = () => { out.push("es:error"); es.close(); done(); };
  });
  document.getElementById("result").textContent = "done " + out.join(" ");
})();
</script></body></html>
EOF
    static_start "$page"
    dom=$(chromium_dom "http://127.0.0.1:$SPORT/")
    static_stop
    # What the page found out, from its <pre id="result"> only (the
    # script's own text is in the DOM too).
    local result
    result=$(printf '%s' "$dom" | sed -n 's/.*<pre id="result">\([^<]*\)<.*/\1/p')
    note "attacker page: $result"
    case $result in
    'done nocors:sent '*) ;;
    *) fail "the attacker page did not finish: '$result' $(tail -n 3 "$CASE_TMP/chromium.err" | tr '\n' ' ')" ;;
    esac
    case $result in *es:event* | *es:open*) fail "the page read the event stream: $result" ;; esac
    case $result in *cors:2*) fail "the CORS create was answered: $result" ;; esac
    assert_nothing_created
    grep -q 'access POST /v1/tasks 403' "$DLOG" || fail "no 403 for the page's POST in the access log"
    grep -q 'access GET /v1/events 403' "$DLOG" || fail "no 403 for the page's EventSource in the access log"
}

case_listed_origin_page_uses_the_api_through_cors_in_chromium() {
    need_chromium
    # The page's origin must be known before the daemon starts: serve a
    # page that reads the daemon's port from its own URL (?port=).
    local page=$CASE_TMP/listed.html dom result
    cat >"$page" <<'EOF'
<!DOCTYPE html><html><head><title>listed</title></head><body>
<pre id="result">running</pre>
<script>
const port = new URLSearchParams(location.search).get("port");
const target = "http://127.0.0.1:" + port;
(async () => {
  const out = [];
  try {
    const r = await fetch(target + "/v1/tasks", { method: "POST",
      headers: { "Content-Type": "application/json", "Authorization": "Bearer cors-token" },
      body: JSON.stringify({ kind: "sleep", args: { seconds: 0 }, name: "from-listed" }) });
    const t = await r.json();
    out.push("create:" + r.status + ":" + (r.headers.get("Location") ? "location" : "nolocation"));
    const l = await fetch(target + "/v1/tasks/" + t.id,
                          { headers: { "Authorization": "Bearer cors-token" } });
    out.push("get:" + l.status);
  } catch (e) { out.push("error:" + e); }
  document.getElementById("result").textContent = "done " + out.join(" ");
})();
</script></body></html>
EOF
    static_start "$page"
    start_daemon "[server]
auth_token = cors-token
cors_origins = http://127.0.0.1:$SPORT"
    dom=$(chromium_dom "http://127.0.0.1:$SPORT/?port=$PORT")
    static_stop
    result=$(printf '%s' "$dom" | sed -n 's/.*<pre id="result">\([^<]*\)<.*/\1/p')
    note "listed origin page: $result"
    assert_eq "$result" "done create:201:location get:200" "what the listed origin's page saw"
    TOKEN=cors-token req GET '/v1/tasks?limit=1000'
    assert_jq '[.tasks[] | select(.name == "from-listed")] | length' 1
    stop_daemon
}

# ---- the same-origin dashboard ----

case_ui_is_served_without_token() {
    start_daemon '[server]
auth_token = ui-token'
    req GET /ui
    assert_status 200
    case $(header Content-Type) in text/html*) ;; *) fail "Content-Type $(header Content-Type)$(ctx)" ;; esac
    case $BODY in *'<title>awaitd</title>'*'/v1/tasks'*) ;; *) fail "not the dashboard page$(ctx)" ;; esac
    case $(header Content-Security-Policy) in
    *"frame-ancestors 'none'"*"connect-src 'self'"* | *"connect-src 'self'"*"frame-ancestors 'none'"*) ;;
    *) fail "CSP: $(header Content-Security-Policy)" ;;
    esac
    req GET /v1/tasks
    assert_error 401 unauthorized
    stop_daemon
    start_daemon '[server]
ui = false'
    req GET /ui
    assert_error 404 not_found
    stop_daemon
}

# cdp_start: headless Chromium driven through --remote-debugging-pipe (the
# DevTools protocol as NUL-separated JSON on fds 3 and 4), so a case can
# type into the dashboard and click, with no websocket client.
cdp_start() {
    mkfifo "$CASE_TMP/cdp.in" "$CASE_TMP/cdp.out"
    "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run --disable-dev-shm-usage \
        --user-data-dir="$CASE_TMP/chromium" --remote-debugging-pipe about:blank \
        3<"$CASE_TMP/cdp.in" 4>"$CASE_TMP/cdp.out" 2>"$CASE_TMP/chromium.err" &
    CDP_PID=$!
    exec 5>"$CASE_TMP/cdp.in" 6<"$CASE_TMP/cdp.out"
    CDP_ID=0
}

# cdp CALL_JSON [SESSION]: sends {"method", "params"} with a new id (in
# SESSION) and sets CDP_REPLY to the answer with that id (30 s per message).
cdp() {
    local msg call=$1 session=${2:-}
    CDP_ID=$((CDP_ID + 1))
    msg=$(jq -c --argjson id "$CDP_ID" --arg s "$session" \
        '. + {id: $id} + (if $s == "" then {} else {sessionId: $s} end)' <<<"$call")
    printf '%s\0' "$msg" >&5
    while IFS= read -r -d '' -t 30 CDP_REPLY <&6; do
        [ "$(jq -r '.id // empty' <<<"$CDP_REPLY")" = "$CDP_ID" ] && return 0
    done
    fail "no DevTools answer to $call: $(tail -n 3 "$CASE_TMP/chromium.err" | tr '\n' ' ')"
}

cdp_stop() {
    printf '%s\0' '{"id":999999,"method":"Browser.close"}' >&5 2>/dev/null
    exec 5>&- 6<&-
    for ((i = 0; i < 100; i++)); do
        kill -0 "$CDP_PID" 2>/dev/null || break
        sleep 0.05
    done
    kill -KILL "$CDP_PID" 2>/dev/null
    wait "$CDP_PID" 2>/dev/null
}

case_dashboard_in_chromium_lists_and_creates() {
    need_chromium
    start_daemon '[server]
access_log = true
auth_token = ui-token'
    TOKEN=ui-token create '{"kind":"sleep","args":{"seconds":0},"name":"made-by-curl"}'
    local listed=$ID session target value
    cdp_start
    cdp '{"method":"Target.createTarget","params":{"url":"about:blank"}}'
    target=$(jq -r .result.targetId <<<"$CDP_REPLY")
    cdp "{\"method\":\"Target.attachToTarget\",\"params\":{\"targetId\":\"$target\",\"flatten\":true}}"
    session=$(jq -r .result.sessionId <<<"$CDP_REPLY")
    cdp "{\"method\":\"Page.navigate\",\"params\":{\"url\":\"$BASE/ui\"}}" "$session"
    # What a user does: the page asks for the token, they type it and
    # create a task; the list then shows both tasks. Each wait is bounded
    # (10 s) inside the page.
    local js='(async () => {
      const until = async (f) => { for (let i = 0; i < 200; i++) { try { if (f()) return true; } catch (e) {}
                                   await new Promise((r) => setTimeout(r, 50)); } return false; };
      const $ = (id) => document.getElementById(id);
      if (!await until(() => !$("login").hidden)) return "no token prompt: " + $("status").textContent;
      $("token").value = "ui-token";
      $("login").requestSubmit();
      if (!await until(() => document.body.dataset.loaded)) return "no list: " + $("status").textContent;
      if (!document.querySelector("tr[data-id=\"LISTED\"]")) return "LISTED not listed";
      $("seconds").value = "0";
      $("create").requestSubmit();
      if (!await until(() => document.body.dataset.created)) return "no create: " + $("status").textContent;
      const id = document.body.dataset.created;
      if (!await until(() => document.querySelector("tr[data-id=\"" + id + "\"]"))) return "created " + id + " not listed";
      return "ok " + id;
    })()'
    js=${js//LISTED/$listed}
    # The navigation may still be replacing about:blank: retry while the
    # context is not the dashboard yet.
    for ((i = 0; i < 50; i++)); do
        cdp "$(jq -cn --arg e "$js" '{method: "Runtime.evaluate",
            params: {expression: $e, awaitPromise: true, returnByValue: true}}')" "$session"
        value=$(jq -r '.result.result.value // .result.exceptionDetails.text // .error.message // empty' <<<"$CDP_REPLY")
        case $value in "no token prompt: " | *"context"* | *"Cannot read"* | "") sleep 0.1 ;; *) break ;; esac
    done
    cdp_stop
    note "dashboard: $value"
    case $value in "ok t_"*) ;; *) fail "dashboard in Chromium: '$value' ($CDP_REPLY)" ;; esac
    TOKEN=ui-token req GET "/v1/tasks/${value#ok }"
    assert_status 200
    assert_jq .kind sleep
    # Its POST carried the page's own Origin and was let through.
    grep -q 'access POST /v1/tasks 201' "$DLOG" || fail "no 201 for the dashboard's create in the log"
    stop_daemon
}

# ---- tokens and scopes ----

SCOPE_DIR=$AW_TMP/tokens
mkdir -p "$SCOPE_DIR"
printf 'read-secret-1\n' >"$SCOPE_DIR/mon"
printf 'write-secret-2\n' >"$SCOPE_DIR/ci"
printf 'exec-secret-3' >"$SCOPE_DIR/ops"
printf 'admin-secret-4\n' >"$SCOPE_DIR/admin"
SCOPE_CONF="[server]
auth_token_file = $SCOPE_DIR/admin
[auth]
tokens = monitor:read:$SCOPE_DIR/mon ci:read,write:$SCOPE_DIR/ci ops:read,write,exec:$SCOPE_DIR/ops
[kinds]
exec = true
[exec]
allow = /usr/bin/true /bin/true
allow_root = true"
EXEC_TRUE='{"kind":"exec","args":{"argv":["/usr/bin/true"]}}'

case_read_token_reads_but_cannot_change() {
    start_daemon "$SCOPE_CONF"
    TOKEN=admin-secret-4 create '{"kind":"sleep","args":{"seconds":0}}'
    local id=$ID
    TOKEN=read-secret-1
    req GET /v1/tasks
    assert_status 200
    req GET "/v1/tasks/$id"
    assert_status 200
    req GET /metrics
    assert_status 200
    req GET /v1/info
    assert_status 200
    req POST /v1/wait "{\"ids\":[\"$id\"],\"timeout\":0}"
    assert_status 200
    req POST /v1/tasks '{"kind":"sleep","args":{"seconds":0}}'
    assert_error 403 insufficient_scope
    assert_eq "$(header WWW-Authenticate)" 'Bearer error="insufficient_scope", scope="write"' \
        "WWW-Authenticate"
    req POST "/v1/tasks/$id/cancel"
    assert_error 403 insufficient_scope
    req DELETE "/v1/tasks/$id"
    assert_error 403 insufficient_scope
    # A wait that would cancel at its timeout is a change too.
    TOKEN=admin-secret-4 create '{"kind":"sleep","args":{"seconds":60}}'
    local long=$ID
    req GET "/v1/tasks/$long/wait?timeout=0&cancel=true"
    assert_error 403 insufficient_scope
    req GET "/v1/tasks/$long/wait?timeout=0"
    assert_status 200
    assert_jq .state running
    TOKEN=""
    # EventSource sends no header: the read token as ?access_token=.
    req --max-time 1 GET "/v1/events?access_token=read-secret-1"
    assert_eq "$(head -n1 "$CASE_TMP/headers" | cut -d' ' -f2)" 200 "events with ?access_token="
    req --max-time 1 GET "/v1/events?access_token=read-secret-X"
    assert_error 401 unauthorized
    TOKEN=admin-secret-4 count_tasks
    assert_eq "$COUNT" 2 "tasks after the refused create (the two made with the admin token)"
    stop_daemon
}

case_write_without_exec_cannot_create_exec() {
    start_daemon "$SCOPE_CONF"
    TOKEN=write-secret-2
    create '{"kind":"sleep","args":{"seconds":0}}'
    req POST /v1/tasks "$EXEC_TRUE"
    assert_error 403 insufficient_scope
    assert_eq "$(header WWW-Authenticate)" 'Bearer error="insufficient_scope", scope="exec"' \
        "WWW-Authenticate"
    count_tasks
    assert_eq "$COUNT" 1 "tasks after the refused exec create"
    stop_daemon
}

case_exec_scope_and_admin_token_can_create_exec() {
    start_daemon "$SCOPE_CONF"
    TOKEN=exec-secret-3 create "$EXEC_TRUE"
    TOKEN=exec-secret-3 await_state "$ID" succeeded
    TOKEN=admin-secret-4 create "$EXEC_TRUE"
    stop_daemon
}

case_wrong_or_missing_token_is_401_with_bearer_challenge() {
    start_daemon "$SCOPE_CONF"
    req GET /v1/tasks
    assert_error 401 unauthorized
    assert_eq "$(header WWW-Authenticate)" Bearer "WWW-Authenticate"
    TOKEN=read-secret-2 req GET /v1/tasks
    assert_error 401 unauthorized
    TOKEN=read-secret-11 req GET /v1/tasks
    assert_error 401 unauthorized
    # The file's trailing newline is not part of the token.
    TOKEN=exec-secret-3 req GET /v1/tasks
    assert_status 200
    req GET /healthz
    assert_status 200
    stop_daemon
}

case_token_file_is_read_again_on_sighup() {
    printf 'first-secret\n' >"$CASE_TMP/token"
    start_daemon "[server]
auth_token_file = $CASE_TMP/token"
    TOKEN=first-secret req GET /v1/tasks
    assert_status 200
    printf 'second-secret\n' >"$CASE_TMP/token"
    kill -HUP "$DPID"
    for ((i = 0; i < 200; i++)); do
        grep -q 'configuration reloaded' "$DLOG" && break
        sleep 0.05
    done
    grep -q 'configuration reloaded' "$DLOG" || fail "no reload within 10 s: $(tail -n 3 "$DLOG")"
    TOKEN=first-secret req GET /v1/tasks
    assert_error 401 unauthorized
    TOKEN=second-secret req GET /v1/tasks
    assert_status 200
    stop_daemon
}

# check_config_refused CONF_TEXT PATTERN: --check-config exits 2 and says PATTERN.
check_config_refused() {
    printf '%s\n' "$1" >"$CASE_TMP/bad.conf"
    "$AWAITD" --check-config --config "$CASE_TMP/bad.conf" >"$CASE_TMP/out" 2>&1
    local rc=$?
    assert_eq "$rc" 2 "exit status of --check-config for: $1"
    grep -q -- "$2" "$CASE_TMP/out" || fail "message '$(cat "$CASE_TMP/out")' lacks '$2'"
}

case_bad_token_and_origin_settings_are_refused_at_start() {
    printf 'tok\n' >"$CASE_TMP/t"
    printf '"quoted"\n' >"$CASE_TMP/q"
    check_config_refused "[server]
auth_token = a
auth_token_file = $CASE_TMP/t" 'both set'
    check_config_refused "[server]
auth_token_file = $CASE_TMP/nosuch" 'auth_token_file.*cannot open'
    check_config_refused "[server]
auth_token_file = $CASE_TMP/q" 'expected one bearer token'
    # The secret itself is never echoed.
    grep -q quoted "$CASE_TMP/out" && fail "a token file's content was printed"
    check_config_refused "[auth]
tokens = mon:read,root:$CASE_TMP/t" 'unknown scope'
    check_config_refused "[auth]
tokens = mon:$CASE_TMP/t" 'NAME:SCOPES:FILE'
    check_config_refused '[server]
cors_origins = https://dash.example/' 'no path'
    check_config_refused '[server]
allowed_hosts = evil.example:80' 'no port'
}

run_cases
