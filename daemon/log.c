/*
 * log.c — one line per event on stderr (see log.h). In logfmt the message
 * is quoted with quotes and backslashes escaped, so every line stays one
 * parseable record. When stderr is journald's stream, the line is the
 * message behind a syslog priority prefix instead ("<6>listening on ..."):
 * journald strips the prefix into PRIORITY= and adds its own timestamp,
 * so `journalctl -p warning` works and nothing is said twice.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

static enum log_level current = LOG_LEVEL_INFO;
static const char *const names[] = { "error", "warn", "info", "debug" };
/* syslog priorities: LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG. */
static const char prio[] = { '3', '4', '6', '7' };
static bool journal;

void log_init(void)
{
    /* systemd sets JOURNAL_STREAM to "DEV:INODE" of the stream it gave the
     * service. Checking that it is still our stderr matters: the variable
     * is inherited by anything started from a service (a shell, a test
     * run) whose stderr may since have gone to a file or a terminal. */
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    char end;
    journal = js && sscanf(js, "%llu:%llu%c", &dev, &ino, &end) == 2 &&
              fstat(2, &st) == 0 && (unsigned long long)st.st_dev == dev &&
              (unsigned long long)st.st_ino == ino;
}

bool log_journal(void)
{
    return journal;
}

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
    size_t n;
    if (journal) {
        /* One journal entry per line: a newline in the message would start
         * a second entry without the prefix. */
        n = (size_t)snprintf(line, sizeof line, "<%c>", prio[level]);
        for (const char *p = msg; *p && n < sizeof line - 8; p++)
            line[n++] = *p == '\n' ? ' ' : *p;
        if (suffix)
            n += (size_t)snprintf(line + n, sizeof line - n, ": %s", suffix);
        n += (size_t)snprintf(line + n, sizeof line - n, "\n");
        fwrite(line, 1, n < sizeof line ? n : sizeof line - 1, stderr);
        return;
    }
    n = (size_t)snprintf(line, sizeof line, "level=%s msg=\"", names[level]);
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
