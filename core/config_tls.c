/*
 * The TLS keys of a listener block (mosquitto's names) and how they fit
 * together; the rest of the parser is config.c.
 */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "config_internal.h"

/* ---- TLS, mosquitto's keys inside a listener block ----
 *
 * Each key may appear once per block (certfile and keyfile once per pair):
 * a second cafile would silently replace the first, and the operator meant
 * one of them. The parser checks
 * each value on its own; how the keys fit together (keyfile with certfile,
 * require_certificate with a CA) is config_finish()'s, since a block may
 * give them in any order. Nothing here opens a file: the shards do when
 * they build their TLS contexts, and report their own errors. */

/* Records that p->key was given on this line; a second time is an error
 * naming the first. */
static int tls_once(struct parser *p, int *line)
{
    if (*line != 0)
        return config_fail(p, "duplicate `%s' in this listener block (first at line %d)", p->key,
                           *line);
    *line = p->line;
    return 0;
}

/* A path, kept as written (relative to the working directory, as
 * mosquitto). The tokenizer never yields an empty value; one word only, so
 * a path with spaces is refused rather than cut short. */
static int tls_path(struct parser *p, char *dst, size_t size, int *line)
{
    if (tls_once(p, line) != 0)
        return -1;
    const char *v = p->values[0];
    if (strlen(v) >= size)
        return config_fail(p, "`%s' path is longer than %u bytes", p->key, (unsigned)size - 1);
    snprintf(dst, size, "%s", v);
    return 0;
}

/* certfile may be given up to CONFIG_TLS_CERTS_MAX times: each keyfile
 * belongs to the certfile before it (the first keyfile may also come
 * before the first certfile), so a second certfile needs the first's
 * keyfile in between. */
int config_set_certfile(struct parser *p)
{
    struct config_tls *t = &p->listener->tls;
    if (t->line == 0) {
        if (tls_path(p, t->certfile, sizeof(t->certfile), &t->line) != 0)
            return -1;
        t->enabled = true;
        return 0;
    }
    int prev_key = t->sni_count ? t->sni[t->sni_count - 1].keyfile_line : t->keyfile_line;
    int prev_cert = t->sni_count ? t->sni[t->sni_count - 1].line : t->line;
    if (prev_key == 0)
        return config_fail(p,
                           "`certfile' again before a keyfile for the certfile at line %d (each "
                           "certfile is followed by its keyfile)",
                           prev_cert);
    if (t->sni_count + 1 >= CONFIG_TLS_CERTS_MAX)
        return config_fail(p, "more than %u `certfile' lines in this listener block",
                           (unsigned)CONFIG_TLS_CERTS_MAX);
    struct config_tls_pair *pair = &t->sni[t->sni_count];
    if (tls_path(p, pair->certfile, sizeof(pair->certfile), &pair->line) != 0)
        return -1;
    t->sni_count++;
    return 0;
}

int config_set_keyfile(struct parser *p)
{
    struct config_tls *t = &p->listener->tls;
    if (t->sni_count == 0)
        return tls_path(p, t->keyfile, sizeof(t->keyfile), &t->keyfile_line);
    struct config_tls_pair *pair = &t->sni[t->sni_count - 1];
    if (pair->keyfile_line != 0)
        return config_fail(p, "duplicate `keyfile' for the certfile at line %d (first at line %d)",
                           pair->line, pair->keyfile_line);
    return tls_path(p, pair->keyfile, sizeof(pair->keyfile), &pair->keyfile_line);
}

int config_set_cafile(struct parser *p)
{
    struct config_tls *t = &p->listener->tls;
    return tls_path(p, t->cafile, sizeof(t->cafile), &t->cafile_line);
}

int config_set_capath(struct parser *p)
{
    struct config_tls *t = &p->listener->tls;
    return tls_path(p, t->capath, sizeof(t->capath), &t->capath_line);
}

int config_set_crlfile(struct parser *p)
{
    struct config_tls *t = &p->listener->tls;
    return tls_path(p, t->crlfile, sizeof(t->crlfile), &t->crlfile_line);
}

int config_set_require_certificate(struct parser *p)
{
    struct config_tls *t = &p->listener->tls;
    if (tls_once(p, &t->require_certificate_line) != 0)
        return -1;
    return config_value_bool(p, &t->require_certificate);
}

int config_set_use_identity_as_username(struct parser *p)
{
    struct config_tls *t = &p->listener->tls;
    if (tls_once(p, &t->use_identity_as_username_line) != 0)
        return -1;
    return config_value_bool(p, &t->use_identity_as_username);
}

