/*
 * gemm.c -- the one GEMM entry point (mer_sgemm) and the only file that talks to a BLAS.
 *
 * Backends: oneDNN (dnnl_sgemm) and OpenBLAS (cblas_sgemm), each compiled in when the build
 * finds it (MER_HAVE_DNNL, MER_HAVE_OPENBLAS), plus naive reference loops. The default is chosen
 * by measurement on the target machine (see docs/gemm.md and `mer bench gemm`).
 */
#include "internal.h"

#include <string.h>

#ifdef MER_HAVE_OPENBLAS
#include <cblas.h>
#endif
#ifdef MER_HAVE_DNNL
#include <dnnl.h>
#include <pthread.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef MER_HAVE_DNNL
/* oneDNN chooses its own kernels from cpuid. When mer's dispatch has no AVX-512 (MER_NO_AVX512=1,
 * or a CPU without it) it is capped at AVX2 too, so the variable covers the BLAS as well. oneDNN
 * takes the cap only before its first kernel: once, before every first call into it. */
static pthread_once_t dnnl_isa_once = PTHREAD_ONCE_INIT;
static void dnnl_isa_cap(void) {
    if (!(mer_cpu_features() & MER_CPU_AVX512)) (void)dnnl_set_max_cpu_isa(dnnl_cpu_isa_avx2);
}
static void dnnl_ready(void) { pthread_once(&dnnl_isa_once, dnnl_isa_cap); }
#endif


#if defined(MER_HAVE_DNNL)
#define MER__GEMM_BUILD_DEFAULT MER_GEMM_DNNL
#elif defined(MER_HAVE_OPENBLAS)
#define MER__GEMM_BUILD_DEFAULT MER_GEMM_OPENBLAS
#else
#define MER__GEMM_BUILD_DEFAULT MER_GEMM_NAIVE
#endif

#ifdef MER_GEMM_FORCE_OPENBLAS
#undef MER__GEMM_BUILD_DEFAULT
#define MER__GEMM_BUILD_DEFAULT MER_GEMM_OPENBLAS
#endif

static mer_gemm_backend current = MER__GEMM_BUILD_DEFAULT;

int mer_gemm_backend_available(mer_gemm_backend b) {
    switch (b) {
    case MER_GEMM_DEFAULT: case MER_GEMM_NAIVE: return 1;
#ifdef MER_HAVE_OPENBLAS
    case MER_GEMM_OPENBLAS: return 1;
#endif
#ifdef MER_HAVE_DNNL
    case MER_GEMM_DNNL: return 1;
#endif
    default: return 0;
    }
}

mer_status mer_gemm_set_backend(mer_gemm_backend b) {
    if (!mer_gemm_backend_available(b))
        return mer__err(MER_ERR_UNSUPPORTED, "gemm backend %s is not compiled in",
                        mer_gemm_backend_name(b));
    current = b == MER_GEMM_DEFAULT ? MER__GEMM_BUILD_DEFAULT : b;
    return MER_OK;
}

mer_gemm_backend mer_gemm_get_backend(void) { return current; }

int mer__gemm_blas_avx512(void) {
#ifdef MER_HAVE_DNNL
    if (current == MER_GEMM_DNNL) {
        dnnl_ready();
        const dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
        return !(isa == dnnl_cpu_isa_sse41 || isa == dnnl_cpu_isa_avx || isa == dnnl_cpu_isa_avx2 ||
                 isa == dnnl_cpu_isa_avx2_vnni);
    }
#endif
    return -1; /* OpenBLAS reads OPENBLAS_CORETYPE when it is loaded; the naive loops are C */
}

const char *mer_gemm_backend_name(mer_gemm_backend b) {
    switch (b) {
    case MER_GEMM_DEFAULT: return "default";
    case MER_GEMM_OPENBLAS: return "openblas";
    case MER_GEMM_DNNL: return "onednn";
    case MER_GEMM_NAIVE: return "naive";
    }
    return "?";
}

