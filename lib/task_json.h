/*
 * task_json.h — the task object of the contract, written straight into a
 * buffer.
 *
 * Why not build a jansson tree and dump it: GET /v1/tasks/{id} is the
 * hottest path, and a tree costs a dozen allocations per request. args and
 * result are kept as compact JSON text already, so this writer only copies.
 * The store keeps a record of its own (task_record.h), not this text.
 */
#ifndef AW_TASK_JSON_H
#define AW_TASK_JSON_H

#include "buf.h"
#include "task.h"

/* Appends the task object. Check aw_buf_failed() once at the end. */
void aw_task_write_json(aw_buf_t *b, const aw_task_t *t);

/* The names of the task object's top-level fields, in the order written,
 * NULL-terminated: what GET /v1/tasks?fields= may name (task_fields.h).
 * A field added to the writer is added here too (test_task_fields checks). */
extern const char *const aw_task_json_fields[];

#endif
