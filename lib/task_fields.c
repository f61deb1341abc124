/*
 * task_fields.c — the task object cut down to chosen fields (see
 * task_fields.h for why it is cut from the whole object, not written
 * field by field).
 */
#include <stdio.h>
#include <string.h>

#include "errors.h"
#include "json_text.h"
#include "task_fields.h"
#include "task_json.h"

/* The index of the field named s[0..len) in aw_task_json_fields, or -1. */
static int field_index(const char *s, size_t len)
{
    for (int i = 0; i < 64 && aw_task_json_fields[i]; i++)
        if (strlen(aw_task_json_fields[i]) == len &&
            memcmp(aw_task_json_fields[i], s, len) == 0)
            return i;
    return -1;
}

int aw_task_fields_parse(const char *list, aw_task_fields_t *out, char *err, size_t errlen)
{
    aw_task_fields_t sel = (aw_task_fields_t)1 << field_index("id", 2);
    const char *s = list;
    for (;;) {
        size_t len = strcspn(s, ",");
        int i = len ? field_index(s, len) : -1;
        if (i < 0) {
            /* Named in the answer, cut short: the name comes from the client. */
            if (len)
                snprintf(err, errlen, "fields: unknown field \"%.*s\"",
                         (int)(len > 64 ? 64 : len), s);
            else
                snprintf(err, errlen, "fields: an empty field name (the list is "
                         "comma-separated names of the task object, e.g. id,state)");
            return AW_EINVAL;
        }
        sel |= (aw_task_fields_t)1 << i;
        if (!s[len])
            break;
        s += len + 1;
    }
    *out = sel;
    return 0;
}

void aw_task_write_json_fields(aw_buf_t *b, const aw_task_t *t, aw_task_fields_t sel)
{
    size_t start = b->len;
    aw_task_write_json(b, t);
    if (!sel || aw_buf_failed(b))
        return;
    /* The writer's text is compact, its keys need no unescaping, and it
     * is well formed, so one pass moves each kept member left over the
     * dropped ones. memmove: a kept member may overlap where it goes. */
    char *p = b->data + start + 1, *end = b->data + b->len, *w = p;
    while (p < end && *p == '"') {
        const char *kend = aw_json_skip(p, end);
        const char *vend = kend && kend < end ? aw_json_skip(kend + 1, end) : NULL;
        if (!vend)
            break;                      /* cannot happen: the writer's own text */
        int i = field_index(p + 1, (size_t)(kend - p - 2));
        if (i >= 0 && (sel & ((aw_task_fields_t)1 << i))) {
            if (w > b->data + start + 1)
                *w++ = ',';
            size_t n = (size_t)(vend - p);
            memmove(w, p, n);
            w += n;
        }
        p = (char *)vend;
        if (p < end && *p == ',')
            p++;
    }
    *w++ = '}';
    b->len = (size_t)(w - b->data);
}
