#!/usr/bin/env bash
# Large bodies cost the loop linear, small time: a job whose output is a
# megabyte of NUL bytes (six megabytes of "\u0000" in its result) costs
# the loop thread about what a megabyte of plain text costs, and ends
# without stalling other clients; a megabyte create is answered while
# /healthz keeps being answered. Each figure is compared with a reference
# taken in the same run: CPU time of the loop thread (the main thread,
# from /proc/PID/task/PID/schedstat, which a loaded machine does not
# inflate), and /healthz latencies on one keep-alive connection (curl's
# URL globbing), those against a memory-only daemon so that the store's
# writer thread, which writes the six megabytes, does not compete for the
# CPU in what is meant to measure the loop.

. "$(dirname "$0")/lib.sh"

EXEC_CONF='[server]
max_body_bytes = 4194304
[kinds]
exec = true
[exec]
allow = /usr/bin/head /bin/head
max_output_bytes = 1048576
allow_root = true'

start_main_daemon "$EXEC_CONF"

# sampler_start: /healthz over and over on one connection, each request's
# seconds on a line of $CASE_TMP/samples; returns once one has answered.
sampler_start() {
    : >"$CASE_TMP/samples"
    curl -s -o /dev/null -w '%{stderr}%{time_total}\n' \
        "$BASE/healthz?n=[1-1000000]" >/dev/null 2>"$CASE_TMP/samples" &
    SAMPLER=$!
    local i
    for ((i = 0; i < 200; i++)); do
        [ -s "$CASE_TMP/samples" ] && return 0
        sleep 0.01
    done
    fail "the /healthz sampler got no answer within 2 s"
}

# sampler_stop: stops it and prints the slowest answer it saw (seconds).
sampler_stop() {
    kill "$SAMPLER" 2>/dev/null
    wait "$SAMPLER" 2>/dev/null
    sort -g "$CASE_TMP/samples" | tail -n 1
}

# median of the arguments
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# job_stall FILE: the slowest /healthz answer while an exec job prints the
# first megabyte of FILE and ends, until its wait returns.
job_stall() {
    sampler_start
    create "{\"kind\":\"exec\",\"args\":{\"argv\":[\"/usr/bin/head\",\"-c\",\"1048576\",\"$1\"]}}"
    req GET "/v1/tasks/$ID/wait?timeout=20"
    sampler_stop
    assert_jq '[.state, (.result.stdout | length)]' '["succeeded",1048576]'
    req DELETE "/v1/tasks/$ID"
}


# loop_cpu: nanoseconds the daemon's main (loop) thread has run so far.
loop_cpu() {
    local f=/proc/$DPID/task/$DPID/schedstat
    [ -r "$f" ] || fail "$f is not readable (a kernel without schedstats?)"
    cut -d' ' -f1 "$f"
}

# job_cpu FILE: loop-thread nanoseconds for an exec job that prints the
# first megabyte of FILE, from its create to the return of its wait.
job_cpu() {
    local c0
    c0=$(loop_cpu)
    create "{\"kind\":\"exec\",\"args\":{\"argv\":[\"/usr/bin/head\",\"-c\",\"1048576\",\"$1\"]}}"
    req GET "/v1/tasks/$ID/wait?timeout=20"
    echo $(($(loop_cpu) - c0))
    assert_jq '[.state, (.result.stdout | length)]' '["succeeded",1048576]'
    req DELETE "/v1/tasks/$ID"
}

case_a_megabyte_of_nul_output_costs_the_loop_what_plain_output_costs() {
    head -c 1048576 /dev/zero | tr '\0' a >"$CASE_TMP/plain"
    local r nul=() ref=() n p
    for r in 1 2 3; do
        ref+=("$(job_cpu "$CASE_TMP/plain")")
        nul+=("$(job_cpu /dev/zero)")
    done
    n=$(median "${nul[@]}")
    p=$(median "${ref[@]}")
    note "loop-thread ns per job, NUL output: ${nul[*]}; plain output: ${ref[*]}"
    # Sanitizers slow the escapes' stores more than the plain copies.
    local k=4 slack=15000000
    [ -z "${SANITIZER:-}" ] || { k=8; slack=30000000; }
    assert_less "$n" "$((k * p + slack))" \
        "median loop-thread ns of a NUL-output job (plain: $p ns)"
}

case_a_megabyte_of_nul_output_ends_without_stalling_healthz() {
    start_daemon "$EXEC_CONF
[storage]
state_dir ="
    head -c 1048576 /dev/zero | tr '\0' a >"$CASE_TMP/plain"
    local r nul=() ref=() n p
    for r in 1 2 3; do
        ref+=("$(job_stall "$CASE_TMP/plain")")
        nul+=("$(job_stall /dev/zero)")
    done
    n=$(median "${nul[@]}")
    p=$(median "${ref[@]}")
    note "slowest /healthz per job, NUL output: ${nul[*]} s; plain output: ${ref[*]} s"
    assert_less "$n" "$(awk -v p="$p" 'BEGIN { print 3 * p + 0.1 }')" \
        "median slowest /healthz during a NUL-output job (plain: $p s)"
    stop_daemon
}

# A 1 MiB create: its /healthz stall compared with a small create's.
create_stall() {
    sampler_start
    req --data-file "$1" POST /v1/tasks
    assert_status 201
    local id
    id=$(jqb .id)
    sampler_stop
    req DELETE "/v1/tasks/$id"
}

case_a_megabyte_create_costs_the_loop_little() {
    local body=$CASE_TMP/big.json small=$CASE_TMP/small.json r big=() ref=() b p
    { printf '{"kind":"sleep","args":{"seconds":0,"result":"'
      head -c 786432 /dev/zero | tr '\0' x | fold -w 64 | tr '\n' ' '
      printf '"}}'; } >"$body"
    printf '{"kind":"sleep","args":{"seconds":0,"result":"x"}}' >"$small"
    for r in 1 2 3; do
        ref+=("$(create_stall "$small")")
        big+=("$(create_stall "$body")")
    done
    b=$(median "${big[@]}")
    p=$(median "${ref[@]}")
    note "slowest /healthz per create, 1 MiB body: ${big[*]} s; small body: ${ref[*]} s"
    assert_less "$b" "$(awk -v p="$p" 'BEGIN { print 3 * p + 0.1 }')" \
        "median slowest /healthz during a 1 MiB create (small: $p s)"
}

run_cases
