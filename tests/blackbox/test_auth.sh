#!/usr/bin/env bash
# Authentication: with auth_token set, /v1/* and /metrics need
# "Authorization: Bearer TOKEN", checked before anything else; /healthz never.

. "$(dirname "$0")/lib.sh"

start_main_daemon '[server]
auth_token = s3cret-token'

# refuse_401 [req options] METHOD PATH [BODY]: answered 401 unauthorized.
refuse_401() {
    req "$@"
    assert_error 401 unauthorized
}

case_healthz_needs_no_token() {
    req GET /healthz
    assert_status 200
    assert_jq .status ok
}

case_no_token_is_401() {
    refuse_401 GET /v1/tasks
    refuse_401 GET /v1/info
    refuse_401 GET /metrics
    refuse_401 GET /v1/tasks/t_nosuchtask
    refuse_401 POST /v1/wait '{"ids":["t_x"]}'
    refuse_401 GET /v1/events
}

case_no_token_on_an_unknown_path_or_method_is_401_not_404_or_405() {
    refuse_401 GET /v1/nosuch
    refuse_401 DELETE /v1/info
    refuse_401 PUT /v1/tasks '{}'
}

case_create_without_token_is_401_and_creates_nothing() {
    local before
    TOKEN=s3cret-token count_tasks
    before=$COUNT
    refuse_401 POST /v1/tasks '{"kind":"sleep","args":{"seconds":0}}'
    TOKEN=s3cret-token count_tasks
    assert_eq "$COUNT" "$before" "task count after a create without token"
}

case_wrong_token_is_401() {
    refuse_401 -H 'Authorization: Bearer wrong' GET /v1/tasks
    refuse_401 -H 'Authorization: Bearer s3cret-toke' GET /v1/tasks
    refuse_401 -H 'Authorization: Bearer s3cret-tokenX' GET /v1/tasks
    refuse_401 -H 'Authorization: Basic s3cret-token' GET /v1/tasks
    refuse_401 -H 'Authorization: s3cret-token' GET /v1/tasks
    refuse_401 -H 'Authorization: Bearer ' GET /metrics
    refuse_401 -H 'Authorization: Bearer wrong' GET /v1/info
}

case_right_token_works() {
    TOKEN=s3cret-token
    req GET /v1/tasks
    assert_status 200
    create '{"kind":"sleep","args":{"seconds":0}}'
    req GET "/v1/tasks/$ID"
    assert_status 200
    req GET /v1/info
    assert_status 200
    assert_jq .kinds.sleep true
    req GET /metrics
    assert_status 200
    grep -q '^awaitd_tasks_created_total' "$CASE_TMP/body" || fail "no metrics with the right token$(ctx)"
    req GET /v1/nosuch
    assert_error 404 not_found
    req DELETE /v1/info
    assert_error 405 method_not_allowed
}

run_cases