int config_set_use_subject_as_username(struct parser *p)
{
    struct config_tls *t = &p->listener->tls;
    if (tls_once(p, &t->use_subject_as_username_line) != 0)
        return -1;
    return config_value_bool(p, &t->use_subject_as_username);
}

/* mosquitto's tls_version names the one version it allows; ours is the
 * lowest offered, so "tlsv1.2" also lets TLS 1.3 clients in, which is what
 * an operator upgrading from mosquitto's default wants. TLS 1.0 and 1.1 are
 * broken (RFC 8996) and never offered: saying so beats quietly raising
 * the floor. */
int config_set_tls_version(struct parser *p)
{
    struct config_tls *t = &p->listener->tls;
    if (tls_once(p, &t->tls_version_line) != 0)
        return -1;
    const char *v = p->values[0];
    if (strcmp(v, "tlsv1.2") == 0) {
        t->min_version = CONFIG_TLS_1_2;
        return 0;
    }
    if (strcmp(v, "tlsv1.3") == 0) {
        t->min_version = CONFIG_TLS_1_3;
        return 0;
    }
    if (strcmp(v, "tlsv1") == 0 || strcmp(v, "tlsv1.1") == 0)
        return config_fail(p,
                           "`tls_version' value `%s' is refused: TLS 1.0 and 1.1 are never offered "
                           "(use tlsv1.2 or tlsv1.3)",
                           v);
    return config_fail(p, "`tls_version' value `%s' is not tlsv1.2 or tlsv1.3", v);
}

/* OpenSSL's list syntax: names joined by ':' (or ',') with the '!', '+',
 * '-' and '@' operators. The TLS library knows the names; here only the
 * characters are checked, so a quote or a '$' copied from a shell line is
 * caught with its line number. '=' is allowed too, for "@SECLEVEL=2". */
int config_set_ciphers(struct parser *p)
{
    struct config_tls *t = &p->listener->tls;
    if (tls_once(p, &t->ciphers_line) != 0)
        return -1;
    const char *v = p->values[0];
    if (strlen(v) >= sizeof(t->ciphers))
        return config_fail(p, "`ciphers' list is longer than %u bytes",
                           (unsigned)sizeof(t->ciphers) - 1);
    for (const char *s = v; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
            strchr("!:+@_.,-=", ch) != NULL)
            continue;
        if (ch > 0x20 && ch < 0x7f)
            return config_fail(
                p,
                "`ciphers' list holds `%c' (an OpenSSL cipher list has names, digits and "
                "! : + @ _ . , - =)",
                ch);
        return config_fail(p,
                           "`ciphers' list holds byte 0x%02x (an OpenSSL cipher list has names, "
                           "digits and ! : + @ _ . , - =)",
                           ch);
    }
    snprintf(t->ciphers, sizeof(t->ciphers), "%s", v);
    return 0;
}

/* Read by the runtime (security/psk.h says the format). */
int config_set_psk_file(struct parser *p)
{
    struct config_tls *t = &p->listener->tls;
    if (tls_path(p, t->psk_file, sizeof(t->psk_file), &t->psk_file_line) != 0)
        return -1;
    t->enabled = true;
    return 0;
}

/* Sent to PSK clients in the clear: one word of printable ASCII. */
int config_set_psk_hint(struct parser *p)
{
    struct config_tls *t = &p->listener->tls;
    if (tls_once(p, &t->psk_hint_line) != 0)
        return -1;
    const char *v = p->values[0];
    if (strlen(v) >= sizeof(t->psk_hint))
        return config_fail(p, "`psk_hint' is longer than %u bytes",
                           (unsigned)sizeof(t->psk_hint) - 1);
    for (const char *c = v; *c; c++)
        if ((unsigned char)*c < 0x21 || (unsigned char)*c > 0x7e)
            return config_fail(p, "`psk_hint' holds byte 0x%02x (printable ASCII only)",
                               (unsigned char)*c);
    snprintf(t->psk_hint, sizeof(t->psk_hint), "%s", v);
    return 0;
}

struct tls_key_use {
    const char *key;
    int line;
    bool set;
};

/* The line to name for a TLS key: where it was given, else (a struct not
 * filled by the parser) the listener's. */
static int tls_key_line(const struct config_listener *l, int line)
{
    return line != 0 ? line : l->line;
}

