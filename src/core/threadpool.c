/*
 * threadpool.c -- a persistent pthread pool with a static range split (mer__parallel_for).
 *
 * Workers sleep on a condition variable between jobs. A job is split into as many contiguous
 * ranges as there are threads (never fewer than min_chunk items per range); thread 0 is the
 * caller. The split depends only on n, min_chunk and the thread count, so a kernel that writes
 * each output from exactly one range is bitwise reproducible for a fixed thread count.
 */
#include "internal.h"

#include <pthread.h>
#include <unistd.h>

#define MER__MAX_THREADS 256

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t start_cv, done_cv;
    pthread_t threads[MER__MAX_THREADS];
    int n_workers;       /* threads besides the caller */
    uint64_t generation; /* bumped per job */
    int pending;         /* workers still running the current job */
    int shutdown;
    /* current job */
    mer__range_fn fn;
    void *user;
    int64_t n;
    int parts;
} pool_t;

static pool_t pool = {.mu = PTHREAD_MUTEX_INITIALIZER,
                      .start_cv = PTHREAD_COND_INITIALIZER,
                      .done_cv = PTHREAD_COND_INITIALIZER};
static int n_threads_cfg = 0; /* 0 = not yet set: online CPUs */
static _Thread_local int in_pool_job = 0;
static pthread_mutex_t job_mu = PTHREAD_MUTEX_INITIALIZER; /* one job at a time */

void mer__gemm_set_threads(int n); /* gemm.c */

static void range_of(int64_t n, int parts, int i, int64_t *b, int64_t *e) {
    int64_t base = n / parts, rem = n % parts;
    *b = i * base + (i < rem ? i : rem);
    *e = *b + base + (i < rem ? 1 : 0);
}

static void *worker_main(void *arg) {
    int idx = (int)(intptr_t)arg; /* 1..n_workers */
    uint64_t seen = 0;
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        while (!pool.shutdown && pool.generation == seen) pthread_cond_wait(&pool.start_cv, &pool.mu);
        if (pool.shutdown) break;
        seen = pool.generation;
        mer__range_fn fn = pool.fn;
        void *user = pool.user;
        int64_t n = pool.n;
        int parts = pool.parts;
        pthread_mutex_unlock(&pool.mu);
        if (idx < parts) {
            int64_t b, e;
            range_of(n, parts, idx, &b, &e);
            in_pool_job = 1;
            if (e > b) fn(user, b, e, idx);
            in_pool_job = 0;
        }
        pthread_mutex_lock(&pool.mu);
        if (--pool.pending == 0) pthread_cond_signal(&pool.done_cv);
    }
    pthread_mutex_unlock(&pool.mu);
    return NULL;
}

static void pool_stop(void) {
    pthread_mutex_lock(&pool.mu);
    pool.shutdown = 1;
    pthread_cond_broadcast(&pool.start_cv);
    pthread_mutex_unlock(&pool.mu);
    for (int i = 0; i < pool.n_workers; i++) pthread_join(pool.threads[i], NULL);
    pool.n_workers = 0;
    pool.shutdown = 0;
}

static void pool_atexit(void) {
    if (pool.n_workers) pool_stop();
}

static void pool_ensure(int want_workers) {
    static int registered = 0;
    if (pool.n_workers == want_workers) return;
    if (pool.n_workers) pool_stop();
    for (int i = 0; i < want_workers; i++) {
        if (pthread_create(&pool.threads[i], NULL, worker_main, (void *)(intptr_t)(i + 1)) != 0) {
            MER_LOG_W("thread pool: could only start %d of %d workers", i, want_workers);
            want_workers = i;
            break;
        }
    }
    pool.n_workers = want_workers;
    if (!registered) {
        atexit(pool_atexit);
        registered = 1;
    }
}

void mer_set_threads(int n) {
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    if (n > MER__MAX_THREADS) n = MER__MAX_THREADS;
    n_threads_cfg = n;
    mer__gemm_set_threads(n);
}

int mer_get_threads(void) {
    if (n_threads_cfg == 0) mer_set_threads(0);
    return n_threads_cfg;
}

void mer__parallel_for(int64_t n, int64_t min_chunk, mer__range_fn fn, void *user) {
    if (n <= 0) return;
    if (min_chunk < 1) min_chunk = 1;
    int threads = mer_get_threads();
    int64_t max_parts = n / min_chunk;
    int parts = (int64_t)threads < max_parts ? threads : (int)(max_parts > 0 ? max_parts : 1);
    if (parts <= 1 || in_pool_job) {
        fn(user, 0, n, 0);
        return;
    }
    pthread_mutex_lock(&job_mu);
    pool_ensure(threads - 1);
    if (parts > pool.n_workers + 1) parts = pool.n_workers + 1;
    pthread_mutex_lock(&pool.mu);
    pool.fn = fn;
    pool.user = user;
    pool.n = n;
    pool.parts = parts;
    pool.pending = pool.n_workers;
    pool.generation++;
    pthread_cond_broadcast(&pool.start_cv);
    pthread_mutex_unlock(&pool.mu);

    int64_t b, e;
    range_of(n, parts, 0, &b, &e);
    in_pool_job = 1;
    if (e > b) fn(user, b, e, 0);
    in_pool_job = 0;

    pthread_mutex_lock(&pool.mu);
    while (pool.pending > 0) pthread_cond_wait(&pool.done_cv, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
    pthread_mutex_unlock(&job_mu);
}
