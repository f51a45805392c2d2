/*
 * The main thread's reloads (DESIGN.md, Threads): the security snapshot
 * (credentials) and the TLS contexts, built anew from the files the config
 * names on SIGHUP, when one of those files changes (inotify on their
 * folders, so a file replaced by rename is seen too), and the rotation of
 * the session-ticket keys. A build that fails keeps what runs and logs
 * "file: why". New connections get the new contexts; existing ones keep
 * theirs to the end. The config file itself is not read again: listeners
 * and limits need a restart.
 */
#ifndef RINGMQ_RELOAD_H
#define RINGMQ_RELOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "broker.h"

#define RELOAD_WATCH_MAX 64 /* files and folders watched */

struct reload_watch {
    int wd;
    char name[256]; /* the file's name in the folder; "": the folder itself (capath) */
    bool tls;       /* a TLS file, else a credential file */
};

struct reload {
    int fd; /* inotify; -1: SIGHUP only */
    struct reload_watch w[RELOAD_WATCH_MAX];
    unsigned n;
    uint64_t tls_due_ms, auth_due_ms; /* a change seen: reload then; 0: none */
    uint64_t rotate_ms;               /* next ticket key; 0: no tickets */
};

/* A security snapshot from the config and the files it names: they are
 * read here, in net/, and security/ parses the bytes. NULL with
 * "file: what" or "file:line: what" in err. */
struct auth_snapshot *snapshot_load(const struct config *cfg, uint64_t generation,
                                    const uint64_t hash_key[2], char *err, size_t errlen);

/* Start-up, after the shards are created and before they run: the ticket
 * keys and generation 1 of every shard's TLS contexts; days to expiry
 * logged. 0, or 1 with "config:line: TLS KEY PATH: why" logged. */
int reload_tls_start(struct broker *b);
/* --test-config: every TLS listener's context built once and freed. 0 or 1
 * (printed on stderr). */
int reload_tls_check(const struct config *cfg);
/* After the shards are destroyed. */
void reload_tls_stop(struct broker *b);

/* The watcher, once the shards run. A failure to watch is a warning:
 * SIGHUP still reloads. */
void reload_init(struct reload *r, struct broker *b);
void reload_fini(struct reload *r);
/* Milliseconds until reload_tick has work (a debounced change or a key
 * rotation), at most max_ms. */
uint64_t reload_wait_ms(const struct reload *r, uint64_t now, uint64_t max_ms);
/* The inotify fd is readable: note what changed. */
void reload_events(struct reload *r, uint64_t now);
/* Runs what is due. */
void reload_tick(struct reload *r, struct broker *b, uint64_t now);
/* SIGHUP: credentials and TLS contexts. */
void reload_all(struct broker *b, const char *cause);

#endif