/* The first key of the list given in the block (the one an operator reads
 * first), or n. */
static size_t first_given(const struct config_listener *l, const struct tls_key_use *keys, size_t n)
{
    size_t first = n;
    for (size_t i = 0; i < n; i++) {
        if (keys[i].line == 0 && !keys[i].set)
            continue;
        if (first == n || tls_key_line(l, keys[i].line) < tls_key_line(l, keys[first].line))
            first = i;
    }
    return first;
}

/* A listener without certfile or psk_file: any other TLS key given in its
 * block would be silently without effect. */
static int tls_check_plain(const char *source, struct config_listener *l, char *err, size_t errlen)
{
    struct config_tls *t = &l->tls;
    const struct tls_key_use keys[] = {
        {"cafile", t->cafile_line, t->cafile[0] != '\0'},
        {"capath", t->capath_line, t->capath[0] != '\0'},
        {"crlfile", t->crlfile_line, t->crlfile[0] != '\0'},
        {"require_certificate", t->require_certificate_line, t->require_certificate},
        {"use_identity_as_username", t->use_identity_as_username_line, t->use_identity_as_username},
        {"use_subject_as_username", t->use_subject_as_username_line, t->use_subject_as_username},
        {"tls_version", t->tls_version_line, t->min_version != CONFIG_TLS_1_2},
        {"ciphers", t->ciphers_line, t->ciphers[0] != '\0'},
        {"psk_hint", t->psk_hint_line, t->psk_hint[0] != '\0'},
    };
    const size_t n = sizeof(keys) / sizeof(keys[0]);
    size_t first = first_given(l, keys, n);
    if (first == n) {
        t->enabled = false;
        return 0;
    }
    return config_report_at(err, errlen, source, tls_key_line(l, keys[first].line),
                            "`%s' means nothing on a listener without certfile or psk_file (TLS "
                            "is off there)",
                            keys[first].key);
}

/* A listener with psk_file and no certificate: TLS 1.2 PSK suites only. */
static int tls_check_psk_only(const char *source, struct config_listener *l, char *err,
                              size_t errlen)
{
    struct config_tls *t = &l->tls;
    const struct tls_key_use keys[] = {
        {"cafile", t->cafile_line, t->cafile[0] != '\0'},
        {"capath", t->capath_line, t->capath[0] != '\0'},
        {"crlfile", t->crlfile_line, t->crlfile[0] != '\0'},
        {"require_certificate", t->require_certificate_line, t->require_certificate},
        {"use_subject_as_username", t->use_subject_as_username_line, t->use_subject_as_username},
    };
    const size_t n = sizeof(keys) / sizeof(keys[0]);
    size_t first = first_given(l, keys, n);
    if (first != n)
        return config_report_at(err, errlen, source, tls_key_line(l, keys[first].line),
                                "`%s' needs certfile on this listener (a PSK-only listener sees "
                                "no certificates)",
                                keys[first].key);
    t->line = tls_key_line(l, t->psk_file_line);
    return 0;
}

/* Every certfile has its keyfile. */
static int tls_check_pairs(const char *source, struct config_listener *l, char *err, size_t errlen)
{
    struct config_tls *t = &l->tls;
    bool cert = t->certfile[0] != '\0';
    if (t->keyfile[0] != '\0' && !cert)
        return config_report_at(err, errlen, source, tls_key_line(l, t->keyfile_line),
                                "`keyfile' needs certfile on this listener (a TLS listener "
                                "takes both)");
    if (cert && t->keyfile[0] == '\0')
        return config_report_at(err, errlen, source, tls_key_line(l, t->line),
                                "`certfile' needs keyfile on this listener (a TLS listener "
                                "takes both)");
    if (t->sni_count >= CONFIG_TLS_CERTS_MAX || (t->sni_count && !cert))
        return config_report_at(err, errlen, source, l->line,
                                "listener TLS certificate pairs are inconsistent");
    for (uint32_t i = 0; i < t->sni_count; i++) {
        const struct config_tls_pair *pair = &t->sni[i];
        if (!memchr(pair->certfile, '\0', sizeof(pair->certfile)) ||
            !memchr(pair->keyfile, '\0', sizeof(pair->keyfile)) || !pair->certfile[0])
            return config_report_at(err, errlen, source, l->line,
                                    "listener TLS setting is not a terminated string");
        if (!pair->keyfile[0])
            return config_report_at(err, errlen, source, tls_key_line(l, pair->line),
                                    "`certfile' needs its keyfile on this listener (a keyfile "
                                    "line after it)");
    }
    return 0;
}

