#!/usr/bin/env bash
# /metrics as a Prometheus server reads it: the text format's rules (HELP and
# TYPE before a family's samples, names and labels well formed, one number
# per sample, histograms cumulative with +Inf equal to _count), and numbers
# that move with what the daemon does.

. "$(dirname "$0")/lib.sh"

start_main_daemon ''

# check_exposition FILE: prints the first rule FILE breaks, nothing if none.
check_exposition() {
    awk '
    function fail(why) { print "line " NR ": " why ": " $0; bad = 1; exit }
    /^# HELP / { if (NF < 4) fail("HELP without text"); help[$3] = 1; next }
    /^# TYPE / {
        if ($4 !~ /^(counter|gauge|histogram|summary|untyped)$/) fail("unknown TYPE")
        if ($3 in type) fail("second TYPE for one family")
        type[$3] = $4; next
    }
    /^#/ { next }
    /^$/ { fail("empty line") }
    {
        if (NF != 2) fail("a sample is NAME{LABELS} VALUE")
        key = $1; n = index(key, "{")
        name = n ? substr(key, 1, n - 1) : key
        if (name !~ /^[a-zA-Z_:][a-zA-Z0-9_:]*$/) fail("bad metric name")
        if (n && key !~ /^[^{]+\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*",?)*\}$/) fail("bad labels")
        if ($2 !~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/ && $2 !~ /^(NaN|[-+]Inf)$/)
            fail("value is not a number")
        fam = name
        sub(/_(bucket|sum|count)$/, "", fam)
        if (!(name in type) && !((fam in type) && type[fam] == "histogram"))
            fail("sample before its TYPE line")
        t = (name in type) ? name : fam
        if (!(t in help)) fail("family without HELP")
        if (type[t] == "counter" && $2 < 0) fail("negative counter")
        if (name ~ /_bucket$/) {
            series = key; sub(/,?le="[^"]*"/, "", series); sub(/\{\}$/, "", series)
            if (series in last && $2 < last[series]) fail("histogram buckets not cumulative")
            last[series] = $2
            if (key ~ /le="\+Inf"/) inf[series] = $2
        }
        if (name ~ /_count$/ && type[fam] == "histogram") {
            series = key; sub(/_count/, "_bucket", series); sub(/\{\}$/, "", series)
            if (!(series in inf) || inf[series] != $2) fail("_count differs from the +Inf bucket")
        }
    }' "$1"
}

case_metrics_follow_the_text_format() {
    create '{"kind":"sleep","args":{"seconds":0}}'
    req GET "/v1/tasks/$ID/wait?timeout=1"
    req GET /metrics
    assert_status 200
    [[ $(header Content-Type) == text/plain* ]] || fail "Content-Type is $(header Content-Type)"
    local broken
    broken=$(check_exposition "$CASE_TMP/body")
    [ -z "$broken" ] || fail "/metrics breaks the text format: $broken"
    grep -q '^awaitd_http_request_duration_seconds_bucket{route="task_wait",le="+Inf"} ' \
        "$CASE_TMP/body" || fail "no latency histogram for the wait route"
}

# The checker must itself refuse broken text, or the case above proves nothing.
case_the_format_checker_refuses_broken_text() {
    local f=$CASE_TMP/bad
    printf '# HELP x_total X.\n# TYPE x_total counter\nx_total{a="1"} one\n' >"$f"
    [ -n "$(check_exposition "$f")" ] || fail "a non-numeric value passed"
    printf 'y 1\n' >"$f"
    [ -n "$(check_exposition "$f")" ] || fail "a sample without TYPE passed"
    printf '# HELP h H.\n# TYPE h histogram\nh_bucket{le="1"} 5\nh_bucket{le="+Inf"} 3\nh_count 3\n' >"$f"
    [ -n "$(check_exposition "$f")" ] || fail "a decreasing histogram passed"
}

case_counters_and_gauges_move() {
    local created0 sleeping0 requests0 waits0
    req GET /metrics
    created0=$(metric awaitd_tasks_created_total kind=sleep)
    sleeping0=$(metric awaitd_tasks state=running)
    requests0=$(metric awaitd_http_requests_total code=201)
    waits0=$(metric awaitd_http_request_duration_seconds_count route=task_wait)
    create '{"kind":"sleep","args":{"seconds":30}}'
    local long=$ID
    req GET "/v1/tasks/$long/wait?timeout=0.2"
    req GET /metrics
    assert_eq "$(metric awaitd_tasks_created_total kind=sleep)" $((created0 + 1))
    assert_eq "$(metric awaitd_tasks state=running)" $((sleeping0 + 1))
    assert_eq "$(metric awaitd_http_requests_total code=201)" $((requests0 + 1))
    assert_eq "$(metric awaitd_http_request_duration_seconds_count route=task_wait)" $((waits0 + 1))
    req POST "/v1/tasks/$long/cancel"
    req GET /metrics
    assert_eq "$(metric awaitd_tasks state=running)" "$sleeping0"
    assert_eq "$(metric awaitd_tasks_finished_total kind=sleep state=cancelled)" 1
    local rss
    rss=$(metric process_resident_memory_bytes)
    [ "${rss%.*}" -gt 1000000 ] || fail "process_resident_memory_bytes is $rss"
}

run_cases
