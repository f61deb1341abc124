/*
 * log.h — logging for daemon/ (lib/ never logs).
 *
 * One line per event on stderr: in logfmt (`level=info msg="..."`) for a
 * terminal or a file, or, when stderr is journald's stream (systemd's
 * JOURNAL_STREAM names it), the message behind a syslog priority prefix
 * (`<6>...`) that journald turns into the entry's priority. The level is
 * checked before the message is formatted. fatal() is for start-up only.
 */
#ifndef AWAITD_LOG_H
#define AWAITD_LOG_H

#include <stdbool.h>

#include "config.h"

/* Picks the format: call once, first thing in main, before any log line. */
void log_init(void);
/* True when lines go to journald with priority prefixes. */
bool log_journal(void);
void log_set_level(enum log_level level);
int  log_enabled(enum log_level level);
/* log_warn appends strerror(errno); log_warnx does not. */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Logs at error level and exits with status 1. Start-up only. */
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
