/*
 * tls.c — the certificate and key awaitd serves over HTTPS (see tls.h).
 *
 * Why a certificate callback and not MHD_OPTION_HTTPS_MEM_CERT/KEY:
 * libmicrohttpd 0.9.75 loads those into its own GnuTLS credentials once, in
 * MHD_start_daemon, and has no call to replace them on a running daemon;
 * restarting the daemon object would drop every open connection and every
 * suspended wait. With MHD_OPTION_HTTPS_CERT_CALLBACK it instead asks
 * GnuTLS to call us for the certificate at each handshake
 * (gnutls_certificate_set_retrieve_function2), so the pair is ours: a
 * reload reads the new files into a new pair and points `current` at it.
 * Handshakes that start afterwards get the new certificate; established
 * connections keep the session they have. (CERT_CALLBACK2, the
 * retrieve_function3 variant, adds OCSP stapling, which awaitd does not
 * offer; function2 is enough and exists in every GnuTLS 3.)
 *
 * Why a replaced pair is kept until exit: GnuTLS does not copy what the
 * callback returns; it uses those certificates and that key for the rest
 * of the handshake, which on non-blocking sockets can span several MHD_run
 * calls, and neither MHD nor GnuTLS tells us when a handshake begun before
 * the reload is over. A pair is a few kilobytes and only a SIGHUP whose
 * files really changed retires one, so keeping them is cheaper and surer
 * than guessing when one is free.
 *
 * Not here: the TLS protocol versions and ciphers (MHD's default GnuTLS
 * priorities, i.e. the system-wide policy), client certificates.
 */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Certificates in one chain file: a leaf and its intermediates. */
#define MAX_CHAIN 16
/* A PEM key or chain is a few kilobytes; a bigger file is a wrong path. */
#define MAX_PEM_BYTES (1024 * 1024)

struct pair {
    gnutls_pcert_st  pcert[MAX_CHAIN];
    unsigned         npcert;
    gnutls_privkey_t key;
    gnutls_datum_t   cert_pem, key_pem;     /* as read: a reload compares */
    struct pair     *older;                 /* replaced pairs, kept (above) */
};

static struct pair *current;

static void wipe(gnutls_datum_t *d)
{
    if (d->data) {
        gnutls_memset(d->data, 0, d->size);
        free(d->data);
    }
    d->data = NULL;
    d->size = 0;
}

static void pair_free(struct pair *p)
{
    if (!p)
        return;
    for (unsigned i = 0; i < p->npcert; i++)
        gnutls_pcert_deinit(&p->pcert[i]);
    if (p->key)
        gnutls_privkey_deinit(p->key);
    wipe(&p->cert_pem);
    wipe(&p->key_pem);
    free(p);
}

/* Reads a whole small file into out (NUL-terminated, which GnuTLS's PEM
 * decoder does not need but a reader of a core dump likes). Returns 0 or
 * -1 with err naming the key and the path. */
static int read_pem(const char *what, const char *path, gnutls_datum_t *out,
                    char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        snprintf(err, errlen, "%s %s: cannot read: %s", what, path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode) || st.st_size == 0 || st.st_size > MAX_PEM_BYTES) {
        snprintf(err, errlen, "%s %s: expected a PEM file (a regular file of 1 byte to"
                 " %d KiB)", what, path, MAX_PEM_BYTES / 1024);
        close(fd);
        return -1;
    }
    out->size = (unsigned)st.st_size;
    out->data = malloc(out->size + 1);
    size_t got = 0;
    while (out->data && got < out->size) {
        ssize_t n = read(fd, out->data + got, out->size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (!out->data || got != out->size) {
        snprintf(err, errlen, "%s %s: cannot read: %s", what, path,
                 out->data ? "the file changed while it was read" : "out of memory");
        wipe(out);
        return -1;
    }
    out->data[out->size] = '\0';
    return 0;
}

/* The SHA-256 identifier of a public key (of its SubjectPublicKeyInfo). */
static int key_id(gnutls_pubkey_t pub, unsigned char *id, size_t *len)
{
    return gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, id, len);
}

/* Reads cert and key into a new pair and checks that they belong
 * together. Returns the pair, or NULL with err set. */
