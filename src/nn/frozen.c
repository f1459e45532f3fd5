/*
 * frozen.c -- the packed frozen linear of the kit (mer__plin): a torch.nn.Linear whose weights
 * never change, packed once for the packed kernels (src/kernels/packed.c) so that a training
 * step streams each weight panel once per block of rows and never repacks weights per call:
 * forward y = x W^T + b and backward dx = dy W through a second packing of W^T, both float32
 * or both int8 W8A8 dynamic. All scratch comes from the caller (mer__plin_ws_bytes), so steady-state
 * steps do not allocate.
 */
#include "nn/nn.h"

#include <string.h>

/* wt (in, out) = w^T in tiles, so both sides stay in cache */
static void transpose(float *wt, const float *w, int64_t out, int64_t in) {
    const int64_t B = 32;
    for (int64_t o0 = 0; o0 < out; o0 += B)
        for (int64_t i0 = 0; i0 < in; i0 += B)
            for (int64_t o = o0; o < out && o < o0 + B; o++)
                for (int64_t i = i0; i < in && i < i0 + B; i++) wt[i * out + o] = w[o * in + i];
}

mer_status mer__plin_init(mer__plin *l, const float *w, const float *b, int64_t in, int64_t out,
                          mer_pack_type type, int want_dx) {
    memset(l, 0, sizeof *l);
    l->in = in;
    l->out = out;
    l->w = w;
    mer_status st = mer_packed_init(&l->fwd, w, MER_DTYPE_F32, b, out, in, type);
    if (st == MER_OK && want_dx) {
        int64_t n;
        float *wt = mer__mul_overflow(in, out, &n) ? mer__alloc((size_t)n * sizeof(float)) : NULL;
        if (!wt) st = MER_ERR_NOMEM;
        else {
            transpose(wt, w, out, in);
            st = mer_packed_init(&l->bwd, wt, MER_DTYPE_F32, NULL, in, out, type);
            mer__free(wt);
        }
    }
    if (st) mer__plin_free(l);
    return st;
}

void mer__plin_free(mer__plin *l) {
    mer_packed_free(l->fwd);
    mer_packed_free(l->bwd);
    l->fwd = l->bwd = NULL;
}

size_t mer__plin_bytes(const mer__plin *l) { return mer_packed_bytes(l->fwd) + mer_packed_bytes(l->bwd); }

size_t mer__plin_ws_bytes(const mer__plin *l, int64_t rows) {
    size_t a = mer__packed_ws_bytes(l->fwd, rows), b = mer__packed_ws_bytes(l->bwd, rows);
    return a > b ? a : b;
}

void mer__plin_fwd(const mer__plin *l, float *y, const float *x, int64_t rows, int accumulate,
                   mer_epilogue epi, void *ws) {
    /* cannot fail: the shapes are the packing's and the scratch is the caller's */
    (void)mer__packed_linear_ws(y, l->out, x, l->in, rows, l->fwd, accumulate, epi, ws);
}

void mer__plin_dx(const mer__plin *l, float *dx, const float *dy, int64_t rows, int accumulate,
                  void *ws) {
    if (l->bwd)
        (void)mer__packed_linear_ws(dx, l->in, dy, l->out, rows, l->bwd, accumulate, MER_EPI_NONE, ws);
    else
        mer_sgemm(0, 0, rows, l->in, l->out, 1.0f, dy, l->out, l->w, l->in, accumulate ? 1.0f : 0.0f,
                  dx, l->in);
}
