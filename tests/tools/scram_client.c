/*
 * ringmq-scram-client: a test client that logs in with MQTT 5.0 enhanced
 * authentication, SCRAM-SHA-512 or SCRAM-SHA-512-PLUS (RFC 5802 with
 * SHA-512; the tls-exporter channel binding of RFC 9266), over TLS or plain
 * TCP. The integration tests drive it (tests/integration/33-scram-plus.py):
 * Python 3.11's ssl module cannot export keying material, so it cannot
 * compute tls-exporter; BoringSSL can.
 *
 * It is a client a test can also make misbehave: --corrupt-binding flips a
 * bit of the exporter value it puts into c= (what a client behind a man in
 * the middle would send: its TLS session ends at the middle), --gs2 picks
 * the gs2 flag ("y" with the plain method over TLS is a downgrade), and
 * --cb-name another channel binding type. --reauth runs the exchange again
 * after CONNACK (AUTH 0x19); --corrupt-reauth-binding corrupts only that
 * one.
 *
 * Blocking sockets, one connection, every read bounded by --timeout. What
 * happened goes to stdout, one "key=value" line each:
 *   tls=TLSv1.3            the negotiated version (TLS only)
 *   auth=0x18              the server's AUTH reason after CONNECT
 *   connack=0x00           the CONNACK reason
 *   server_final=ok|bad    the server signature in CONNACK checked
 *   reauth=0x00            the AUTH reason that ends a re-authentication
 *   reauth_final=ok|bad    its server signature checked
 *   disconnect=0x87        a DISCONNECT from the server
 *   closed=1               the server closed the connection
 * Exit status: 0 when the conversation ran (whatever the broker decided; the
 * test judges the lines), 1 on an I/O or TLS failure, 2 on bad arguments.
 * Single-threaded; owns everything it allocates until exit.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/base64.h>
#include <openssl/digest.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#define KEY_LEN      64u   /* SHA-512 */
#define EXPORTER_LEN 32u   /* RFC 9266 */
#define MSG_MAX      1024u /* the broker's SCRAM_MSG_MAX */
/* The longest Authentication Data this client builds: more than the broker
 * takes, so a message the broker refuses for its length is still sent. */
#define DATA_MAX (4u * MSG_MAX)
#define ARG_MAX  256u /* --method, --client-id, --cb-name, --user */
#define PKT_MAX  (64u * 1024u)

#define MQTT_CONNACK     0x20u
#define MQTT_DISCONNECT  0xE0u
#define MQTT_AUTH        0xF0u
#define PROP_AUTH_METHOD 0x15u
#define PROP_AUTH_DATA   0x16u

struct opts {
    const char *host;
    int port;
    const char *ca; /* NULL: plain TCP */
    int tls_max;    /* 0, TLS1_2_VERSION or TLS1_3_VERSION */
    const char *method;
    const char *gs2_flag; /* "p", "n" or "y" */
    const char *cb_name;
    bool authzid;
    const char *user;
    const char *password;
    const char *client_id;
    bool corrupt_binding;        /* in the exchange before CONNACK */
    bool corrupt_reauth_binding; /* in the re-authentication */
    bool reauth;
    int timeout_s;
};

/* One connection: the socket, TLS over it or not, and what SCRAM needs. */
struct link {
    int fd;
    SSL *ssl;
    bool exporter_ok;
    uint8_t exporter[EXPORTER_LEN];
};

/* One SCRAM exchange, the client's side. */
struct exchange {
    bool corrupt; /* flip a bit of the exporter value in c= */
    char gs2[2 * MSG_MAX];
    char first_bare[DATA_MAX];
    uint8_t server_sig[KEY_LEN];
};

static void die(const char *what)
{
    char err[256] = "";
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, err, sizeof(err));
    fprintf(stderr, "ringmq-scram-client: %s%s%s%s%s\n", what, errno ? ": " : "",
            errno ? strerror(errno) : "", err[0] ? ": " : "", err);
    exit(1);
}

/* ---- the wire --------------------------------------------------------------- */

