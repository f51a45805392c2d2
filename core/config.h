/*
 * The broker configuration: a mosquitto-style file of "key value" lines, '#'
 * comments, and "listener PORT [ADDRESS]" lines that start a listener block
 * whose keys apply to that listener. Parsing is pure (the caller reads the
 * file into memory) and reports the first error as "file:line: what is wrong".
 * The main thread parses at start-up; shards only read the result.
 */
#ifndef RINGMQ_CONFIG_H
#define RINGMQ_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"

enum config_log_level {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARNING = 1,
    LOG_LEVEL_NOTICE = 2,
    LOG_LEVEL_INFO = 3,
    LOG_LEVEL_DEBUG = 4,
};

#define CONFIG_PATH_MAX 1024

enum config_log_dest {
    CONFIG_LOG_STDERR = 1u << 0,
    CONFIG_LOG_STDOUT = 1u << 1,
    CONFIG_LOG_SYSLOG = 1u << 2,
    CONFIG_LOG_FILE = 1u << 3,
    CONFIG_LOG_NONE = 1u << 4, /* "log_dest none": nothing, whatever else is named */
};
#define CONFIG_WARNINGS_MAX 32
#define CONFIG_ERRORS_MAX   64
#define CONFIG_CIPHERS_MAX  512 /* a TLS 1.2 cipher list */
#define CONFIG_PSK_HINT_MAX 128
/* certfile/keyfile pairs per listener: the first serves clients that name
 * no server (or one no certificate names), the others the names in their
 * certificates (SNI). */
#define CONFIG_TLS_CERTS_MAX 8
/* tls_ticket_rotation: seconds a session-ticket key encrypts new tickets
 * (it decrypts them one period more); 0 turns resumption off. */
#define CONFIG_TICKET_ROTATION_DEFAULT 3600u
#define CONFIG_TICKET_ROTATION_MAX     86400u

enum config_auth_method {
    CONFIG_AUTH_SCRAM_SHA512 =
        1u << 0, /* "SCRAM-SHA-512" over password_file SCRAM-SHA-512$ entries */
};

/* Tri-state for settings a listener may override. */
enum config_tristate { CONFIG_UNSET = -1, CONFIG_FALSE = 0, CONFIG_TRUE = 1 };

/* A listener's TLS settings, mosquitto's keys inside its block. TLS is on
 * when certfile (with its keyfile) or psk_file is set. Paths are read when
 * the contexts are built (net/tls.c), not by the parser. */
enum config_tls_version { CONFIG_TLS_1_2 = 0x0303, CONFIG_TLS_1_3 = 0x0304 };
struct config_tls_pair {
    char certfile[CONFIG_PATH_MAX];
    char keyfile[CONFIG_PATH_MAX];
    int line;         /* the certfile line */
    int keyfile_line; /* 0: not given */
};

struct config_tls {
    bool enabled; /* certfile or psk_file set */
    /* The first certfile/keyfile pair (the default certificate). */
    char certfile[CONFIG_PATH_MAX];
    char keyfile[CONFIG_PATH_MAX];
    /* Further pairs, chosen by the server name a client asks for (SNI)
     * among the DNS names of their certificates. */
    struct config_tls_pair sni[CONFIG_TLS_CERTS_MAX - 1];
    uint32_t sni_count;
    char cafile[CONFIG_PATH_MAX]; /* "": none */
    char capath[CONFIG_PATH_MAX]; /* "": none */
    char crlfile[CONFIG_PATH_MAX];
    bool require_certificate;
    bool use_identity_as_username;    /* the certificate's CN is the username */
    bool use_subject_as_username;     /* the certificate's subject DN is the username */
    uint16_t min_version;             /* enum config_tls_version; tls_version, default TLS 1.2 */
    char ciphers[CONFIG_CIPHERS_MAX]; /* TLS 1.2 suites (OpenSSL list syntax); "": the default */
    char psk_hint[CONFIG_PSK_HINT_MAX];
    char psk_file[CONFIG_PATH_MAX]; /* mosquitto's identity:hexkey lines (TLS 1.2 PSK) */
    int line; /* the first certfile line (else psk_file's), for messages about the files */
    /* Where each other key was given, 0: not in the file. The parser
     * refuses a key given twice in one block by them, and config_finish()
     * names the line of a key that contradicts the others. */
    int keyfile_line;
    int cafile_line;
    int capath_line;
    int crlfile_line;
    int require_certificate_line;
    int use_identity_as_username_line;
    int use_subject_as_username_line;
    int tls_version_line;
    int ciphers_line;
    int psk_hint_line;
    int psk_file_line;
};

