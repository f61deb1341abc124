/*
 * test_store.c — the durable store (lib/store.c): a real SQLite database
 * in a temporary directory, a real writer thread and a real event base.
 * The engine runs on the fake clock (so retention and sleeps are moved by
 * the test); the store's own retry timer is real, one second.
 *
 * Nothing sleeps to synchronise: each test drives the loop with
 * event_base_loop(EVLOOP_ONCE) until what it waits for has happened (a
 * commit callback, usually), bounded by a deadline timer so that a commit
 * that never comes fails the test instead of hanging it. What is on disk
 * is read with a second, read-only SQLite connection, as an operator's
 * `sqlite3 state.db` would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine.h"
#include "errors.h"
#include "fake_clock.h"
#include "queue.h"
#include "store.h"
#include "task_json.h"

#define T0_WALL      1700000000000LL
#define RETENTION_MS 60000
#define DEADLINE_MS  10000
#define MAX_COMMITS  64
#define INTERRUPTED  "the daemon stopped while the task ran"

struct commit {
    uint64_t first, last, durable;
    bool     ok;
    char     message[200];
};

struct fx {
    struct event_base *base;
    char               tmp[64];         /* mkdtemp; removed at teardown */
    char               dir[128];        /* tmp/state: the state_dir */
    char               db[160];         /* dir/state.db */
    aw_engine_t       *e;
    aw_store_t        *s;
    aw_store_loaded_t  loaded;
    struct commit      commits[MAX_COMMITS];
    size_t             ncommits;
    char               warned[512];     /* the last load warning */
    aw_task_t         *watched;         /* its held flag is noted at each commit */
    bool               held_at_commit;
};

/* ---- fixture ---- */

static void on_commit(void *arg, uint64_t first, uint64_t last, bool ok,
                      uint64_t durable, const char *message)
{
    struct fx *f = arg;
    assert_true(f->ncommits < MAX_COMMITS);
    struct commit *c = &f->commits[f->ncommits++];
    *c = (struct commit){ .first = first, .last = last, .durable = durable, .ok = ok };
    assert_true(ok == (message == NULL));
    if (message)
        snprintf(c->message, sizeof c->message, "%s", message);
    if (f->watched)
        f->held_at_commit = f->watched->held;
}

static void on_warn(void *arg, const char *msg)
{
    struct fx *f = arg;
    snprintf(f->warned, sizeof f->warned, "%s", msg);
}

static aw_engine_t *engine(struct event_base *base)
{
    aw_engine_limits_t lim = { .max_tasks = 0, .retention_ms = RETENTION_MS };
    aw_engine_t *e = aw_engine_new(base, &lim);
    assert_non_null(e);
    assert_int_equal(aw_engine_add_kind(e, &aw_kind_sleep, true), 0);
    assert_int_equal(aw_engine_set_queue(e, "one", 1), 0);
    return e;
}

/* Opens, starts and loads the store into f->e, in the daemon's order
 * (daemon/main.c open_store): the store listens while it loads, so
 * what the restart changes is written back. */
static void start_store(struct fx *f)
{
    char err[512] = "";
    f->ncommits = 0;
    if (aw_store_open(f->dir, AW_SYNC_NORMAL, &f->s, err, sizeof err) < 0)
        fail_msg("open: %s", err);
    aw_store_on_commit(f->s, on_commit, f);
    if (aw_store_start(f->s, f->base, f->e, err, sizeof err) < 0)
        fail_msg("start: %s", err);
    if (aw_store_load(f->s, f->e, RETENTION_MS, &f->loaded, on_warn, f, err, sizeof err) < 0)
        fail_msg("load: %s", err);
}

/* The restart: close the store, free the engine, and read everything
 * back into a fresh one. */
static void restart(struct fx *f)
{
    aw_store_close(f->s);
    f->s = NULL;
    aw_engine_free(f->e);
    f->e = engine(f->base);
    start_store(f);
}

static int setup(void **state)
{
    fake_clock_start(T0_WALL);
    struct fx *f = calloc(1, sizeof *f);
    if (!f || !(f->base = event_base_new()))
        return -1;
    snprintf(f->tmp, sizeof f->tmp, "/tmp/awaitd-test-store-XXXXXX");
    if (!mkdtemp(f->tmp))
        return -1;
    snprintf(f->dir, sizeof f->dir, "%s/state", f->tmp);
    snprintf(f->db, sizeof f->db, "%s/%s", f->dir, AW_STORE_FILE);
    f->e = engine(f->base);
    *state = f;
    return 0;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    struct fx *f = *state;
    aw_store_close(f->s);
    aw_engine_free(f->e);
    event_base_free(f->base);
    nftw(f->tmp, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    fake_clock_stop();
    return 0;
}

/* ---- driving the loop ---- */

static void expired_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    *(bool *)arg = true;
}

/* Runs the loop until done(f, arg), or fails after DEADLINE_MS. */
static void run_until(struct fx *f, bool (*done)(struct fx *, uint64_t), uint64_t arg,
                      const char *what)
{
    bool expired = false;
    struct event *deadline = evtimer_new(f->base, expired_cb, &expired);
    struct timeval tv = { DEADLINE_MS / 1000, 0 };
    assert_non_null(deadline);
    evtimer_add(deadline, &tv);
    while (!done(f, arg) && !expired)
        event_base_loop(f->base, EVLOOP_ONCE);
    event_free(deadline);
    if (expired)
        fail_msg("%s did not happen within %d ms", what, DEADLINE_MS);
}

/* Some commit callback reported batch seq, committed or failed. */
static bool reported(struct fx *f, uint64_t seq)
{
    for (size_t i = 0; i < f->ncommits; i++)
        if (f->commits[i].first <= seq && seq <= f->commits[i].last)
            return true;
    return false;
}

static bool failed_once(struct fx *f, uint64_t from)
{
    for (size_t i = from; i < f->ncommits; i++)
        if (!f->commits[i].ok)
            return true;
    return false;
}

