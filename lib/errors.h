/*
 * errors.h — the engine's error values.
 *
 * lib/ returns 0 or a negative code: -errno for system failures, or one of
 * the AW_E* values below for conditions a caller must tell apart. The HTTP
 * edge maps each to a status and a contract code in one table
 * (daemon/http_error.c); nothing in lib/ knows about statuses.
 */
#ifndef AW_ERRORS_H
#define AW_ERRORS_H

enum {
    AW_EBASE = -1000,
    AW_EINVAL = AW_EBASE,   /* malformed argument; the err buffer says which */
    AW_EJSON,               /* the body is not valid JSON */
    AW_EKIND,               /* unknown task kind */
    AW_EQUEUE,              /* unknown queue */
    AW_ENOTFOUND,           /* no task with that id */
    AW_EDONE,               /* the task already finished */
    AW_EACTIVE,             /* the task has not finished yet */
    AW_ECAPACITY,           /* max_tasks unfinished tasks are held already */
    AW_EDISABLED,           /* the kind is disabled by configuration */
    AW_EFORBIDDEN,          /* the kind refuses this program or host */
    AW_ENOOUTPUT,           /* the task's kind keeps no output */
    AW_ESTORAGE,            /* the store could not commit the change */
    AW_EBUDGET,             /* held tasks take max_task_bytes already */
    AW_ETOOBIG,             /* a result larger than max_result_bytes */
    AW_ENOQUEUE,            /* no queue of that name (GET/POST /v1/queues/{name}) */
    AW_EDEPENDENCY,         /* `after` names a task that does not exist */
    AW_ENOMEM_ = -12,       /* = -ENOMEM, listed here so the table names it */
};

/* A short English description of a code; never NULL. */
const char *aw_strerror(int code);

#endif
