/*
 * errors.c — descriptions of the engine's error codes (see errors.h).
 */
#include <string.h>

#include "errors.h"

const char *aw_strerror(int code)
{
    switch (code) {
    case 0:             return "success";
    case AW_EINVAL:     return "invalid argument";
    case AW_EJSON:      return "invalid JSON";
    case AW_EKIND:      return "unknown task kind";
    case AW_EQUEUE:     return "unknown queue";
    case AW_ENOTFOUND:  return "no such task";
    case AW_EDONE:      return "task already finished";
    case AW_EACTIVE:    return "task has not finished";
    case AW_ECAPACITY:  return "too many unfinished tasks";
    case AW_EDISABLED:  return "task kind disabled";
    case AW_EFORBIDDEN: return "not allowed";
    case AW_ENOOUTPUT:  return "task kind keeps no output";
    case AW_ESTORAGE:   return "the change could not be stored";
    case AW_EBUDGET:    return "held tasks take their whole memory budget";
    case AW_ETOOBIG:    return "result larger than max_result_bytes";
    case AW_ENOQUEUE:   return "no such queue";
    case AW_EDEPENDENCY: return "unknown dependency";
    }
    return code < 0 && code > AW_EBASE ? strerror(-code) : "unknown error";
}
