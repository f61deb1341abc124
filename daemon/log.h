/*
 * log.h — logging for daemon/ (lib/ never logs).
 *
 * One line per event on stderr in logfmt (`level=info msg="..."`), which both
 * a terminal and journald read well. The level is checked before the
 * message is formatted. fatal() is for start-up only.
 */
#ifndef AWAITD_LOG_H
#define AWAITD_LOG_H

#include "config.h"

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