static void wire_write(struct link *l, const uint8_t *p, size_t len)
{
    while (len) {
        int n = l->ssl ? SSL_write(l->ssl, p, (int)len) : (int)send(l->fd, p, len, MSG_NOSIGNAL);
        if (n <= 0)
            die("write");
        p += n;
        len -= (size_t)n;
    }
}

/* Exactly len bytes; false when the peer closed (or the read timed out). */
static bool wire_read(struct link *l, uint8_t *p, size_t len)
{
    while (len) {
        int n = l->ssl ? SSL_read(l->ssl, p, (int)len) : (int)recv(l->fd, p, len, 0);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static size_t put_varint(uint8_t *o, size_t n)
{
    size_t i = 0;
    do {
        uint8_t b = n % 128;
        n /= 128;
        o[i++] = (uint8_t)(b | (n ? 0x80 : 0));
    } while (n);
    return i;
}

static size_t put_bytes(uint8_t *o, const void *p, size_t len)
{
    o[0] = (uint8_t)(len >> 8);
    o[1] = (uint8_t)len;
    memcpy(o + 2, p, len);
    return 2 + len;
}

/* Frames body (len bytes) with the fixed header type and sends it. */
static void send_packet(struct link *l, uint8_t type, const uint8_t *body, size_t len)
{
    static uint8_t pkt[PKT_MAX + 8];
    pkt[0] = type;
    size_t h = 1 + put_varint(pkt + 1, len);
    memcpy(pkt + h, body, len);
    wire_write(l, pkt, h + len);
}

/* Authentication Method and Data as a property block (its length first). */
static size_t put_auth_props(uint8_t *o, const char *method, const uint8_t *data, size_t len)
{
    uint8_t props[DATA_MAX + ARG_MAX + 16];
    size_t n = 0;
    props[n++] = PROP_AUTH_METHOD;
    n += put_bytes(props + n, method, strlen(method));
    props[n++] = PROP_AUTH_DATA;
    n += put_bytes(props + n, data, len);
    size_t h = put_varint(o, n);
    memcpy(o + h, props, n);
    return h + n;
}

static void send_connect(struct link *l, const struct opts *o, const uint8_t *data, size_t len)
{
    uint8_t body[DATA_MAX + 3 * ARG_MAX];
    size_t n = put_bytes(body, "MQTT", 4);
    body[n++] = 5;    /* protocol level: 5.0 */
    body[n++] = 0x02; /* clean start, no username, no password */
    body[n++] = 0;
    body[n++] = 60; /* keepalive */
    n += put_auth_props(body + n, o->method, data, len);
    n += put_bytes(body + n, o->client_id, strlen(o->client_id));
    send_packet(l, 0x10, body, n);
}

static void send_auth(struct link *l, uint8_t reason, const char *method, const uint8_t *data,
                      size_t len)
{
    uint8_t body[DATA_MAX + 2 * ARG_MAX];
    body[0] = reason;
    size_t n = 1 + put_auth_props(body + 1, method, data, len);
    send_packet(l, MQTT_AUTH, body, n);
}

/* A packet from the server: its type and reason, and its Authentication
 * Data (a view into the static body). */
struct packet {
    uint8_t type;
    uint8_t reason;
    const uint8_t *auth_data;
    size_t auth_data_len;
};

static bool get_varint(const uint8_t *p, size_t len, size_t *i, size_t *v)
{
    *v = 0;
    for (unsigned shift = 0; shift < 28; shift += 7) {
        if (*i >= len)
            return false;
        uint8_t b = p[(*i)++];
        *v |= (size_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return true;
    }
    return false;
}

/* How a 5.0 property's value is written (the table of 2.2.2.2): its size
 * for the fixed ones, or VARINT, BYTES (two length bytes, then the
 * bytes), PAIR (two of those); 0 for an identifier that does not exist. */
enum { VARINT = -1, BYTES = -2, PAIR = -3 };
static int prop_kind(size_t id)
{
    switch (id) {
    case 0x01:
    case 0x17:
    case 0x19:
    case 0x24:
    case 0x25:
    case 0x28:
    case 0x29:
    case 0x2A:
        return 1;
    case 0x13:
    case 0x21:
    case 0x22:
    case 0x23:
        return 2;
    case 0x02:
    case 0x11:
    case 0x18:
    case 0x27:
        return 4;
    case 0x0B:
        return VARINT;
    case 0x03:
    case 0x08:
    case 0x09:
    case 0x12:
    case 0x15:
    case 0x16:
    case 0x1A:
    case 0x1C:
    case 0x1F:
        return BYTES;
    case 0x26:
        return PAIR;
    default:
        return 0;
    }
}

/* Walks a 5.0 property block for Authentication Data; false if malformed. */
static bool find_auth_data(const uint8_t *p, size_t len, struct packet *pk)
{
    size_t i = 0;
    while (i < len) {
        size_t id, v;
        if (!get_varint(p, len, &i, &id))
            return false;
        int kind = prop_kind(id);
        if (kind == 0)
            return false;
        if (kind == VARINT) {
            if (!get_varint(p, len, &i, &v))
                return false;
            continue;
        }
        if (kind > 0) {
            if ((size_t)kind > len - i)
                return false;
            i += (size_t)kind;
            continue;
        }
        for (int k = kind == PAIR ? 2 : 1; k > 0; k--) {
            if (len - i < 2 || len - i - 2 < ((size_t)p[i] << 8 | p[i + 1]))
                return false;
            size_t n = (size_t)p[i] << 8 | p[i + 1];
            if (id == PROP_AUTH_DATA) {
                pk->auth_data = p + i + 2;
                pk->auth_data_len = n;
            }
            i += 2 + n;
        }
    }
    return true;
}

/* The next packet; false when the connection ended. */
static bool read_packet(struct link *l, struct packet *pk)
{
    static uint8_t body[PKT_MAX];
    uint8_t h;
    memset(pk, 0, sizeof(*pk));
    if (!wire_read(l, &h, 1))
        return false;
    size_t len = 0;
    for (unsigned shift = 0;; shift += 7) {
        uint8_t b;
        if (shift > 21 || !wire_read(l, &b, 1))
            return false;
        len |= (size_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
    }
    if (len > sizeof(body) || !wire_read(l, body, len))
        return false;
    pk->type = h & 0xF0;
    size_t i = 0;
    if (pk->type == MQTT_CONNACK)
        i = 1; /* acknowledge flags */
    if (pk->type != MQTT_CONNACK && pk->type != MQTT_AUTH && pk->type != MQTT_DISCONNECT)
        return true;
    if (i >= len)
        return true; /* no reason byte: success */
    pk->reason = body[i++];
    size_t plen;
    if (i < len && (!get_varint(body, len, &i, &plen) || plen > len - i ||
                    !find_auth_data(body + i, plen, pk))) {
        fprintf(stderr, "ringmq-scram-client: malformed properties from the server\n");
        exit(1);
    }
    return true;
}

/* ---- SCRAM, the client's side (RFC 5802 section 3) ------------------------- */

static void b64(char *out, const uint8_t *in, size_t len)
{
    EVP_EncodeBlock((uint8_t *)out, in, len);
}

static void hmac512(const uint8_t *key, size_t klen, const void *d, size_t len, uint8_t *out)
{
    unsigned n = 0;
    if (!HMAC(EVP_sha512(), key, klen, d, len, out, &n) || n != KEY_LEN)
        die("HMAC-SHA512");
}

/* saslname: ',' and '=' escaped. */
static void saslname(char *out, size_t cap, const char *in)
{
    size_t o = 0;
    for (; *in && o + 4 < cap; in++) {
        if (*in == ',' || *in == '=') {
            memcpy(out + o, *in == ',' ? "=2C" : "=3D", 3);
            o += 3;
        } else {
            out[o++] = *in;
        }
    }
    out[o] = 0;
}

/* client-first: gs2 header + client-first-message-bare, into out
 * (DATA_MAX + 1 bytes). */
static size_t scram_first(struct exchange *x, const struct opts *o, char *out)
{
    char name[3 * ARG_MAX];
    saslname(name, sizeof(name), o->user);
    const char *flag = o->gs2_flag;
    char authz[3 * ARG_MAX + 3] = "";
    if (o->authzid)
        snprintf(authz, sizeof(authz), "a=%s", name);
    if (strcmp(flag, "p") == 0)
        snprintf(x->gs2, sizeof(x->gs2), "p=%s,%s,", o->cb_name, authz);
    else
        snprintf(x->gs2, sizeof(x->gs2), "%s,%s,", flag, authz);
    uint8_t raw[18];
    char nonce[32];
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        die("RAND_bytes");
    b64(nonce, raw, sizeof(raw));
    snprintf(x->first_bare, sizeof(x->first_bare), "n=%s,r=%s", name, nonce);
    int n = snprintf(out, DATA_MAX + 1, "%s%s", x->gs2, x->first_bare);
    if (n < 0 || (size_t)n > DATA_MAX)
        die("client-first message too long");
    return (size_t)n;
}

/* The value of attribute a= in server-first, copied into out (cap bytes). */
static bool attr(const char *sf, char a, char *out, size_t cap)
{
    for (const char *p = sf; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        if (p[0] == a && p[1] == '=') {
            size_t n = strcspn(p + 2, ",");
            if (n >= cap)
                return false;
            memcpy(out, p + 2, n);
            out[n] = 0;
            return true;
        }
    }
    return false;
}

/* client-final from server-first (sf, NUL-terminated): c= carries the gs2
 * header and, with a "p=" header, the exporter (one bit flipped when
 * x->corrupt), into out (DATA_MAX + 1 bytes). Returns its length; 0 when
 * server-first is malformed or the message would not fit. */
static size_t scram_final(struct exchange *x, const struct opts *o, const struct link *l,
                          const char *sf, char *out)
{
    char nonce[MSG_MAX], salt_b64[MSG_MAX], iter[32];
    uint8_t salt[MSG_MAX];
    size_t salt_len;
    if (!attr(sf, 'r', nonce, sizeof(nonce)) || !attr(sf, 's', salt_b64, sizeof(salt_b64)) ||
        !attr(sf, 'i', iter, sizeof(iter)) ||
        EVP_DecodeBase64(salt, &salt_len, sizeof(salt), (const uint8_t *)salt_b64,
                         strlen(salt_b64)) != 1)
        return 0;
    uint8_t cbind[sizeof(x->gs2) + EXPORTER_LEN];
    size_t cb_len = strlen(x->gs2);
    memcpy(cbind, x->gs2, cb_len);
    if (x->gs2[0] == 'p') {
        memcpy(cbind + cb_len, l->exporter, EXPORTER_LEN);
        if (x->corrupt)
            cbind[cb_len + 7] ^= 0x10;
        cb_len += EXPORTER_LEN;
    }
    char cb64[2 * sizeof(cbind)];
    b64(cb64, cbind, cb_len);
    char without[2 * DATA_MAX];
    int wn = snprintf(without, sizeof(without), "c=%s,r=%s", cb64, nonce);
    if (wn < 0 || (size_t)wn >= sizeof(without))
        return 0;

    uint8_t salted[KEY_LEN], client_key[KEY_LEN], stored[KEY_LEN], server_key[KEY_LEN];
    uint8_t sig[KEY_LEN], proof[KEY_LEN];
    if (PKCS5_PBKDF2_HMAC(o->password, strlen(o->password), salt, salt_len,
                          (unsigned)strtoul(iter, NULL, 10), EVP_sha512(), KEY_LEN, salted) != 1)
        die("PBKDF2");
    hmac512(salted, KEY_LEN, "Client Key", 10, client_key);
    SHA512(client_key, KEY_LEN, stored);
    hmac512(salted, KEY_LEN, "Server Key", 10, server_key);
    static char auth[4 * DATA_MAX];
    snprintf(auth, sizeof(auth), "%s,%s,%s", x->first_bare, sf, without);
    hmac512(stored, KEY_LEN, auth, strlen(auth), sig);
    for (size_t i = 0; i < KEY_LEN; i++)
        proof[i] = client_key[i] ^ sig[i];
    hmac512(server_key, KEY_LEN, auth, strlen(auth), x->server_sig);
    char p64[128];
    b64(p64, proof, KEY_LEN);
    int n = snprintf(out, DATA_MAX + 1, "%s,p=%s", without, p64);
    return n > 0 && (size_t)n <= DATA_MAX ? (size_t)n : 0;
}

/* Is data "v=" + base64(the ServerSignature this client computed)? */
static bool server_final_ok(const struct exchange *x, const struct packet *pk)
{
    char want[128] = "v=";
    b64(want + 2, x->server_sig, KEY_LEN);
    return pk->auth_data && pk->auth_data_len == strlen(want) &&
           memcmp(pk->auth_data, want, pk->auth_data_len) == 0;
}

/* ---- the conversation ------------------------------------------------------ */

/* Answers the server's AUTH 0x18 (server-first in pk) with client-final. */
static bool answer_challenge(struct link *l, const struct opts *o, struct exchange *x,
                             const struct packet *pk)
{
    char sf[MSG_MAX + 1];
    if (!pk->auth_data || pk->auth_data_len > MSG_MAX)
        return false;
    memcpy(sf, pk->auth_data, pk->auth_data_len);
    sf[pk->auth_data_len] = 0;
    char final[DATA_MAX + 1];
    size_t n = scram_final(x, o, l, sf, final);
    if (!n)
        return false;
    send_auth(l, 0x18, o->method, (const uint8_t *) final, n);
    return true;
}

/* A packet that is not the next step: say what it was. */
static void report_other(bool got, const struct packet *pk)
{
    if (!got)
        printf("closed=1\n");
    else if (pk->type == MQTT_DISCONNECT)
        printf("disconnect=0x%02x\n", pk->reason);
    else
        printf("unexpected=0x%02x\n", pk->type);
}

/* AUTH 0x19, the exchange again, its final AUTH checked. */
static void reauthenticate(struct link *l, const struct opts *o)
{
    struct exchange x = {.corrupt = o->corrupt_reauth_binding};
    char first[DATA_MAX + 1];
    size_t n = scram_first(&x, o, first);
    send_auth(l, 0x19, o->method, (const uint8_t *)first, n);
    struct packet pk;
    bool got = read_packet(l, &pk);
    if (!got || pk.type != MQTT_AUTH || pk.reason != 0x18) {
        report_other(got, &pk);
        return;
    }
    if (!answer_challenge(l, o, &x, &pk)) {
        printf("server_first=malformed\n");
        return;
    }
    got = read_packet(l, &pk);
    if (!got || pk.type != MQTT_AUTH) {
        report_other(got, &pk);
        return;
    }
    printf("reauth=0x%02x\n", pk.reason);
    printf("reauth_final=%s\n", server_final_ok(&x, &pk) ? "ok" : "bad");
}

static void converse(struct link *l, const struct opts *o)
{
    struct exchange x = {.corrupt = o->corrupt_binding};
    char first[DATA_MAX + 1];
    size_t n = scram_first(&x, o, first);
    send_connect(l, o, (const uint8_t *)first, n);
    struct packet pk;
    bool got = read_packet(l, &pk);
    if (got && pk.type == MQTT_AUTH) {
        printf("auth=0x%02x\n", pk.reason);
        if (pk.reason != 0x18 || !answer_challenge(l, o, &x, &pk)) {
            printf("server_first=malformed\n");
            return;
        }
        got = read_packet(l, &pk);
    }
    if (!got || pk.type != MQTT_CONNACK) {
        report_other(got, &pk);
        return;
    }
    printf("connack=0x%02x\n", pk.reason);
    if (pk.reason != 0) {
        got = read_packet(l, &pk);
        report_other(got, &pk);
        return;
    }
    printf("server_final=%s\n", server_final_ok(&x, &pk) ? "ok" : "bad");
    if (o->reauth)
        reauthenticate(l, o);
    const uint8_t disconnect[] = {0x00};
    send_packet(l, MQTT_DISCONNECT, disconnect, sizeof(disconnect));
}

/* ---- set-up ---------------------------------------------------------------- */

static void link_open(struct link *l, const struct opts *o)
{
    memset(l, 0, sizeof(*l));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)o->port)};
    if (inet_pton(AF_INET, o->host, &sa.sin_addr) != 1)
        die("--host must be an IPv4 address");
    l->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = o->timeout_s};
    if (l->fd < 0 || setsockopt(l->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(l->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
        connect(l->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        die("connect");
    if (!o->ca)
        return;
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
        (o->tls_max && !SSL_CTX_set_max_proto_version(ctx, (uint16_t)o->tls_max)) ||
        SSL_CTX_load_verify_locations(ctx, o->ca, NULL) != 1)
        die("TLS context");
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    l->ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the SSL holds its own reference */
    if (!l->ssl || !X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(l->ssl), o->host) ||
        !SSL_set_fd(l->ssl, l->fd) || SSL_connect(l->ssl) != 1)
        die("TLS handshake");
    printf("tls=%s\n", SSL_get_version(l->ssl));
    /* RFC 9266: tls-exporter, the same call the broker makes. */
    static const char label[] = "EXPORTER-Channel-Binding";
    l->exporter_ok = SSL_export_keying_material(l->ssl, l->exporter, EXPORTER_LEN, label,
                                                sizeof(label) - 1, NULL, 0, 0) == 1;
    if (!l->exporter_ok)
        die("SSL_export_keying_material");
}

static void link_close(struct link *l)
{
    if (l->ssl) {
        SSL_shutdown(l->ssl);
        SSL_free(l->ssl);
    }
    close(l->fd);
}

static void usage(void)
{
    fprintf(stderr, "usage: ringmq-scram-client --port N --user U --password P [--host 127.0.0.1]\n"
                    "  [--ca CA.pem (TLS; plain TCP without)] [--tls-max 1.2|1.3]\n"
                    "  [--method SCRAM-SHA-512-PLUS] [--gs2 p|n|y] [--cb-name tls-exporter]\n"
                    "  [--authzid] [--corrupt-binding] [--reauth] [--corrupt-reauth-binding]\n"
                    "  [--client-id ID] [--timeout S]\n");
    exit(2);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.host = "127.0.0.1",
                       .method = "SCRAM-SHA-512-PLUS",
                       .gs2_flag = "p",
                       .cb_name = "tls-exporter",
                       .client_id = "scram-client",
                       .timeout_s = 10};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        bool flag = true;
        if (strcmp(a, "--authzid") == 0)
            o->authzid = true;
        else if (strcmp(a, "--corrupt-binding") == 0)
            o->corrupt_binding = true;
        else if (strcmp(a, "--corrupt-reauth-binding") == 0)
            o->corrupt_reauth_binding = true;
        else if (strcmp(a, "--reauth") == 0)
            o->reauth = true;
        else
            flag = false;
        if (flag)
            continue;
        if (!v)
            usage();
        i++;
        if (strcmp(a, "--host") == 0)
            o->host = v;
        else if (strcmp(a, "--port") == 0)
            o->port = atoi(v);
        else if (strcmp(a, "--ca") == 0)
            o->ca = v;
        else if (strcmp(a, "--tls-max") == 0)
            o->tls_max = strcmp(v, "1.2") == 0 ? TLS1_2_VERSION : TLS1_3_VERSION;
        else if (strcmp(a, "--method") == 0)
            o->method = v;
        else if (strcmp(a, "--gs2") == 0)
            o->gs2_flag = v;
        else if (strcmp(a, "--cb-name") == 0)
            o->cb_name = v;
        else if (strcmp(a, "--user") == 0)
            o->user = v;
        else if (strcmp(a, "--password") == 0)
            o->password = v;
        else if (strcmp(a, "--client-id") == 0)
            o->client_id = v;
        else if (strcmp(a, "--timeout") == 0)
            o->timeout_s = atoi(v);
        else
            usage();
    }
    if (o->port <= 0 || o->port > 65535 || !o->user || !o->password || o->timeout_s <= 0 ||
        strlen(o->user) >= ARG_MAX || strlen(o->method) >= ARG_MAX ||
        strlen(o->client_id) >= ARG_MAX || strlen(o->cb_name) >= ARG_MAX ||
        strlen(o->password) >= DATA_MAX ||
        (strcmp(o->gs2_flag, "p") && strcmp(o->gs2_flag, "n") && strcmp(o->gs2_flag, "y")))
        usage();
}

int main(int argc, char **argv)
{
    struct opts o;
    parse_args(argc, argv, &o);
    signal(SIGPIPE, SIG_IGN); /* a closed peer is an answer: write() says so */
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct link l;
    link_open(&l, &o);
    converse(&l, &o);
    link_close(&l);
    return 0;
}