/* How client identities and PSK fit with the rest. */
static int tls_check_identity(const char *source, struct config_listener *l, char *err,
                              size_t errlen)
{
    struct config_tls *t = &l->tls;
    bool psk = t->psk_file[0] != '\0';
    if (psk && t->require_certificate) {
        int a = tls_key_line(l, t->psk_file_line), b = tls_key_line(l, t->require_certificate_line);
        return config_report_at(err, errlen, source, a > b ? a : b,
                                "`psk_file' and `require_certificate true' cannot both be set on "
                                "a listener (a PSK handshake carries no certificate: PSK clients "
                                "would pass without one)");
    }
    if (psk && t->min_version == CONFIG_TLS_1_3)
        return config_report_at(err, errlen, source, tls_key_line(l, t->tls_version_line),
                                "`tls_version tlsv1.3' leaves psk_file unused (PSK works over TLS "
                                "1.2 only)");
    if (t->use_identity_as_username && !t->require_certificate && !psk)
        return config_report_at(err, errlen, source,
                                tls_key_line(l, t->use_identity_as_username_line),
                                "`use_identity_as_username true' needs `require_certificate "
                                "true' or psk_file (without a verified client certificate or "
                                "PSK identity there is no name to use)");
    if (t->use_subject_as_username && !t->require_certificate)
        return config_report_at(err, errlen, source,
                                tls_key_line(l, t->use_subject_as_username_line),
                                "`use_subject_as_username true' needs `require_certificate "
                                "true' (without a verified client certificate there is no name "
                                "to use)");
    if (t->use_identity_as_username && t->use_subject_as_username) {
        int a = tls_key_line(l, t->use_identity_as_username_line);
        int b = tls_key_line(l, t->use_subject_as_username_line);
        return config_report_at(err, errlen, source, a > b ? a : b,
                                "`use_identity_as_username' and `use_subject_as_username' cannot "
                                "both be true (the other is at line %d)",
                                a > b ? b : a);
    }
    if (t->psk_hint[0] != '\0' && !psk)
        return config_report_at(err, errlen, source, tls_key_line(l, t->psk_hint_line),
                                "`psk_hint' needs psk_file on this listener (a hint without keys "
                                "offers no PSK)");
    return 0;
}

/* The TLS keys of one listener block, taken together. A key that cannot
 * take effect is an error, not a no-op: an operator who wrote cafile on a
 * plain listener believes its clients are verified. */
int config_tls_check(const char *source, struct config_listener *l, char *err, size_t errlen)
{
    struct config_tls *t = &l->tls;
    const struct {
        const char *s;
        size_t size;
    } strings[] = {
        {t->certfile, sizeof(t->certfile)}, {t->keyfile, sizeof(t->keyfile)},
        {t->cafile, sizeof(t->cafile)},     {t->capath, sizeof(t->capath)},
        {t->crlfile, sizeof(t->crlfile)},   {t->ciphers, sizeof(t->ciphers)},
        {t->psk_hint, sizeof(t->psk_hint)}, {t->psk_file, sizeof(t->psk_file)},
    };
    /* As for the address: net/tls.c opens what we return. */
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
        if (memchr(strings[i].s, '\0', strings[i].size) == NULL)
            return config_report_at(err, errlen, source, l->line,
                                    "listener TLS setting is not a terminated string");
    if (tls_check_pairs(source, l, err, errlen))
        return -1;
    bool cert = t->certfile[0] != '\0', psk = t->psk_file[0] != '\0';
    if (!cert && !psk)
        return tls_check_plain(source, l, err, errlen);
    if (!cert && tls_check_psk_only(source, l, err, errlen))
        return -1;
    if (t->min_version != CONFIG_TLS_1_2 && t->min_version != CONFIG_TLS_1_3)
        return config_report_at(err, errlen, source, tls_key_line(l, t->tls_version_line),
                                "listener TLS minimum version is not TLS 1.2 or 1.3");
    if (t->require_certificate && t->cafile[0] == '\0' && t->capath[0] == '\0')
        return config_report_at(err, errlen, source, tls_key_line(l, t->require_certificate_line),
                                "`require_certificate true' needs cafile or capath on this "
                                "listener (the CA certificates that client certificates are "
                                "checked against)");
    if (tls_check_identity(source, l, err, errlen))
        return -1;
    t->enabled = true;
    return 0;
}
