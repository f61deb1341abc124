/*
 * log.c — logfmt lines on stderr (see log.h). The message is quoted with
 * quotes and backslashes escaped, so every line stays one parseable record.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static enum log_level current = LOG_LEVEL_INFO;
static const char *const names[] = { "error", "warn", "info", "debug" };

void log_set_level(enum log_level level)
{
    current = level;
}

int log_enabled(enum log_level level)
{
    return level <= current;
}

static void emit(enum log_level level, const char *suffix, const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof msg, fmt, ap);
    char line[2200];
    size_t n = (size_t)snprintf(line, sizeof line, "level=%s msg=\"", names[level]);
    for (const char *p = msg; *p && n < sizeof line - 8; p++) {
        if (*p == '"' || *p == '\\')
            line[n++] = '\\';
        line[n++] = *p == '\n' ? ' ' : *p;
    }
    if (suffix)
        n += (size_t)snprintf(line + n, sizeof line - n, ": %s", suffix);
    n += (size_t)snprintf(line + n, sizeof line - n, "\"\n");
    fwrite(line, 1, n < sizeof line ? n : sizeof line - 1, stderr);
}

#define LOG_BODY(level, suffix)                 \
    do {                                        \
        if (!log_enabled(level))                \
            return;                             \
        va_list ap;                             \
        va_start(ap, fmt);                      \
        emit(level, suffix, fmt, ap);           \
        va_end(ap);                             \
    } while (0)

void log_warn(const char *fmt, ...)
{
    const char *why = strerror(errno);
    LOG_BODY(LOG_LEVEL_WARN, why);
}

void log_warnx(const char *fmt, ...)  { LOG_BODY(LOG_LEVEL_WARN, NULL); }
void log_info(const char *fmt, ...)   { LOG_BODY(LOG_LEVEL_INFO, NULL); }
void log_debug(const char *fmt, ...)  { LOG_BODY(LOG_LEVEL_DEBUG, NULL); }

void fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(LOG_LEVEL_ERROR, NULL, fmt, ap);
    va_end(ap);
    exit(1);
}