static struct pair *pair_read(const char *cert, const char *key, char *err, size_t errlen)
{
    struct pair *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (read_pem("tls_cert", cert, &p->cert_pem, err, errlen) < 0 ||
        read_pem("tls_key", key, &p->key_pem, err, errlen) < 0)
        goto fail;
    unsigned n = MAX_CHAIN;
    int rc = gnutls_pcert_list_import_x509_raw(p->pcert, &n, &p->cert_pem,
                                               GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0 || n == 0) {
        snprintf(err, errlen, "tls_cert %s: expected PEM certificates (at most %d): %s",
                 cert, MAX_CHAIN, rc < 0 ? gnutls_strerror(rc) : "none found");
        goto fail;
    }
    p->npcert = n;
    rc = gnutls_privkey_init(&p->key);
    if (rc == 0)
        rc = gnutls_privkey_import_x509_raw(p->key, &p->key_pem, GNUTLS_X509_FMT_PEM,
                                            NULL, 0);
    if (rc < 0) {
        snprintf(err, errlen, "tls_key %s: expected an unencrypted PEM private key: %s",
                 key, gnutls_strerror(rc));
        goto fail;
    }
    /* The pair check GnuTLS would make in gnutls_certificate_set_x509_key:
     * the key's public half is the first certificate's. */
    gnutls_pubkey_t pub = NULL;
    unsigned char a[64], b[64];
    size_t alen = sizeof a, blen = sizeof b;
    rc = gnutls_pubkey_init(&pub);
    if (rc == 0)
        rc = gnutls_pubkey_import_privkey(pub, p->key, 0, 0);
    if (rc == 0)
        rc = key_id(pub, a, &alen);
    if (rc == 0)
        rc = key_id(p->pcert[0].pubkey, b, &blen);
    if (pub)
        gnutls_pubkey_deinit(pub);
    if (rc < 0) {
        snprintf(err, errlen, "tls_key %s: cannot compare it with tls_cert %s: %s",
                 key, cert, gnutls_strerror(rc));
        goto fail;
    }
    if (alen != blen || memcmp(a, b, alen) != 0) {
        snprintf(err, errlen, "tls_key %s is not the key of the certificate in tls_cert %s",
                 key, cert);
        goto fail;
    }
    return p;
fail:
    pair_free(p);
    return NULL;
}

/* A libmicrohttpd built without GnuTLS would start a plain daemon with
 * MHD_USE_TLS refused, or ignore the callback: say so before anything. */
static int mhd_can(char *err, size_t errlen)
{
    if (MHD_is_feature_supported(MHD_FEATURE_HTTPS_CERT_CALLBACK) == MHD_YES)
        return 0;
    snprintf(err, errlen, "tls_cert: this libmicrohttpd has no HTTPS certificate callback"
             " (built without GnuTLS 3)");
    return -1;
}

static bool same(const gnutls_datum_t *a, const gnutls_datum_t *b)
{
    return a->size == b->size && memcmp(a->data, b->data, a->size) == 0;
}

int tls_check(const char *cert, const char *key, char *err, size_t errlen)
{
    if (mhd_can(err, errlen) < 0)
        return -1;
    struct pair *p = pair_read(cert, key, err, errlen);
    pair_free(p);
    return p ? 0 : -1;
}

int tls_load(const char *cert, const char *key, char *err, size_t errlen)
{
    if (mhd_can(err, errlen) < 0)
        return -1;
    struct pair *p = pair_read(cert, key, err, errlen);
    if (!p)
        return -1;
    p->older = current;
    current = p;
    return 0;
}

int tls_reload(const char *cert, const char *key, char *err, size_t errlen)
{
    struct pair *p = pair_read(cert, key, err, errlen);
    if (!p)
        return -1;
    if (current && same(&p->cert_pem, &current->cert_pem) &&
        same(&p->key_pem, &current->key_pem)) {
        pair_free(p);
        return 0;
    }
    p->older = current;
    current = p;
    return 1;
}

void tls_free(void)
{
    while (current) {
        struct pair *p = current;
        current = p->older;
        pair_free(p);
    }
}

/* GnuTLS's retrieve callback: the current pair for every handshake. The
 * certificate request and key algorithms the client offers are not
 * consulted: there is one identity, and a client that cannot use it fails
 * the handshake with an alert, which is the right answer. */
static int retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
                    const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                    gnutls_pcert_st **pcert, unsigned int *pcert_length,
                    gnutls_privkey_t *privkey)
{
    (void)session;
    (void)req_ca_rdn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    if (!current)
        return -1;
    *pcert = current->pcert;
    *pcert_length = current->npcert;
    *privkey = current->key;
    return 0;
}

void *tls_cert_callback(void)
{
    static gnutls_certificate_retrieve_function2 *const fn = retrieve;
    return (void *)fn;
}

void tls_describe(char *buf, size_t len)
{
    gnutls_x509_crt_t crt = NULL;
    gnutls_datum_t dn = { NULL, 0 };
    unsigned char fp[32];
    size_t fplen = sizeof fp;
    char hex[3 * sizeof fp + 1] = "", when[32] = "?";

    snprintf(buf, len, "TLS certificate: (unreadable)");
    if (!current || gnutls_x509_crt_init(&crt) < 0)
        return;
    if (gnutls_x509_crt_import(crt, &current->pcert[0].cert, GNUTLS_X509_FMT_DER) == 0 &&
        gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0 &&
        gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, fp, &fplen) == 0) {
        /* As openssl x509 -fingerprint -sha256 writes it: AB:CD:... */
        for (size_t i = 0, at = 0; i < fplen; i++, at = strlen(hex))
            snprintf(hex + at, sizeof hex - at, i ? ":%02X" : "%02X", fp[i]);
        time_t exp = gnutls_x509_crt_get_expiration_time(crt);
        struct tm tm;
        if (exp != (time_t)-1 && gmtime_r(&exp, &tm))
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        snprintf(buf, len, "TLS certificate %s, expires %s, sha256 %s",
                 (const char *)dn.data, when, hex);
    }
    gnutls_free(dn.data);
    gnutls_x509_crt_deinit(crt);
}