void mer__gemm_set_threads(int n) {
#ifdef MER_HAVE_OPENBLAS
    openblas_set_num_threads(n);
#endif
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    (void)n;
}

typedef struct {
    int ta, tb;
    int64_t M, N, K, lda, ldb, ldc;
    float alpha, beta;
    const float *A, *B;
    float *C;
} naive_job;

static void naive_rows(void *u, int64_t r0, int64_t r1, int t) {
    (void)t;
    const naive_job *j = u;
    for (int64_t i = r0; i < r1; i++) {
        for (int64_t n = 0; n < j->N; n++) {
            double acc = 0;
            for (int64_t k = 0; k < j->K; k++) {
                float a = j->ta ? j->A[k * j->lda + i] : j->A[i * j->lda + k];
                float b = j->tb ? j->B[n * j->ldb + k] : j->B[k * j->ldb + n];
                acc += (double)a * b;
            }
            float *c = &j->C[i * j->ldc + n];
            *c = j->alpha * (float)acc + (j->beta == 0.0f ? 0.0f : j->beta * *c);
        }
    }
}

void mer_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
               const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
               int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) { /* C = beta * C, with beta == 0 overwriting (NaN-safe) */
        for (int64_t i = 0; i < M; i++)
            for (int64_t n = 0; n < N; n++) C[i * ldc + n] = beta == 0.0f ? 0.0f : beta * C[i * ldc + n];
        return;
    }
    /* Below ~4M multiply-adds waking the other threads costs more than it saves (measured:
     * a 32x128x128 product took 156 us on 2 threads, 30 us on one), so small products run on
     * the calling thread. The choice depends only on the shape: results stay reproducible. */
    int small = (double)M * (double)N * (double)K < 4e6;
    (void)small;
    switch (current) {
#ifdef MER_HAVE_DNNL
    case MER_GEMM_DNNL:
        dnnl_ready();
#ifdef _OPENMP
        if (small && omp_get_max_threads() > 1 && !omp_in_parallel()) {
            int saved = omp_get_max_threads();
            omp_set_num_threads(1);
            dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb,
                       beta, C, ldc);
            omp_set_num_threads(saved);
            return;
        }
#endif
        dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta,
                   C, ldc);
        return;
#endif
#ifdef MER_HAVE_OPENBLAS
    case MER_GEMM_OPENBLAS:
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                    trans_b ? CblasTrans : CblasNoTrans, (blasint)M, (blasint)N, (blasint)K, alpha,
                    A, (blasint)lda, B, (blasint)ldb, beta, C, (blasint)ldc);
        return;
#endif
    default: {
        naive_job j = {trans_a, trans_b, M, N, K, lda, ldb, ldc, alpha, beta, A, B, C};
        mer__parallel_for(M, 4, naive_rows, &j);
        return;
    }
    }
}

/* ---- bfloat16 path ----------------------------------------------------------------------- */

/* Branch-free round-to-nearest-even (NaN kept quiet), written so the compiler vectorises it. */
static void to_bf16_run(uint16_t *dst, const float *src, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t x;
        memcpy(&x, &src[i], 4);
        uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
        uint32_t quiet = (x >> 16) | 0x40u;
        dst[i] = (uint16_t)((x & 0x7fffffffu) > 0x7f800000u ? quiet : rounded);
    }
}

void mer_f32_to_bf16(uint16_t *dst, const float *src, int64_t n) { to_bf16_run(dst, src, n); }

typedef struct {
    uint16_t *dst;
    const float *src;
    int64_t k, lda;
} bf16_rows_job;

static void bf16_rows(void *u, int64_t r0, int64_t r1, int t) {
    (void)t;
    const bf16_rows_job *j = u;
    for (int64_t i = r0; i < r1; i++) to_bf16_run(j->dst + i * j->k, j->src + i * j->lda, j->k);
}

#ifdef MER_HAVE_DNNL
#include <pthread.h>
#include <string.h>