/* allow_from / deny_from lines (core/config_limits.c), kept as written:
 * the security snapshot parses them (security/netrule.h) and reports a bad
 * one with its line. listener: the block's index, or CONFIG_NETRULE_GLOBAL.
 * A listener's deny ranges are the global ones and its own; its allow
 * ranges are its own if it has any, else the global ones. */
#define CONFIG_NETRULE_GLOBAL 0xffffu
#define CONFIG_NETRULES_MAX   1000000u
#define CONFIG_NETRULE_TEXT   64u /* NETRULE_CIDR_TEXT_MAX */
struct config_netrule {
    char text[CONFIG_NETRULE_TEXT + 1];
    bool deny;
    uint16_t listener;
    int line;
};

/* Per-client rates (core/config_limits.c): token buckets with a burst of
 * one second's worth; 0 = no limit. In a listener block for that listener,
 * at global scope a default for the others. */
#define CONFIG_RATE_INHERIT   UINT64_MAX   /* not set here: the global value */
#define CONFIG_RATE_MSGS_MAX  10000000u    /* packets per second */
#define CONFIG_RATE_BYTES_MAX 10000000000u /* bytes per second (80 Gbit/s) */
struct config_rates {
    uint64_t publish_per_s;       /* max_publish_rate: PUBLISH packets */
    uint64_t subscribe_per_s;     /* max_subscribe_rate: SUBSCRIBE and UNSUBSCRIBE */
    uint64_t inbound_bytes_per_s; /* max_inbound_rate: bytes of every packet */
};

/* How a listener admits connections (core/config_limits.c), set in its
 * block or globally as a default; CONFIG_RATE_INHERIT until config_finish
 * resolves it (0: off). */
#define CONFIG_CONNECT_RATE_MAX        1000000u /* connections per second */
#define CONFIG_PER_IP_MAX              1000000u
#define CONFIG_FLAPPING_S_MAX          (30u * 86400u) /* flapping_window, flapping_ban */
#define CONFIG_FLAPPING_WINDOW_DEFAULT 60u
#define CONFIG_FLAPPING_BAN_DEFAULT    300u
#define CONFIG_OVERLOAD_LAG_MS_MAX     60000u
#define CONFIG_OVERLOAD_LAG_MS_DEFAULT 1000u
struct config_admit {
    uint64_t proxy_protocol;       /* enable_proxy_protocol: 0, 1 or 2 */
    uint64_t connections_per_ip;   /* max_connections_per_ip */
    uint64_t connect_per_s;        /* max_connect_rate: the listener's, all addresses */
    uint64_t connect_per_s_per_ip; /* max_connect_rate_per_ip */
};

struct config_listener {
    uint16_t port;             /* 0: an ephemeral port (tests) */
    char address[64];          /* numeric IPv4/IPv6 or "" for all addresses */
    int allow_anonymous;       /* enum config_tristate; resolved by config_finish() */
    bool anonymous_by_default; /* allowed by ringmq's loopback default, not by the file */
    uint32_t max_connections;  /* 0: unlimited */
    int line;                  /* where the block starts, for messages */
    struct config_tls tls;
    /* The credentials and ACL that apply here: with per_listener_settings
     * the block's own, else the global ones (config_finish copies them).
     * "" = none. */
    char password_file[CONFIG_PATH_MAX];
    int password_file_line;
    char acl_file[CONFIG_PATH_MAX];
    int acl_file_line;
    struct config_rates rates; /* resolved by config_finish: never CONFIG_RATE_INHERIT */
    struct config_admit admit; /* likewise */
};

struct config {
    char source[256]; /* file name for messages, "<default>" when embedded */

    uint32_t shards;   /* 0 = auto: one per online CPU */
    bool cpu_affinity; /* pin shard N to CPU N mod online CPUs */
    enum config_log_level log_level;
    int log_level_line; /* 0: not set in the file */
    /* Running as a service (core/config_ops.c). log_dest: where lines go
     * (enum config_log_dest bits; 0 = not set: stderr), log_file its file;
     * log_type lines (mosquitto's names) set log_level to the most verbose
     * type named. pid_file ("" = none), user (the account to drop to when
     * started as root; "" = "ringmq" if it exists). */
    uint32_t log_dest;
    char log_file[CONFIG_PATH_MAX];
    int log_type_line;
    char pid_file[CONFIG_PATH_MAX];
    char user[64];
    int user_line;

