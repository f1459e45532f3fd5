/*
 * tensor.c -- dtypes, tensor views, half/bfloat16 conversion, deterministic RNG.
 */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

size_t mer_dtype_size(mer_dtype t) {
    switch (t) {
    case MER_DTYPE_F32: case MER_DTYPE_I32: return 4;
    case MER_DTYPE_F16: case MER_DTYPE_BF16: case MER_DTYPE_I16: return 2;
    case MER_DTYPE_F64: case MER_DTYPE_I64: return 8;
    case MER_DTYPE_U8: case MER_DTYPE_I8: case MER_DTYPE_BOOL: return 1;
    default: return 0;
    }
}

const char *mer_dtype_name(mer_dtype t) {
    static const char *names[] = {"f32", "f16", "bf16", "f64", "i32", "i64", "u8", "i8", "i16", "bool"};
    if ((int)t < 0 || t >= MER_DTYPE_COUNT) return "?";
    return names[t];
}

mer_status mer_tensor_view(mer_tensor *out, void *data, mer_dtype dtype, int32_t ndim,
                           const int64_t *shape) {
    if (!out || ndim < 0 || ndim > MER_MAX_DIMS || mer_dtype_size(dtype) == 0)
        return mer__err(MER_ERR_INVALID_ARG, "tensor view: bad rank %d or dtype", (int)ndim);
    memset(out, 0, sizeof *out);
    out->data = data;
    out->dtype = dtype;
    out->ndim = ndim;
    int64_t stride = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        if (shape[i] < 0) return mer__err(MER_ERR_INVALID_ARG, "tensor view: negative dim");
        out->shape[i] = shape[i];
        out->strides[i] = stride;
        if (!mer__mul_overflow(stride, shape[i] ? shape[i] : 1, &stride))
            return mer__err(MER_ERR_NOMEM, "tensor view: size overflows");
    }
    return MER_OK;
}

int64_t mer_tensor_numel(const mer_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int mer_tensor_is_contiguous(const mer_tensor *t) {
    int64_t stride = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != stride) return 0;
        stride *= t->shape[i];
    }
    return 1;
}

char *mer_shape_str(char *buf, size_t n, int32_t ndim, const int64_t *shape) {
    size_t k = 0;
    if (n == 0) return buf;
    buf[0] = '\0';
    k += (size_t)snprintf(buf + k, k < n ? n - k : 0, "(");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (ndim == 1 && k < n) k += (size_t)snprintf(buf + k, n - k, ",");
    if (k < n) snprintf(buf + k, n - k, ")");
    return buf;
}

/* ---- half precision ---------------------------------------------------------------------- */

float mer__f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do { e++; mant <<= 1; } while (!(mant & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t mer__f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t mant = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) return (uint16_t)(sign | 0x7c00 | (mant ? 0x200 : 0));
    if (exp >= 0x1f) return (uint16_t)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (uint16_t)sign;
        mant |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t half = mant >> shift;
        uint32_t rem = mant & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++;
    return (uint16_t)half;
}

float mer__bf16_to_f32(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t mer__f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 0x40);
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

mer_status mer_convert_to_f32(float *dst, const void *src, mer_dtype dtype, int64_t n) {
    switch (dtype) {
    case MER_DTYPE_F32: memmove(dst, src, (size_t)n * 4); return MER_OK;
    case MER_DTYPE_F16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = mer__f16_to_f32(s[i]);
        return MER_OK;
    }
    case MER_DTYPE_BF16: {
        const uint16_t *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = mer__bf16_to_f32(s[i]);
        return MER_OK;
    }
    case MER_DTYPE_F64: {
        const double *s = src;
        for (int64_t i = 0; i < n; i++) dst[i] = (float)s[i];
        return MER_OK;
    }
    default:
        return mer__err(MER_ERR_DTYPE, "cannot convert %s to f32", mer_dtype_name(dtype));
    }
}

/* ---- RNG --------------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void mer__rng_seed(mer__rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t mer__rng_u64(mer__rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double mer__rng_uniform(mer__rng *r) { return (double)(mer__rng_u64(r) >> 11) * 0x1.0p-53; }

double mer__rng_normal(mer__rng *r) {
    double u1 = mer__rng_uniform(r), u2 = mer__rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
