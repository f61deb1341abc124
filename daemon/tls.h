/*
 * tls.h — the daemon's TLS identity: one certificate chain and its key,
 * read from PEM files, served through libmicrohttpd's certificate
 * callback and replaced on SIGHUP without touching open connections.
 *
 * There is one identity per process (the GnuTLS retrieve callback has no
 * user pointer), owned by this file from tls_load() to tls_free(). Errors
 * are a one-line message in err ("tls_key /etc/x.pem: ..."); nothing here
 * logs or exits. All calls run on the loop thread (or before it starts).
 */
#ifndef AWAITD_TLS_H
#define AWAITD_TLS_H

#include <stddef.h>

/* Reads and checks a certificate chain and key (readable, PEM, and the
 * key is the one of the first certificate) without keeping them: what
 * --check-config does. Returns 0 or -1 with err set. */
int  tls_check(const char *cert, const char *key, char *err, size_t errlen);
/* Reads the pair and makes it the one served. Returns 0 or -1 with err
 * set. */
int  tls_load(const char *cert, const char *key, char *err, size_t errlen);
/* Re-reads the pair (SIGHUP). Returns 1 when new certificates are now
 * served to new connections, 0 when the files are unchanged (nothing to
 * do), -1 with err set when they cannot be used: the old pair stays. */
int  tls_reload(const char *cert, const char *key, char *err, size_t errlen);
/* Frees every pair read since tls_load(). After MHD_stop_daemon only. */
void tls_free(void);
/* The libmicrohttpd option value for MHD_OPTION_HTTPS_CERT_CALLBACK (a
 * gnutls_certificate_retrieve_function2 *, as void * so that this header
 * needs no GnuTLS). */
void *tls_cert_callback(void);
/* One line for the log about the served certificate: its subject and
 * when it expires. */
void tls_describe(char *buf, size_t len);

#endif