    /* mosquitto 2.0's scoping of allow_anonymous, password_file and
     * acl_file (core/config_auth.c): global wherever they stand, unless
     * per_listener_settings (which must come before them). */
    bool per_listener_settings;
    int per_listener_settings_line;
    int allow_anonymous;          /* global, enum config_tristate */
    int allow_anonymous_in_block; /* line of one inside a listener block (global anyway) */
    int auth_first_line;          /* the first of those keys, for per_listener_settings */
    char auth_first_key[32];

    uint32_t max_packet_size;       /* bytes, 1..PACKET_SIZE_MAX */
    uint16_t max_keepalive_s;       /* clients asking more get this (5.0: server keep alive) */
    uint32_t max_inflight_messages; /* QoS 1/2 unacknowledged per client, 1..INFLIGHT_MAX */
    uint32_t
        max_queued_messages; /* per session, 1..QUEUED_MESSAGES_MAX (0 in the file: the ceiling) */
    uint64_t max_queued_bytes;               /* per session, 0 = only the message count applies */
    uint64_t persistent_client_expiration_s; /* 0 = never */
    uint32_t connect_timeout_ms;             /* time a new connection has to send CONNECT */
    uint32_t max_output_buffer; /* bytes queued to one client before it counts as slow */
    bool retain_available;
    uint64_t max_retained_messages; /* 0 = unbounded */
    uint64_t max_retained_bytes;    /* sum of stored message sizes, 0 = unbounded */
    uint8_t max_qos;
    uint16_t max_topic_alias;   /* aliases a 5.0 client may set, 0..TOPIC_ALIAS_MAX */
    uint32_t max_subscriptions; /* per client, 1..SUBSCRIPTIONS_PER_CLIENT_MAX */
    uint32_t max_topic_levels;  /* 1..TOPIC_LEVELS_MAX */
    /* A CONNECT (and anything before CONNACK) larger than this is refused
     * with 0x95 Packet too large, checked from the fixed header. Bytes;
     * config_finish() leaves it at most max_packet_size. */
    uint32_t max_connect_size;
    int max_connect_size_line; /* 0: not set in the file */
    uint32_t max_sessions;     /* sessions in all, connected or not, 1..CONFIG_SESSIONS_MAX */
    /* Bytes the allocator may hold before the broker refuses new work; 0
     * (the default) = half the machine's memory, or of the cgroup's
     * memory.max where that is smaller: main.c resolves it at start-up. */
    uint64_t memory_limit;
    int memory_limit_line;   /* 0: not set in the file */
    uint32_t sys_interval_s; /* $SYS publication period, 0 = off */
    uint32_t auth_threads;   /* password-check threads, 0..AUTH_THREADS_MAX; 0 = on the shard */
    /* How long a verified password is let in again without hashing
     * (security/cred_cache.h), 0..AUTH_CACHE_S_MAX; 0: never. */
    uint32_t auth_cache_s;
    struct config_rates rates; /* the defaults of listeners that set none */
    struct config_admit admit;
    /* Broker-wide: bans (security/ban.h), read like the ACL; flapping and
     * failed logins (security/tally.h). 0: off. */
    char ban_file[CONFIG_PATH_MAX];
    int ban_file_line;
    uint32_t flapping_max_connects;
    uint32_t flapping_window_s; /* default 60 */
    uint32_t flapping_ban_s;    /* default 300 */
    uint32_t auth_failures_max;
    /* A shard whose loop turn takes longer than this is overloaded: new
     * CONNECTs there get 0x89 Server busy (3.1.1: 3) until turns are
     * quick again. 0: off. */
    uint32_t overload_lag_ms;
    /* allow_from and deny_from, in file order; heap (config_fini frees). */
    struct config_netrule *netrules;
    uint32_t netrule_count, netrule_cap;