static bool ok_once(struct fx *f, uint64_t from)
{
    for (size_t i = from; i < f->ncommits; i++)
        if (f->commits[i].ok)
            return true;
    return false;
}

/* Commits everything changed so far and returns its batch number. */
static uint64_t commit(struct fx *f)
{
    uint64_t seq = aw_store_barrier(f->s);
    assert_true(seq > 0);
    run_until(f, reported, seq, "the commit");
    assert_true(aw_store_durable(f->s) >= seq);
    return seq;
}

/* Waits for the next commit callback that fails. */
static struct commit *next_failure(struct fx *f)
{
    size_t from = f->ncommits;
    run_until(f, failed_once, from, "a failed commit");
    size_t i = from;
    while (f->commits[i].ok)
        i++;
    return &f->commits[i];
}

static void next_success(struct fx *f)
{
    run_until(f, ok_once, f->ncommits, "a successful commit");
}

/* ---- tasks ---- */

static aw_task_t *create_spec(struct fx *f, aw_task_spec_t *spec, json_t *args)
{
    assert_non_null(args);
    spec->kind = spec->kind ? spec->kind : "sleep";
    spec->args = args;
    aw_task_t *t = NULL;
    char err[256] = "";
    int rc = aw_task_create(f->e, spec, &t, err, sizeof err);
    json_decref(args);
    if (rc != 0)
        fail_msg("create failed: %d: %s", rc, err);
    return t;
}

static aw_task_t *sleep_task(struct fx *f, int seconds, const char *queue)
{
    aw_task_spec_t spec = { .queue = queue, .timeout_ms = -1 };
    return create_spec(f, &spec, json_pack("{s:i}", "seconds", seconds));
}

static aw_task_t *held_sleep(struct fx *f, int seconds, const char *key)
{
    aw_task_spec_t spec = { .timeout_ms = -1, .idempotency_key = key, .hold = true };
    return create_spec(f, &spec, json_pack("{s:i}", "seconds", seconds));
}

static json_t *json_of(const aw_task_t *t)
{
    aw_buf_t b;
    aw_buf_init(&b);
    aw_task_write_json(&b, t);
    assert_false(aw_buf_failed(&b));
    aw_buf_addc(&b, '\0');
    char *s = aw_buf_steal(&b, NULL);
    json_error_t jerr;
    json_t *o = json_loads(s, 0, &jerr);
    if (!o)
        fail_msg("task JSON does not parse: %s: %s", jerr.text, s);
    free(s);
    return o;
}

static void assert_json_equal(json_t *a, json_t *b)
{
    if (!json_equal(a, b)) {
        char *x = json_dumps(a, JSON_SORT_KEYS), *y = json_dumps(b, JSON_SORT_KEYS);
        fail_msg("JSON differs:\n  %s\n  %s", x, y);
    }
}

/* ---- reading the database ---- */

static sqlite3 *disk_open(struct fx *f)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        fail_msg("cannot open %s read-only: %s", f->db, db ? sqlite3_errmsg(db) : "?");
    sqlite3_busy_timeout(db, DEADLINE_MS);
    return db;
}

/* Runs sql (with ?1 = arg when arg is set) and returns the first column
 * of the first row as text (caller frees), or NULL when there is no row. */
static char *disk_text(struct fx *f, const char *sql, const char *arg)
{
    sqlite3 *db = disk_open(f);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    if (arg)
        sqlite3_bind_text(st, 1, arg, -1, SQLITE_TRANSIENT);
    char *out = NULL;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        out = strdup(sqlite3_column_type(st, 0) == SQLITE_NULL
                     ? "NULL" : (const char *)sqlite3_column_text(st, 0));
    else if (rc != SQLITE_DONE)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

static long disk_count(struct fx *f, const char *id)
{
    char *n = disk_text(f, id ? "SELECT count(*) FROM tasks WHERE id = ?1"
                              : "SELECT count(*) FROM tasks", id);
    assert_non_null(n);
    long v = strtol(n, NULL, 10);
    free(n);
    return v;
}

/* Checks that column col of task id's row is want ("NULL" for NULL). */
static void assert_disk(struct fx *f, const char *id, const char *col, const char *want)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT %s FROM tasks WHERE id = ?1", col);
    char *v = disk_text(f, sql, id);
    if (!v)
        fail_msg("task %s is not on disk", id);
    if (strcmp(v, want) != 0)
        fail_msg("task %s: %s is '%s' on disk, want '%s'", id, col, v, want);
    free(v);
}