/* oneDNN matmul primitives are created per exact shape and strides and kept in a small cache:
 * models see few distinct shapes (fixed widths; the frame count varies by input). */
#define BF16_CACHE 64
typedef struct {
    int64_t key[8];
    dnnl_primitive_t prim;
    dnnl_memory_desc_t ad, bd, cd;
    uint64_t last_use;
} bf16_entry;

static struct {
    pthread_mutex_t mu;
    dnnl_engine_t engine;
    bf16_entry e[BF16_CACHE];
    int n;
    uint64_t clock;
} bf16 = {.mu = PTHREAD_MUTEX_INITIALIZER};

static mer_status bf16_prim(const int64_t key[8], bf16_entry **out) {
    for (int i = 0; i < bf16.n; i++)
        if (!memcmp(bf16.e[i].key, key, sizeof bf16.e[i].key)) {
            bf16.e[i].last_use = ++bf16.clock;
            *out = &bf16.e[i];
            return MER_OK;
        }
    dnnl_ready();
    if (!bf16.engine && dnnl_engine_create(&bf16.engine, dnnl_cpu, 0) != dnnl_success)
        return mer__err(MER_ERR_INTERNAL, "oneDNN: cannot create a CPU engine");
    int slot = bf16.n;
    if (slot == BF16_CACHE) { /* evict the least recently used */
        slot = 0;
        for (int i = 1; i < BF16_CACHE; i++)
            if (bf16.e[i].last_use < bf16.e[slot].last_use) slot = i;
        dnnl_primitive_destroy(bf16.e[slot].prim);
    } else {
        bf16.n++;
    }
    bf16_entry *e = &bf16.e[slot];
    int64_t M = key[0], N = key[1], K = key[2], tb = key[3], lda = key[4], ldb = key[5], ldc = key[6],
            acc = key[7];
    dnnl_dims_t da = {M, K}, sa = {lda, 1}, db = {K, N}, dc = {M, N}, sc = {ldc, 1};
    dnnl_dims_t sb = {ldb, 1};
    if (tb) { sb[0] = 1; sb[1] = ldb; }
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_matmul_desc_t md;
    dnnl_primitive_desc_t pd = NULL;
    int ok = dnnl_memory_desc_init_by_strides(&e->ad, 2, da, dnnl_bf16, sa) == dnnl_success &&
             dnnl_memory_desc_init_by_strides(&e->bd, 2, db, dnnl_bf16, sb) == dnnl_success &&
             dnnl_memory_desc_init_by_strides(&e->cd, 2, dc, dnnl_f32, sc) == dnnl_success &&
             dnnl_matmul_desc_init(&md, &e->ad, &e->bd, NULL, &e->cd) == dnnl_success &&
             dnnl_primitive_attr_create(&attr) == dnnl_success;
    if (ok && acc)
        ok = dnnl_post_ops_create(&po) == dnnl_success && dnnl_post_ops_append_sum(po, 1.0f) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    ok = ok && dnnl_primitive_desc_create(&pd, &md, attr, bf16.engine, NULL) == dnnl_success &&
         dnnl_primitive_create(&e->prim, pd) == dnnl_success;
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (!ok) {
        bf16.n--; /* the slot holds nothing usable */
        if (slot != bf16.n) bf16.e[slot] = bf16.e[bf16.n];
        return mer__err(MER_ERR_UNSUPPORTED, "oneDNN: no bf16 matmul for %lldx%lldx%lld on this CPU",
                        (long long)M, (long long)N, (long long)K);
    }
    memcpy(e->key, key, sizeof e->key);
    e->last_use = ++bf16.clock;
    *out = e;
    return MER_OK;
}
#endif

