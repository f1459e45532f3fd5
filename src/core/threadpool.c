/*
 * threadpool.c -- thread count and mer__parallel_for.
 *
 * The GEMM backend (oneDNN, built on OpenMP in Debian) already keeps a team of OpenMP threads.
 * A second pool of our own would sit beside it on the same cores, and each side's idle threads
 * spin for a while after a parallel region, stealing the core the other side needs next. So the
 * kernels' parallel loops run on the same OpenMP team: one set of threads for the whole process.
 *
 * The split is static: [0, n) is cut into `parts` contiguous ranges (the first n % parts one
 * item longer), range i runs on team thread i. It depends only on n, min_chunk and the thread
 * count, so a kernel that writes each output from one range is bitwise reproducible for a fixed
 * thread count. Nested calls (a range function calling mer__parallel_for) run serially.
 */
#include "internal.h"

#include <omp.h>
#include <unistd.h>

#define MER__MAX_THREADS 256

static int n_threads_cfg = 0; /* 0 = not set yet: online CPUs */

void mer__gemm_set_threads(int n); /* gemm.c */

void mer_set_threads(int n) {
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    if (n > MER__MAX_THREADS) n = MER__MAX_THREADS;
    n_threads_cfg = n;
    omp_set_num_threads(n);
    mer__gemm_set_threads(n);
}

int mer_get_threads(void) {
    if (n_threads_cfg == 0) mer_set_threads(0);
    return n_threads_cfg;
}

static _Thread_local int tl_threads = 0; /* 0: the process-wide count */

int mer__threads_use(int n) {
    int old = tl_threads;
    tl_threads = n > 0 ? (n < MER__MAX_THREADS ? n : MER__MAX_THREADS) : 0;
    /* the GEMM backend reads the OpenMP thread count of the calling thread */
    omp_set_num_threads(tl_threads ? tl_threads : mer_get_threads());
    return old;
}

int mer__threads(void) { return tl_threads ? tl_threads : mer_get_threads(); }

static void (*region_hook)(int part, int team, void *user);
static void *region_hook_user;

void mer__parallel_set_hook(void (*fn)(int part, int team, void *user), void *user) {
    region_hook_user = user;
    region_hook = fn;
}

void mer__parallel_for(int64_t n, int64_t min_chunk, mer__range_fn fn, void *user) {
    if (n <= 0) return;
    if (min_chunk < 1) min_chunk = 1;
    const int threads = tl_threads ? tl_threads : mer_get_threads();
    int64_t max_parts = n / min_chunk;
    int parts = (int64_t)threads < max_parts ? threads : (int)(max_parts > 0 ? max_parts : 1);
    if (parts <= 1 || omp_in_parallel()) {
        if (region_hook) region_hook(0, 1, region_hook_user);
        fn(user, 0, n, 0);
        return;
    }
    int64_t base = n / parts, rem = n % parts;
#pragma omp parallel num_threads(parts)
    {
        /* The runtime may give fewer threads than asked: each thread then takes several parts,
         * still in a fixed assignment. */
        int nt = omp_get_num_threads(), me = omp_get_thread_num();
        if (region_hook && me < parts) region_hook(me, nt, region_hook_user);
        for (int i = me; i < parts; i += nt) {
            int64_t b = i * base + (i < rem ? i : rem);
            int64_t e = b + base + (i < rem ? 1 : 0);
            if (e > b) fn(user, b, e, i);
        }
    }
}