    /* Credentials: mosquitto's password file (security/passwd.h), read at
     * start-up by the security snapshot; "" = none. */
    char password_file[CONFIG_PATH_MAX];
    int password_file_line;
    /* mosquitto's acl_file (security/acl.h); "" = no ACL: every client
     * that logged in may publish and subscribe anywhere but $SYS. */
    char acl_file[CONFIG_PATH_MAX];
    int acl_file_line;
    /* MQTT 5.0 enhanced authentication methods offered (enum
     * config_auth_method bits); 0: a CONNECT naming a method gets 0x8C. */
    uint32_t auth_methods;
    int auth_methods_line;
    uint32_t tls_ticket_rotation_s; /* 0: no session tickets */
    /* metrics_listener PORT [ADDRESS] (net/metrics_http.c): the HTTP
     * endpoint for Prometheus, off unless metrics_line != 0; the address
     * numeric, "127.0.0.1" when none was given; port 0: an ephemeral one
     * (tests; the log names it). metrics_password_file: HTTP basic auth
     * against a mosquitto password file, part of the security snapshot;
     * "" = none. */
    int metrics_line;
    uint16_t metrics_port;
    char metrics_address[64];
    char metrics_password_file[CONFIG_PATH_MAX];
    int metrics_password_file_line;
    uint32_t listener_count;
    struct config_listener listeners[LISTENERS_MAX];
    /* What config_finish found worth saying that does not stop the start
     * ("file:line: ..."): main.c logs them, --test-config prints them. */
    uint32_t warning_count;
    uint32_t parse_warnings; /* of them, those config_parse made (config_finish keeps them) */
    char warnings[CONFIG_WARNINGS_MAX][320];
    /* Set by the caller before config_parse: with collect_errors a bad
     * line does not stop the parse; every error is kept here (the first
     * CONFIG_ERRORS_MAX, error_count counts them all) and config_parse
     * still returns -1, with the first in err (--test-config lists them
     * all). include_fn reads the *.conf files of an include_dir (the
     * caller does the file system: core reads no file) and parses each
     * into c with config_parse; NULL: include_dir is refused. */
    bool collect_errors;
    uint32_t error_count;
    char errors[CONFIG_ERRORS_MAX][320];
    int (*include_fn)(void *ctx, struct config *c, const char *dir, char *err, size_t errlen);
    void *include_ctx;
    uint32_t include_depth; /* include_dir is taken from the main file only */
};

/* Defaults and bounds of keys whose range is a policy, not a protocol
 * ceiling (those live in core/limits.h).
 *
 * max_connect_size: a client that has not authenticated yet gets no more
 * than this of the broker's memory per connection. 64 KiB holds any real
 * CONNECT (client id, will, user name, password, 5.0 properties); below 128
 * bytes a CONNECT with a 23-byte client id and ordinary credentials no
 * longer fits, so smaller values are refused as a mistake. */
#define CONFIG_CONNECT_SIZE_DEFAULT 65536u
#define CONFIG_CONNECT_SIZE_MIN     128u
/* max_sessions: each session costs at least about a kilobyte, so the
 * ceiling is about 100 GiB of sessions alone. */
#define CONFIG_SESSIONS_DEFAULT 1000000u
#define CONFIG_SESSIONS_MAX     100000000u
/* memory_limit: below 1 MiB the broker's own tables would exceed it; the
 * ceiling (1 PiB) only keeps the arithmetic on it far from overflow. */
#define CONFIG_MEMORY_LIMIT_MIN (1ull << 20)
#define CONFIG_MEMORY_LIMIT_MAX (1ull << 50)

/* Fills defaults: no listeners, shards auto, max_packet_size
 * PACKET_SIZE_DEFAULT, max_keepalive 65535, max_inflight_messages 20,
 * max_queued_messages 1000, max_queued_bytes 0, log level notice,
 * max_connect_size 65536, max_sessions 1000000, memory_limit 0 (auto), ... */
void config_init(struct config *c);

/*
 * Parses text (len bytes, need not be NUL-terminated) named source into c,
 * which config_init() prepared. Returns 0, or -1 with err (errlen bytes)
 * holding "source:line: message". Unknown keys, bad values, values out of
 * range, a key in the wrong place, a duplicate listener port/address all are
 * errors. Then config_finish() must be called.
 */
int config_parse(struct config *c, const char *source, const char *text, size_t len, char *err,
                 size_t errlen);

/* Frees what config_parse allocated (the allow_from/deny_from list); c
 * may be parsed again after config_init. */
void config_fini(struct config *c);

/*
 * Resolves what depends on the whole file: with no listener, adds the
 * default 127.0.0.1:1883 listener; resolves each listener's allow_anonymous
 * (listener value, else the global value, else true only for a loopback
 * address - 127.0.0.0/8 or ::1 - and false otherwise); brings a default
 * max_connect_size down to max_packet_size (one set in the file above
 * max_packet_size is an error). 0 or -1 with err.
 */
int config_finish(struct config *c, char *err, size_t errlen);

/* The embedded default config text used when no -c is given. */
extern const char config_default_text[];

#endif
