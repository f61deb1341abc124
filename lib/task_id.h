/*
 * task_id.h — task ids: "t_" followed by a 26-character ULID.
 *
 * A ULID is 48 bits of wall-clock milliseconds then 80 random bits, written
 * in Crockford base32, so ids are unique across restarts and compare as byte
 * strings in creation order (the contract's paging relies on it). Within one
 * millisecond the generator increments the random part, so order holds even
 * for ids made in the same millisecond; if the clock steps back, it keeps
 * using the last time it saw, so ids never go backwards within a process.
 */
#ifndef AW_TASK_ID_H
#define AW_TASK_ID_H

#include <stdbool.h>
#include <stdint.h>

#define AW_TASK_ID_LEN  28              /* "t_" + 26 */
#define AW_TASK_ID_SIZE 32              /* storage, NUL included */

typedef struct aw_task_id_gen {
    int64_t  last_ms;
    uint8_t  random[10];                /* big-endian 80-bit counter */
} aw_task_id_gen_t;

/* Seeds from getrandom(2). Returns 0 or -errno. */
int  aw_task_id_gen_init(aw_task_id_gen_t *g);
/* Writes the next id (NUL-terminated) into out. */
void aw_task_id_next(aw_task_id_gen_t *g, int64_t wall_ms,
                     char out[AW_TASK_ID_SIZE]);
/* True when s has the shape of a task id. */
bool aw_task_id_valid(const char *s);
/* The creation time (wall ms) encoded in a valid id. */
int64_t aw_task_id_time(const char *id);

#endif
