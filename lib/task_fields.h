/*
 * task_fields.h — a chosen subset of the task object's fields, for
 * GET /v1/tasks?fields=id,state: a list of exec jobs need not carry their
 * output.
 *
 * A selection is a bit set over aw_task_json_fields (task_json.h), the
 * names the writer uses; `id` is always in it. The object is written by
 * the one writer there is (aw_task_write_json) and then cut down in
 * place, so every field the writer gains is selectable at once and no
 * second writer can drift from the first. The cost of a selected object
 * is therefore that of the whole object (one copy and one pass over its
 * bytes); what the selection saves is the answer's size, which is what
 * max_list_bytes bounds.
 */
#ifndef AW_TASK_FIELDS_H
#define AW_TASK_FIELDS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "task.h"

/* Bit i: aw_task_json_fields[i]. 0: the whole object. */
typedef uint64_t aw_task_fields_t;

/* Parses a comma-separated list of field names ("state,result"), each
 * exactly as the task object spells it; repeats are harmless. Returns 0
 * with *out set (id included), or AW_EINVAL with err naming the first
 * unknown or empty name (*out untouched). */
int aw_task_fields_parse(const char *list, aw_task_fields_t *out, char *err, size_t errlen);

/* Appends t's object with only the fields in sel (all when sel is 0), in
 * the object's own order. Check aw_buf_failed() once at the end. */
void aw_task_write_json_fields(aw_buf_t *b, const aw_task_t *t, aw_task_fields_t sel);

#endif
