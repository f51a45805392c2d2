/*
 * Password checks off the shards. A CONNECT with a username, where a
 * password file is configured, costs its entry's PBKDF2 iteration count in
 * HMAC-SHA512 rounds (about 2 ms for `ringmq --scram-entry`'s 4096, up to
 * 45 ms at PASSWD_ITERATIONS_MAX): on the shard, every other client of that
 * shard would wait that long, and anyone can send CONNECTs. So the shard
 * hands the check to this small pool and goes on; the answer comes back to
 * the shard, which replays the CONNECT (conn.c).
 *
 * Threads: authpool_submit is called by shard threads, the workers run
 * worker(), authpool_take by the shard that owns the completion list.
 * authpool_create / _stop / _destroy by the main thread. The queue and each
 * shard's completion list are under a mutex: one lock per CONNECT is
 * nothing next to the hash. A job holds no pointer into the security
 * snapshot (a reload may free it while the job waits) and its conn pointer
 * is only carried back, never dereferenced off the shard.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "authpool.h"
#include "shard.h"
#include "log.h"
#include "invariant.h"

struct authpool {
    struct broker *b;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct auth_job *head, *tail; /* waiting for a worker */
    bool stop;
    unsigned threads;
    pthread_t thread[AUTH_THREADS_MAX];
    atomic_uint jobs; /* outstanding: queued, hashing, or on a completion list */
};

static void job_free(struct authpool *p, struct auth_job *j)
{
    if (j->password) {
        explicit_bzero(j->password, j->password_len);
        free(j->password);
    }
    explicit_bzero(&j->check, sizeof(j->check));
    free(j);
    atomic_fetch_sub_explicit(&p->jobs, 1, memory_order_relaxed);
}

void authpool_job_free(struct broker *b, struct auth_job *j)
{
    job_free(b->authpool, j);
}

/* Hands a finished job to its shard and wakes it. */
static void complete(struct authpool *p, struct auth_job *j)
{
    struct shard *sh = p->b->shards[j->shard];
    pthread_mutex_lock(&sh->auth_lock);
    j->next = sh->auth_done;
    sh->auth_done = j;
    pthread_mutex_unlock(&sh->auth_lock);
    uint64_t one = 1;
    /* An eventfd write fails only on counter overflow; the shard reads the
     * counter back to zero on every wake. */
    ssize_t n = write(sh->auth_efd, &one, sizeof(one));
    (void)n;
}

static void *worker(void *arg)
{
    struct authpool *p = arg;
    log_set_thread(-1);
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->head && !p->stop)
            pthread_cond_wait(&p->cond, &p->lock);
        struct auth_job *j = p->head;
        if (!j)
            break; /* stopping and nothing left */
        p->head = j->next;
        if (!p->head)
            p->tail = NULL;
        bool stop = p->stop;
        pthread_mutex_unlock(&p->lock);
        /* At shutdown what is still queued is answered unhashed: the
         * shards are closing every connection anyway. So is a check whose
         * connection is gone: no one sees that answer or its timing. */
        if (stop || atomic_load_explicit(&j->cancelled, memory_order_relaxed))
            j->rc = MQTT_RC_SERVER_UNAVAILABLE;
        else
            j->rc = auth_check_verdict(&j->check, j->password, j->password_len);
        complete(p, j);
        pthread_mutex_lock(&p->lock);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

int authpool_create(struct broker *b, unsigned threads, struct authpool **out)
{
    *out = NULL;
    if (threads == 0)
        return 0;
    ASSERT(threads <= AUTH_THREADS_MAX);
    struct authpool *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->b = b;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);
    atomic_init(&p->jobs, 0);
    for (; p->threads < threads; p->threads++) {
        int err = pthread_create(&p->thread[p->threads], NULL, worker, p);
        if (err) {
            authpool_stop(p);
            authpool_destroy(p);
            return -err;
        }
    }
    *out = p;
    return 0;
}

int authpool_submit(struct authpool *p, struct auth_job *j)
{
    if (atomic_fetch_add_explicit(&p->jobs, 1, memory_order_relaxed) >= AUTH_JOBS_MAX) {
        atomic_fetch_sub_explicit(&p->jobs, 1, memory_order_relaxed);
        return -EBUSY;
    }
    pthread_mutex_lock(&p->lock);
    if (p->stop) {
        pthread_mutex_unlock(&p->lock);
        atomic_fetch_sub_explicit(&p->jobs, 1, memory_order_relaxed);
        return -ESHUTDOWN;
    }
    j->next = NULL;
    if (p->tail)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

unsigned authpool_pending(struct authpool *p)
{
    return p ? atomic_load_explicit(&p->jobs, memory_order_relaxed) : 0;
}

struct auth_job *authpool_take(struct shard *sh)
{
    pthread_mutex_lock(&sh->auth_lock);
    struct auth_job *list = sh->auth_done;
    sh->auth_done = NULL;
    pthread_mutex_unlock(&sh->auth_lock);
    /* Pushed at the head: reverse into submission order. */
    struct auth_job *rev = NULL;
    while (list) {
        struct auth_job *next = list->next;
        list->next = rev;
        rev = list;
        list = next;
    }
    return rev;
}

void authpool_stop(struct authpool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stop = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    for (unsigned i = 0; i < p->threads; i++)
        pthread_join(p->thread[i], NULL);
    p->threads = 0;
}

void authpool_destroy(struct authpool *p)
{
    if (!p)
        return;
    ASSERT(p->threads == 0 && !p->head);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p);
}