mer_status mer_sgemm_bf16(int trans_b, int64_t M, int64_t N, int64_t K, const float *A,
                          int64_t lda, const uint16_t *B, int64_t ldb, int accumulate, float *C,
                          int64_t ldc) {
    if (M < 0 || N < 0 || K < 0) return mer__err(MER_ERR_INVALID_ARG, "gemm bf16: negative size");
    if (M == 0 || N == 0) return MER_OK;
    int64_t mk;
    if (!mer__mul_overflow(M, K, &mk)) return mer__err(MER_ERR_NOMEM, "gemm bf16: size overflows");
    uint16_t *a16 = mer__alloc((size_t)(mk > 0 ? mk : 1) * sizeof(uint16_t));
    if (!a16) return MER_ERR_NOMEM;
    bf16_rows_job cj = {a16, A, K, lda};
    mer__parallel_for(M, 16, bf16_rows, &cj);
    mer_status st = MER_OK;
#ifdef MER_HAVE_DNNL
    int64_t key[8] = {M, N, K, trans_b != 0, K, ldb, ldc, accumulate != 0};
    pthread_mutex_lock(&bf16.mu);
    bf16_entry *e = NULL;
    st = bf16_prim(key, &e);
    dnnl_primitive_t prim = e ? e->prim : NULL;
    dnnl_memory_desc_t ad, bd, cd;
    if (e) { ad = e->ad; bd = e->bd; cd = e->cd; }
    dnnl_engine_t eng = bf16.engine;
    pthread_mutex_unlock(&bf16.mu);
    if (st == MER_OK) {
        dnnl_stream_t stream = NULL;
        dnnl_memory_t am = NULL, bm = NULL, cm = NULL;
        int ok = dnnl_stream_create(&stream, eng, dnnl_stream_default_flags) == dnnl_success &&
                 dnnl_memory_create(&am, &ad, eng, a16) == dnnl_success &&
                 dnnl_memory_create(&bm, &bd, eng, (void *)B) == dnnl_success &&
                 dnnl_memory_create(&cm, &cd, eng, C) == dnnl_success;
        if (ok) {
            dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}};
            ok = dnnl_primitive_execute(prim, stream, 3, args) == dnnl_success &&
                 dnnl_stream_wait(stream) == dnnl_success;
        }
        if (am) dnnl_memory_destroy(am);
        if (bm) dnnl_memory_destroy(bm);
        if (cm) dnnl_memory_destroy(cm);
        if (stream) dnnl_stream_destroy(stream);
        if (!ok) st = mer__err(MER_ERR_INTERNAL, "oneDNN: bf16 matmul failed");
    }
#else
    st = MER_ERR_UNSUPPORTED;
#endif
    /* Portable fallback (no oneDNN, or a oneDNN that has no bf16 matmul for this CPU, as
     * Debian's 2.6 on AMD Zen 4): widen B to float32 and use the fp32 GEMM on the rounded A.
     * The products of two bfloat16 values are exact in float32, so this is the same computation
     * up to the order of the float32 sums. */
    if (st == MER_ERR_UNSUPPORTED) {
        mer_clear_error();
        st = MER_OK;
        int64_t kn;
        float *a32 = NULL, *b32 = NULL;
        if (!mer__mul_overflow(K, N, &kn)) st = mer__err(MER_ERR_NOMEM, "gemm bf16: size overflows");
        if (st == MER_OK) {
            a32 = mer__alloc((size_t)mk * sizeof(float));
            b32 = mer__alloc((size_t)kn * sizeof(float));
            if (!a32 || !b32) st = MER_ERR_NOMEM;
        }
        if (st == MER_OK) {
            mer_convert_to_f32(a32, a16, MER_DTYPE_BF16, mk);
            int64_t rows = trans_b ? N : K, cols = trans_b ? K : N;
            for (int64_t r = 0; r < rows; r++) mer_convert_to_f32(b32 + r * cols, B + r * ldb, MER_DTYPE_BF16, cols);
            mer_sgemm(0, trans_b, M, N, K, 1.0f, a32, K, b32, cols, accumulate ? 1.0f : 0.0f, C, ldc);
        }
        mer__free(a32);
        mer__free(b32);
    }
    mer__free(a16);
    return st;
}