/* Writes a file with these bytes. */
static void write_file(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

/* Runs SQL on a database file outside the store. */
static void sql_on(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
        fail_msg("%s: %s", sql, msg);
    sqlite3_close(db);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static size_t entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    for (struct dirent *de; (de = readdir(d));)
        n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    closedir(d);
    return n;
}

/* ---- opening ---- */

static void open_creates_the_dir_and_a_database_of_this_schema(void **state)
{
    struct fx *f = *state;
    assert_false(exists(f->dir));
    char err[256] = "";
    assert_int_equal(aw_store_check(f->dir, err, sizeof err), 0);
    assert_false(exists(f->dir));               /* check creates nothing */
    start_store(f);
    struct stat st;
    assert_int_equal(stat(f->dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_true(exists(f->db));
    char *v = disk_text(f, "PRAGMA user_version", NULL);
    char want[16];
    snprintf(want, sizeof want, "%d", AW_STORE_SCHEMA);
    assert_string_equal(v, want);
    free(v);
    assert_int_equal(disk_count(f, NULL), 0);
    aw_store_info_t info;
    aw_store_info(f->s, &info);
    assert_string_equal(info.path, f->db);
    assert_int_equal(info.sync, AW_SYNC_NORMAL);
    assert_int_equal(f->loaded.tasks, 0);
    /* A store that is open and healthy passes the check as well. */
    assert_int_equal(aw_store_check(f->dir, err, sizeof err), 0);
}

static void a_second_open_of_the_same_dir_is_refused(void **state)
{
    struct fx *f = *state;
    start_store(f);
    aw_store_t *other = NULL;
    char err[512] = "";
    assert_int_equal(aw_store_open(f->dir, AW_SYNC_FULL, &other, err, sizeof err), -1);
    assert_null(other);
    if (!strstr(err, "in use by another awaitd") || !strstr(err, f->dir))
        fail_msg("unexpected message: %s", err);
    char pid[32];
    snprintf(pid, sizeof pid, "(pid %ld)", (long)getpid());
    assert_non_null(strstr(err, pid));
    /* Once the first is closed, the directory is free, and passes the
     * check as it is left. */
    aw_store_close(f->s);
    f->s = NULL;
    size_t n = entries(f->dir);
    assert_int_equal(aw_store_check(f->dir, err, sizeof err), 0);
    assert_int_equal(entries(f->dir), n);
    assert_int_equal(aw_store_open(f->dir, AW_SYNC_FULL, &other, err, sizeof err), 0);
    aw_store_close(other);
}

/* Both open and check refuse dir with a one-line message that names
 * `names` and contains `says` (with `same`, the very same message). */
static void assert_refused(const char *dir, const char *names, const char *says, bool same)
{
    char err[1024] = "", cerr[1024] = "";
    aw_store_t *s = NULL;
    assert_int_equal(aw_store_open(dir, AW_SYNC_NORMAL, &s, err, sizeof err), -1);
    assert_null(s);
    if (!err[0] || strchr(err, '\n') || !strstr(err, names) || !strstr(err, says))
        fail_msg("open %s: want one line naming %s and saying '%s', got: %s",
                 dir, names, says, err);
    assert_int_equal(aw_store_check(dir, cerr, sizeof cerr), -1);
    if (!cerr[0] || strchr(cerr, '\n') || !strstr(cerr, names) || !strstr(cerr, says))
        fail_msg("check %s: want one line naming %s and saying '%s', got: %s",
                 dir, names, says, cerr);
    if (same)
        assert_string_equal(err, cerr);
}

static void bad_directories_and_databases_are_refused_in_one_line(void **state)
{
    struct fx *f = *state;
    char dir[256], db[300];

    /* A missing parent: nothing is created on the way. */
    snprintf(dir, sizeof dir, "%s/nope/state", f->tmp);
    assert_refused(dir, dir, "does not exist", true);
    snprintf(db, sizeof db, "%s/nope", f->tmp);
    assert_false(exists(db));

    /* A regular file where the directory should be. */
    snprintf(dir, sizeof dir, "%s/file", f->tmp);
    write_file(dir, "x", 1);
    assert_refused(dir, dir, "not a directory", true);

    /* state.db is not a database. */
    snprintf(dir, sizeof dir, "%s/corrupt", f->tmp);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(db, sizeof db, "%s/%s", dir, AW_STORE_FILE);
    char garbage[8192];
    for (size_t i = 0; i < sizeof garbage; i++)
        garbage[i] = (char)(i * 7 + 3);
    write_file(db, garbage, sizeof garbage);
    size_t n = entries(dir);
    char cerr[512];
    assert_int_equal(aw_store_check(dir, cerr, sizeof cerr), -1);
    assert_int_equal(entries(dir), n);          /* check made no file */
    assert_refused(dir, db, "not a database", false);

    /* A database of a newer awaitd. */
    snprintf(dir, sizeof dir, "%s/newer", f->tmp);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(db, sizeof db, "%s/%s", dir, AW_STORE_FILE);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d;", AW_STORE_SCHEMA + 1);
    sql_on(db, sql);
    n = entries(dir);
    assert_int_equal(aw_store_check(dir, cerr, sizeof cerr), -1);
    assert_int_equal(entries(dir), n);
    assert_refused(dir, db, "newer than this awaitd", true);
}

static void a_database_that_is_not_awaitds_is_refused_in_one_line(void **state)
{
    struct fx *f = *state;
    /* Schema version 0 but a table "tasks" of someone else's: creating
     * the schema fails, and the message must still be one line. */
    assert_int_equal(mkdir(f->dir, 0700), 0);
    sql_on(f->db, "CREATE TABLE tasks (x);");
    char err[1024] = "";
    aw_store_t *s = NULL;
    assert_int_equal(aw_store_open(f->dir, AW_SYNC_NORMAL, &s, err, sizeof err), -1);
    if (strchr(err, '\n') || !strstr(err, f->db))
        fail_msg("want one line naming %s, got: %s", f->db, err);
}

static void check_of_an_empty_dir_creates_nothing(void **state)
{
    struct fx *f = *state;
    assert_int_equal(mkdir(f->dir, 0700), 0);
    char err[256] = "";
    assert_int_equal(aw_store_check(f->dir, err, sizeof err), 0);
    assert_int_equal(entries(f->dir), 0);
}

static void check_reads_a_dir_whose_name_has_uri_characters(void **state)
{
    struct fx *f = *state;
    /* aw_store_check opens the database by URI: these must not confuse it. */
    snprintf(f->dir, sizeof f->dir, "%s/a %%41?b#c", f->tmp);
    snprintf(f->db, sizeof f->db, "%s/%s", f->dir, AW_STORE_FILE);
    start_store(f);
    aw_store_close(f->s);
    f->s = NULL;
    char err[512] = "";
    size_t n = entries(f->dir);
    if (aw_store_check(f->dir, err, sizeof err) != 0)
        fail_msg("check: %s", err);
    assert_int_equal(entries(f->dir), n);
    /* ... and it reads that very file: one of a newer schema is refused. */
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d;", AW_STORE_SCHEMA + 1);
    sql_on(f->db, sql);
    assert_int_equal(aw_store_check(f->dir, err, sizeof err), -1);
    assert_non_null(strstr(err, "newer"));
}

/* ---- what survives a restart ---- */

static void every_field_survives_a_restart(void **state)
{
    struct fx *f = *state;
    start_store(f);
    aw_task_t *t[6];
    aw_task_spec_t spec = { .name = "alpha", .idempotency_key = "k-alpha", .timeout_ms = -1 };
    t[0] = create_spec(f, &spec, json_pack("{s:i, s:{s:[i,s,b]}}", "seconds", 0,
                                           "result", "xs", 1, "two", 1));
    spec = (aw_task_spec_t){ .name = "b \"quoted\" \xc3\xa9", .timeout_ms = 90000 };
    t[1] = create_spec(f, &spec, json_pack("{s:i, s:s}", "seconds", 0, "fail", "boom"));
    spec = (aw_task_spec_t){ .timeout_ms = 500, .idempotency_key = "k-slow" };
    t[2] = create_spec(f, &spec, json_pack("{s:f}", "seconds", 1.5));
    /* The running one holds queue "one"; the pending one waits behind. */
    spec = (aw_task_spec_t){ .name = "runner", .queue = "one", .timeout_ms = -1,
                             .idempotency_key = "k-run" };
    t[3] = create_spec(f, &spec, json_pack("{s:i}", "seconds", 3600));
    spec = (aw_task_spec_t){ .queue = "one", .timeout_ms = 5000, .idempotency_key = "k-pend" };
    t[4] = create_spec(f, &spec, json_pack("{s:i, s:s}", "seconds", 1, "result", "later"));
    t[5] = sleep_task(f, 3600, NULL);
    assert_int_equal(aw_task_cancel(f->e, t[5]), 0);
    fake_clock_advance(f->e, 500);
    assert_int_equal(t[2]->state, AW_TIMED_OUT);
    assert_int_equal(t[3]->state, AW_RUNNING);
    assert_int_equal(t[4]->state, AW_PENDING);
    commit(f);

    json_t *before[6];
    char id[6][AW_TASK_ID_SIZE];
    for (int i = 0; i < 6; i++) {
        before[i] = json_of(t[i]);
        memcpy(id[i], t[i]->id, AW_TASK_ID_SIZE);
    }
    fake_clock_advance(f->e, 1500);
    int64_t restart_at = wall_now;
    restart(f);
    assert_int_equal(f->loaded.tasks, 6);
    assert_int_equal(f->loaded.expired, 0);
    assert_int_equal(f->loaded.skipped, 0);

    aw_task_t *r[6];
    for (int i = 0; i < 6; i++) {
        r[i] = aw_task_find(f->e, id[i]);
        if (!r[i])
            fail_msg("task %d (%s) did not come back", i, id[i]);
    }
    /* Finished tasks come back exactly. */
    for (int i = 0; i < 6; i++) {
        if (i == 3 || i == 4)
            continue;
        json_t *after = json_of(r[i]);
        assert_json_equal(before[i], after);
        json_decref(after);
    }
    assert_string_equal(aw_task_error_message(r[1]), "boom");
    assert_int_equal(r[1]->timeout_ms, 90000);
    /* The running one ends interrupted; the pending one gets the slot.
     * Everything else about them is as it was. */
    static const char *const changed[] = { "state", "done", "started_at", "finished_at",
                                           "error" };
    for (int i = 3; i <= 4; i++) {
        json_t *after = json_of(r[i]);
        for (size_t k = 0; k < sizeof changed / sizeof changed[0]; k++) {
            json_object_del(before[i], changed[k]);
            json_object_del(after, changed[k]);
        }
        assert_json_equal(before[i], after);
        json_decref(after);
    }
    assert_int_equal(r[3]->state, AW_FAILED);
    assert_int_equal(r[3]->error_type, AW_ERR_INTERRUPTED);
    assert_string_equal(aw_task_error_message(r[3]), INTERRUPTED);
    assert_int_equal(r[3]->started_at, T0_WALL);
    assert_int_equal(r[3]->finished_at, restart_at);
    assert_int_equal(r[4]->state, AW_RUNNING);
    assert_int_equal(r[4]->started_at, restart_at);
    assert_int_equal(r[4]->timeout_ms, 5000);
    /* Keys find their tasks again. */
    static const char *const keys[] = { "k-alpha", NULL, "k-slow", "k-run", "k-pend", NULL };
    for (int i = 0; i < 6; i++)
        if (keys[i])
            assert_ptr_equal(aw_task_find_idempotent(f->e, keys[i]), r[i]);
    /* The order is the same, and new ids sort after the old. */
    aw_task_t *x = aw_task_after(f->e, NULL);
    for (int i = 0; i < 6; i++, x = aw_task_next(x))
        assert_ptr_equal(x, r[i]);
    assert_null(x);
    aw_task_t *fresh = sleep_task(f, 0, NULL);
    assert_true(strcmp(fresh->id, id[5]) > 0);
    /* What the restart changed is written back. */
    commit(f);
    assert_disk(f, id[3], "state", "failed");
    assert_disk(f, id[3], "error_type", "interrupted");
    assert_disk(f, id[4], "state", "running");
    assert_disk(f, id[0], "name", "alpha");
    assert_disk(f, id[0], "result", "{\"xs\":[1,\"two\",true]}");
    assert_disk(f, id[2], "timeout_ms", "500");
    assert_disk(f, id[5], "timeout_ms", "NULL");
    for (int i = 0; i < 6; i++)
        json_decref(before[i]);
}

/* ---- group commit ---- */

static void creates_of_one_loop_turn_share_one_batch(void **state)
{
    struct fx *f = *state;
    start_store(f);
    enum { N = 50 };
    assert_int_equal(aw_store_barrier(f->s), 0);        /* nothing changed yet */
    assert_int_equal(aw_store_durable(f->s), 0);
    uint64_t seq = 0;
    for (int i = 0; i < N; i++) {
        sleep_task(f, 3600, NULL);
        uint64_t b = aw_store_barrier(f->s);
        if (i == 0)
            seq = b;
        assert_int_equal(b, seq);
    }
    assert_true(seq > 0);
    assert_true(aw_store_durable(f->s) < seq);
    run_until(f, reported, seq, "the commit");
    assert_int_equal(f->ncommits, 1);
    assert_true(f->commits[0].ok);
    assert_true(f->commits[0].first <= seq && seq <= f->commits[0].last);
    assert_int_equal(f->commits[0].durable, seq);
    assert_int_equal(aw_store_durable(f->s), seq);
    aw_store_info_t info;
    aw_store_info(f->s, &info);
    assert_int_equal(info.commits, 1);
    assert_int_equal(info.records, N);
    assert_int_equal(info.batch[3], 1);                 /* 16 < 50 <= 64 */
    assert_int_equal(disk_count(f, NULL), N);
    /* Nothing is left over: the barrier stays where it was. */
    assert_int_equal(aw_store_barrier(f->s), seq);

    /* The next change goes into the next batch. */
    sleep_task(f, 3600, NULL);
    uint64_t next = aw_store_barrier(f->s);
    assert_true(next > seq);
    run_until(f, reported, next, "the second commit");
    assert_int_equal(f->ncommits, 2);
    assert_int_equal(aw_store_durable(f->s), next);
    assert_int_equal(f->commits[1].durable, next);
    assert_int_equal(disk_count(f, NULL), N + 1);
}

/* ---- held creates ---- */

static void a_held_create_is_released_at_its_commit(void **state)
{
    struct fx *f = *state;
    start_store(f);
    aw_task_t *t = held_sleep(f, 3600, "k-held");
    assert_true(t->held);
    assert_null(aw_task_find(f->e, t->id));
    assert_ptr_equal(aw_task_find_idempotent(f->e, "k-held"), t);
    uint64_t seq = aw_store_barrier(f->s);
    f->watched = t;
    f->held_at_commit = true;
    run_until(f, reported, seq, "the commit");
    f->watched = NULL;
    assert_true(f->commits[0].ok);
    /* Released before the callback ran (an answer sent from the callback
     * shows a task that others can find). */
    assert_false(f->held_at_commit);
    assert_false(t->held);
    assert_ptr_equal(aw_task_find(f->e, t->id), t);
    assert_int_equal(disk_count(f, t->id), 1);
    assert_disk(f, t->id, "idempotency_key", "k-held");
}

static void a_failed_commit_discards_the_held_create_and_a_retry_recovers(void **state)
{
    struct fx *f = *state;
    start_store(f);
    aw_task_t *before = sleep_task(f, 3600, NULL);
    commit(f);
    uint64_t durable = aw_store_durable(f->s);

    aw_store_fail_writes(f->s, true);
    aw_task_t *t = held_sleep(f, 3600, "k-lost");
    char id[AW_TASK_ID_SIZE];
    memcpy(id, t->id, sizeof id);
    aw_task_ref(t);
    struct commit *c = next_failure(f);
    assert_non_null(strstr(c->message, f->db));
    assert_non_null(strstr(c->message, "full"));
    assert_int_equal(c->durable, durable);              /* durable stops */
    assert_true(aw_store_failing(f->s));
    /* The create is undone: gone from the table, its key free. */
    assert_false(t->listed);
    aw_task_unref(t);
    assert_null(aw_task_find_idempotent(f->e, "k-lost"));
    assert_null(aw_task_find(f->e, id));
    assert_ptr_equal(aw_task_after(f->e, NULL), before);
    assert_null(aw_task_next(before));
    aw_store_info_t info;
    aw_store_info(f->s, &info);
    assert_int_equal(info.failures, 1);
    assert_true(info.failing);

    /* A change made while failing waits for the retry. */
    aw_task_t *during = sleep_task(f, 3600, NULL);
    aw_store_fail_writes(f->s, false);
    next_success(f);
    assert_false(aw_store_failing(f->s));
    uint64_t seq = aw_store_barrier(f->s);
    if (!reported(f, seq))
        run_until(f, reported, seq, "the commit after the retry");
    assert_true(aw_store_durable(f->s) > durable);
    aw_store_info(f->s, &info);
    assert_false(info.failing);
    assert_int_equal(info.failures, 1);
    /* Nothing of the discarded task reached the disk; the rest did. */
    assert_int_equal(disk_count(f, id), 0);
    assert_int_equal(disk_count(f, before->id), 1);
    assert_int_equal(disk_count(f, during->id), 1);
    assert_int_equal(disk_count(f, NULL), 2);
}

static void a_failing_store_retries_until_writes_succeed(void **state)
{
    struct fx *f = *state;
    start_store(f);
    aw_store_fail_writes(f->s, true);
    aw_task_t *t = sleep_task(f, 3600, NULL);
    next_failure(f);
    next_failure(f);                                    /* the retry fails too */
    assert_true(aw_store_failing(f->s));
    assert_int_equal(disk_count(f, NULL), 0);
    aw_store_fail_writes(f->s, false);
    next_success(f);
    assert_false(aw_store_failing(f->s));
    assert_int_equal(disk_count(f, t->id), 1);
    aw_store_info_t info;
    aw_store_info(f->s, &info);
    assert_int_equal(info.failures, 2);
    assert_true(info.commits >= 1);
}

/* Ends the loop turn in which it is activated, after the callbacks
 * activated before it: the test sees the base as that turn left it. */
static void break_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

static void run_what_is_active(struct fx *f, struct event *brk)
{
    event_active(brk, EV_TIMEOUT, 0);
    event_base_loop(f->base, EVLOOP_NONBLOCK);
}

/* Counts events without an fd that are active for EV_READ: the store's
 * flush event is the only such event here (its retry timer and the
 * engine's timer are timeouts, its commit event has the eventfd). */
static int count_flush(const struct event_base *base, const struct event *ev, void *arg)
{
    (void)base;
    if (event_get_fd(ev) == -1 && event_pending(ev, EV_READ, NULL))
        ++*(int *)arg;
    return 0;
}

/* A held task that changes while its batch is being committed (a short
 * sleep that ends meanwhile) waits in the dirty list for its release,
 * which marks it dirty again. The store must not keep its flush event
 * active for it meanwhile: libevent runs an event activated from its own
 * callback again in the same loop turn, so the loop would run the flush
 * forever and never poll for the commit that releases the task: the
 * daemon would hang at full CPU. */
static void a_held_task_that_changes_before_its_commit_does_not_stall_the_loop(void **state)
{
    struct fx *f = *state;
    start_store(f);
    struct event *brk = event_new(f->base, -1, 0, break_cb, f->base);
    assert_non_null(brk);
    aw_task_t *t = held_sleep(f, 1, NULL);
    uint64_t seq = aw_store_barrier(f->s);
    run_what_is_active(f, brk);                         /* the flush hands it over */
    assert_true(t->written);
    fake_clock_advance(f->e, 1000);                     /* ... and t ends meanwhile */
    assert_int_equal(t->state, AW_SUCCEEDED);
    assert_true(t->held);                               /* its commit is not in yet */
    run_what_is_active(f, brk);                         /* the flush keeps it back */
    int active = 0;
    event_base_foreach_event(f->base, count_flush, &active);
    event_free(brk);
    assert_int_equal(active, 0);
    /* The commit releases it, and it is written in its final state. */
    run_until(f, reported, seq, "the commit");
    assert_false(t->held);
    commit(f);
    assert_disk(f, t->id, "state", "succeeded");
}

static void a_store_closed_while_failing_lets_go_of_everything(void **state)
{
    struct fx *f = *state;
    start_store(f);
    aw_task_t *t = sleep_task(f, 3600, "one");
    aw_task_t *p = sleep_task(f, 3600, "one");
    commit(f);
    aw_store_fail_writes(f->s, true);
    held_sleep(f, 3600, "k");
    aw_task_ask(f->e, p, AW_ASK_CANCEL, true);
    aw_task_t *z = sleep_task(f, 0, NULL);
    assert_int_equal(aw_task_forget(f->e, z), 0);
    next_failure(f);
    /* Close tries once more, fails again, and returns: no hang, and
     * (under LeakSanitizer) no reference left behind. What was committed
     * before the failure is what the next start finds. */
    char id[2][AW_TASK_ID_SIZE];
    memcpy(id[0], t->id, AW_TASK_ID_SIZE);
    memcpy(id[1], p->id, AW_TASK_ID_SIZE);
    restart(f);
    assert_int_equal(f->loaded.tasks, 2);
    assert_non_null(aw_task_find(f->e, id[0]));
    assert_int_equal(aw_task_find(f->e, id[1])->state, AW_RUNNING);
    assert_null(aw_task_find_idempotent(f->e, "k"));
}

/* ---- cancel and delete marks ---- */

static void a_cancel_mark_takes_effect_at_its_commit(void **state)
{
    struct fx *f = *state;
    start_store(f);
    sleep_task(f, 3600, "one");
    aw_task_t *t = sleep_task(f, 3600, "one");
    commit(f);
    assert_int_equal(t->state, AW_PENDING);
    aw_task_ask(f->e, t, AW_ASK_CANCEL, true);
    assert_int_equal(t->state, AW_PENDING);             /* not before its commit */
    uint64_t seq = aw_store_barrier(f->s);
    run_until(f, reported, seq, "the commit");
    assert_int_equal(t->state, AW_CANCELLED);
    assert_int_equal(t->error_type, AW_ERR_CANCELLED);
    assert_false(t->cancel_asked);
    assert_disk(f, t->id, "state", "cancelled");
    assert_disk(f, t->id, "error_type", "cancelled");
    commit(f);                                          /* and it stays so */
    assert_disk(f, t->id, "state", "cancelled");
}

static void a_cancel_mark_is_dropped_when_its_commit_fails(void **state)
{
    struct fx *f = *state;
    start_store(f);
    sleep_task(f, 3600, "one");
    aw_task_t *t = sleep_task(f, 3600, "one");
    commit(f);
    aw_store_fail_writes(f->s, true);
    aw_task_ask(f->e, t, AW_ASK_CANCEL, true);
    next_failure(f);
    assert_int_equal(t->state, AW_PENDING);
    assert_false(t->cancel_asked);
    aw_store_fail_writes(f->s, false);
    next_success(f);
    assert_int_equal(t->state, AW_PENDING);
    assert_disk(f, t->id, "state", "pending");
}

static void a_delete_mark_takes_effect_at_its_commit(void **state)
{
    struct fx *f = *state;
    start_store(f);
    aw_task_t *t = sleep_task(f, 0, NULL);
    commit(f);
    char id[AW_TASK_ID_SIZE];
    memcpy(id, t->id, sizeof id);
    assert_int_equal(disk_count(f, id), 1);
    aw_task_ref(t);
    aw_task_ask(f->e, t, AW_ASK_FORGET, true);
    assert_ptr_equal(aw_task_find(f->e, id), t);        /* not before its commit */
    uint64_t seq = aw_store_barrier(f->s);
    run_until(f, reported, seq, "the commit");
    assert_false(t->listed);
    aw_task_unref(t);
    assert_null(aw_task_find(f->e, id));
    assert_int_equal(disk_count(f, id), 0);
    commit(f);
    assert_int_equal(disk_count(f, id), 0);
}

static void a_delete_mark_is_dropped_when_its_commit_fails(void **state)
{
    struct fx *f = *state;
    start_store(f);
    aw_task_t *t = sleep_task(f, 0, NULL);
    commit(f);
    aw_store_fail_writes(f->s, true);
    aw_task_ask(f->e, t, AW_ASK_FORGET, true);
    next_failure(f);
    assert_ptr_equal(aw_task_find(f->e, t->id), t);
    assert_false(t->forget_asked);
    aw_store_fail_writes(f->s, false);
    next_success(f);
    assert_int_equal(disk_count(f, t->id), 1);
}

/* ---- meta, retention at load, info ---- */

static void meta_survives_a_restart(void **state)
{
    struct fx *f = *state;
    start_store(f);
    assert_int_equal(aw_store_meta_get(f->s, "events_next"), 0);
    assert_int_equal(aw_store_meta_set(f->s, "events_next", 1234567890123LL), 0);
    assert_int_equal(aw_store_meta_set(f->s, "other", -5), 0);
    assert_int_equal(aw_store_meta_set(f->s, "other", 7), 0);   /* the last wins */
    commit(f);
    restart(f);
    assert_int_equal(aw_store_meta_get(f->s, "events_next"), 1234567890123LL);
    assert_int_equal(aw_store_meta_get(f->s, "other"), 7);
    assert_int_equal(aw_store_meta_get(f->s, "never"), 0);
    char key[64];
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    assert_int_equal(aw_store_meta_set(f->s, key, 1), AW_EINVAL);
}

static void meta_set_while_writes_fail_is_written_by_the_retry(void **state)
{
    struct fx *f = *state;
    start_store(f);
    aw_store_fail_writes(f->s, true);
    assert_int_equal(aw_store_meta_set(f->s, "events_next", 99), 0);
    next_failure(f);
    aw_store_fail_writes(f->s, false);
    next_success(f);
    restart(f);
    assert_int_equal(aw_store_meta_get(f->s, "events_next"), 99);
}

/* A pause is a row of the queues table: restored before the tasks may
 * start, so a paused queue starts none of them after a restart. */
static void queue_pause_survives_a_restart_and_holds_restored_tasks(void **state)
{
    struct fx *f = *state;
    start_store(f);
    assert_int_equal(aw_engine_pause_queue(f->e, "one", true), 0);
    assert_int_equal(aw_store_queue_set(f->s, "one", true), 0);
    aw_task_t *a = sleep_task(f, 5, "one");
    assert_int_equal(a->state, AW_PENDING);
    char id[AW_TASK_ID_SIZE];
    memcpy(id, a->id, sizeof id);
    commit(f);
    restart(f);
    assert_true(aw_engine_queue(f->e, "one")->paused);
    aw_task_t *t = aw_task_find(f->e, id);
    assert_non_null(t);
    assert_int_equal(t->state, AW_PENDING);
    assert_int_equal(aw_engine_pause_queue(f->e, "one", false), 0);
    assert_int_equal(aw_store_queue_set(f->s, "one", false), 0);
    assert_int_equal(t->state, AW_RUNNING);
    commit(f);
    restart(f);
    assert_false(aw_engine_queue(f->e, "one")->paused);
}

static void queue_pause_while_writes_fail_is_written_by_the_retry(void **state)
{
    struct fx *f = *state;
    start_store(f);
    aw_store_fail_writes(f->s, true);
    assert_int_equal(aw_engine_pause_queue(f->e, "one", true), 0);
    assert_int_equal(aw_store_queue_set(f->s, "one", true), 0);
    next_failure(f);
    aw_store_fail_writes(f->s, false);
    next_success(f);
    restart(f);
    assert_true(aw_engine_queue(f->e, "one")->paused);
    /* The retry writes the queue as it is then: a resume made while the
     * pause's batch failed wins. */
    aw_store_fail_writes(f->s, true);
    assert_int_equal(aw_engine_pause_queue(f->e, "one", false), 0);
    assert_int_equal(aw_store_queue_set(f->s, "one", false), 0);
    next_failure(f);
    aw_store_fail_writes(f->s, false);
    next_success(f);
    restart(f);
    assert_false(aw_engine_queue(f->e, "one")->paused);
}

/* Priorities and not_before come back, and the restored heap keeps the
 * order (priority, then id) whatever order the rows are read in. */
static void priority_and_not_before_survive_a_restart(void **state)
{
    struct fx *f = *state;
    start_store(f);
    assert_int_equal(aw_engine_pause_queue(f->e, "one", true), 0);
    assert_int_equal(aw_store_queue_set(f->s, "one", true), 0);
    int prio[] = { -3, 40, 0, 40 };
    char ids[4][AW_TASK_ID_SIZE];
    for (int i = 0; i < 4; i++) {
        aw_task_spec_t spec = { .queue = "one", .timeout_ms = -1, .priority = prio[i] };
        aw_task_t *t = create_spec(f, &spec, json_pack("{s:i}", "seconds", 1));
        memcpy(ids[i], t->id, sizeof ids[i]);
    }
    int64_t nb = aw_clock_wall_ms() + 3600000;
    aw_task_spec_t spec = { .timeout_ms = -1, .not_before = nb };
    aw_task_t *d = create_spec(f, &spec, json_pack("{s:i}", "seconds", 1));
    char did[AW_TASK_ID_SIZE];
    memcpy(did, d->id, sizeof did);
    commit(f);
    restart(f);
    d = aw_task_find(f->e, did);
    assert_non_null(d);
    assert_int_equal(d->state, AW_PENDING);
    assert_int_equal(aw_task_not_before(d), nb);
    assert_int_equal(aw_engine_queue(f->e, "default")->ndelayed, 1);
    int want[] = { 1, 3, 2, 0 };
    for (int i = 0; i < 4; i++) {
        aw_task_t *t = aw_task_find(f->e, ids[want[i]]);
        assert_non_null(t);
        assert_int_equal(t->priority, prio[want[i]]);
    }
    aw_task_t *top = aw__queue_peek(aw_engine_queue(f->e, "one"));
    assert_string_equal(top->id, ids[1]);
}

static void load_deletes_finished_tasks_past_retention(void **state)
{
    struct fx *f = *state;
    start_store(f);
    aw_task_t *old = sleep_task(f, 0, NULL);            /* finished at T0 */
    fake_clock_advance(f->e, 30000);
    aw_task_t *recent = sleep_task(f, 0, NULL);         /* at T0 + 30 s */
    aw_task_t *run = sleep_task(f, 3600, NULL);
    char ids[3][AW_TASK_ID_SIZE];
    memcpy(ids[0], old->id, AW_TASK_ID_SIZE);
    memcpy(ids[1], recent->id, AW_TASK_ID_SIZE);
    memcpy(ids[2], run->id, AW_TASK_ID_SIZE);
    commit(f);
    aw_store_close(f->s);
    f->s = NULL;
    aw_engine_free(f->e);
    f->e = engine(f->base);
    /* The daemon was down for a while: the old task's time is up. */
    wall_now = T0_WALL + RETENTION_MS + 1;
    start_store(f);
    assert_int_equal(f->loaded.expired, 1);
    assert_int_equal(f->loaded.tasks, 2);
    assert_int_equal(f->loaded.skipped, 0);
    assert_null(aw_task_find(f->e, ids[0]));
    assert_non_null(aw_task_find(f->e, ids[1]));
    assert_non_null(aw_task_find(f->e, ids[2]));
    assert_int_equal(disk_count(f, ids[0]), 0);
    assert_int_equal(disk_count(f, ids[1]), 1);
    /* The recent one is forgotten when its own retention ends. */
    fake_clock_advance(f->e, 30000 - 2);
    assert_non_null(aw_task_find(f->e, ids[1]));
    fake_clock_advance(f->e, 1);
    assert_null(aw_task_find(f->e, ids[1]));
    commit(f);
    assert_int_equal(disk_count(f, ids[1]), 0);
    assert_int_equal(disk_count(f, NULL), 1);
}

static void load_keeps_rows_it_cannot_read_back(void **state)
{
    struct fx *f = *state;
    start_store(f);
    aw_task_t *t = sleep_task(f, 0, NULL);
    char id[AW_TASK_ID_SIZE];
    memcpy(id, t->id, sizeof id);
    commit(f);
    aw_store_close(f->s);
    f->s = NULL;
    /* A kind this awaitd does not have (a newer one's, say). */
    sql_on(f->db, "UPDATE tasks SET kind = 'teleport'");
    aw_engine_free(f->e);
    f->e = engine(f->base);
    start_store(f);
    assert_int_equal(f->loaded.skipped, 1);
    assert_int_equal(f->loaded.tasks, 0);
    assert_null(aw_task_find(f->e, id));
    if (!strstr(f->warned, id) || !strstr(f->warned, "teleport"))
        fail_msg("the warning does not say which task and kind: %s", f->warned);
    assert_int_equal(disk_count(f, id), 1);
}

static void info_counts_commits_records_and_failures(void **state)
{
    struct fx *f = *state;
    start_store(f);
    aw_store_info_t info;
    aw_store_info(f->s, &info);
    assert_int_equal(info.commits, 0);
    assert_int_equal(info.records, 0);
    for (int i = 0; i < 3; i++)
        sleep_task(f, 3600, NULL);
    commit(f);
    aw_store_info(f->s, &info);
    assert_int_equal(info.commits, 1);
    assert_int_equal(info.records, 3);
    assert_int_equal(info.failures, 0);
    assert_true(info.bytes > 0);
    uint64_t nlat = 0;
    for (int i = 0; i <= AW_STORE_LATENCY_BUCKETS; i++)
        nlat += info.latency[i];
    assert_int_equal(nlat, 1);
    assert_int_equal(info.batch[1], 1);                 /* 1 < 3 <= 4 */
    assert_true(info.commit_ms_sum >= 0);
    aw_task_t *t = sleep_task(f, 0, NULL);
    /* Created and forgotten in one turn: only its delete is written. */
    assert_int_equal(aw_task_forget(f->e, t), 0);
    commit(f);
    aw_store_info(f->s, &info);
    assert_int_equal(info.commits, 2);
    assert_int_equal(info.records, 4);
    assert_int_equal(info.batch[0], 1);                 /* one record */
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(open_creates_the_dir_and_a_database_of_this_schema),
        T(queue_pause_survives_a_restart_and_holds_restored_tasks),
        T(queue_pause_while_writes_fail_is_written_by_the_retry),
        T(priority_and_not_before_survive_a_restart),
        T(a_second_open_of_the_same_dir_is_refused),
        T(bad_directories_and_databases_are_refused_in_one_line),
        T(a_database_that_is_not_awaitds_is_refused_in_one_line),
        T(check_of_an_empty_dir_creates_nothing),
        T(check_reads_a_dir_whose_name_has_uri_characters),
        T(every_field_survives_a_restart),
        T(creates_of_one_loop_turn_share_one_batch),
        T(a_held_create_is_released_at_its_commit),
        T(a_failed_commit_discards_the_held_create_and_a_retry_recovers),
        T(a_failing_store_retries_until_writes_succeed),
        T(a_store_closed_while_failing_lets_go_of_everything),
        T(a_held_task_that_changes_before_its_commit_does_not_stall_the_loop),
        T(a_cancel_mark_takes_effect_at_its_commit),
        T(a_cancel_mark_is_dropped_when_its_commit_fails),
        T(a_delete_mark_takes_effect_at_its_commit),
        T(a_delete_mark_is_dropped_when_its_commit_fails),
        T(meta_survives_a_restart),
        T(meta_set_while_writes_fail_is_written_by_the_retry),
        T(load_deletes_finished_tasks_past_retention),
        T(load_keeps_rows_it_cannot_read_back),
        T(info_counts_commits_records_and_failures),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
