/*
 * zip.c -- a read-only view of a zip archive held in memory (for torch.save checkpoints).
 *
 * torch.save (PyTorch >= 1.6) writes an uncompressed ("stored") zip: <archive>/data.pkl, one
 * <archive>/data/<key> record per storage, each record's data aligned to 64 bytes through
 * padding in the local header's extra field, and ZIP64 records once a size or offset passes
 * 4 GiB. We read the end-of-central-directory record (and its ZIP64 locator/record), then
 * every central-directory entry (ZIP64 extra fields included), and resolve each entry's local
 * header to find where its bytes start. Every offset and length is checked against the buffer
 * with overflow-safe arithmetic before use; a name repeated in the directory is refused (two
 * readers could otherwise disagree on which copy a tensor is). Compressed entries are listed
 * but refused when their data is asked for: torch never compresses and we keep no inflater.
 */
#include "io_internal.h"

#include <string.h>

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* [off, off + len) inside [0, size) without overflow */
static int in_bounds(uint64_t off, uint64_t len, uint64_t size) { return off <= size && len <= size - off; }

void mer__zip_close(mer__zip *z) {
    if (!z) return;
    for (int64_t i = 0; i < z->n; i++) free(z->e[i].name);
    free(z->e);
    memset(z, 0, sizeof *z);
}

static int cmp_entry_name(const void *a, const void *b) {
    return strcmp(((const mer__zip_entry *)a)->name, ((const mer__zip_entry *)b)->name);
}

/* Locate the end-of-central-directory record: the last signature within the final
 * 22 + 65535 bytes whose comment length reaches exactly to the end of the buffer. */
static int64_t find_eocd(const uint8_t *b, size_t size) {
    if (size < 22) return -1;
    size_t lo = size > 22 + 65535 ? size - 22 - 65535 : 0;
    for (size_t i = size - 22 + 1; i-- > lo;)
        if (rd32(b + i) == 0x06054b50 && i + 22 + rd16(b + i + 20) == size) return (int64_t)i;
    return -1;
}

mer_status mer__zip_open(mer__zip *z, const uint8_t *b, size_t size, const char *path) {
    memset(z, 0, sizeof *z);
    z->buf = b;
    z->size = size;
    z->path = path;
    int64_t eo = find_eocd(b, size);
    if (eo < 0)
        return mer__err(MER_ERR_FORMAT, "%s: zip: no end-of-central-directory record (truncated archive?)", path);
    const uint8_t *e = b + eo;
    uint64_t n_total = rd16(e + 10), cd_size = rd32(e + 12), cd_off = rd32(e + 16);
    if (rd16(e + 4) != 0 || rd16(e + 6) != 0 || rd16(e + 8) != rd16(e + 10))
        return mer__err(MER_ERR_FORMAT, "%s: zip: multi-disk archives are not supported", path);
    if (n_total == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {
        /* ZIP64: a 20-byte locator right before the EOCD points at the 56-byte ZIP64 record */
        if (eo < 20 || rd32(b + eo - 20) != 0x07064b50)
            return mer__err(MER_ERR_FORMAT, "%s: zip: ZIP64 sizes without a ZIP64 locator", path);
        uint64_t z64 = rd64(b + eo - 20 + 8);
        if (!in_bounds(z64, 56, (uint64_t)eo - 20) || rd32(b + z64) != 0x06064b50)
            return mer__err(MER_ERR_FORMAT, "%s: zip: ZIP64 end-of-central-directory record out of bounds or bad",
                            path);
        n_total = rd64(b + z64 + 32);
        cd_size = rd64(b + z64 + 40);
        cd_off = rd64(b + z64 + 48);
    }
    if (!in_bounds(cd_off, cd_size, size))
        return mer__err(MER_ERR_FORMAT, "%s: zip: central directory [%llu, +%llu) outside the %zu-byte file", path,
                        (unsigned long long)cd_off, (unsigned long long)cd_size, size);
    if (n_total > cd_size / 46)
        return mer__err(MER_ERR_FORMAT, "%s: zip: %llu entries cannot fit a %llu-byte central directory", path,
                        (unsigned long long)n_total, (unsigned long long)cd_size);
    z->e = calloc(n_total ? (size_t)n_total : 1, sizeof *z->e);
    if (!z->e) return mer__err(MER_ERR_NOMEM, "%s: out of memory", path);

    uint64_t p = cd_off, end = cd_off + cd_size;
    for (uint64_t i = 0; i < n_total; i++) {
        if (!in_bounds(p, 46, end) || rd32(b + p) != 0x02014b50)
            return mer__err(MER_ERR_FORMAT, "%s: zip: central directory entry %llu is bad or truncated", path,
                            (unsigned long long)i);
        const uint8_t *c = b + p;
        uint16_t flags = rd16(c + 8), method = rd16(c + 10);
        uint64_t csize = rd32(c + 20), usize = rd32(c + 24), lho = rd32(c + 42);
        uint32_t nlen = rd16(c + 28), xlen = rd16(c + 30), clen = rd16(c + 32);
        if (!in_bounds(p + 46, (uint64_t)nlen + xlen + clen, end))
            return mer__err(MER_ERR_FORMAT, "%s: zip: central directory entry %llu overruns the directory", path,
                            (unsigned long long)i);
        const uint8_t *nm = c + 46, *x = nm + nlen;
        if (nlen == 0 || memchr(nm, 0, nlen))
            return mer__err(MER_ERR_FORMAT, "%s: zip: entry %llu has an empty name or a NUL in its name", path,
                            (unsigned long long)i);
        /* ZIP64 extra field: the 64-bit values, in this order, of the fields that are saturated */
        for (uint32_t q = 0; q + 4 <= xlen;) {
            uint16_t id = rd16(x + q), len = rd16(x + q + 2);
            if (q + 4 + len > xlen)
                return mer__err(MER_ERR_FORMAT, "%s: zip: entry \"%.*s\": extra field overruns", path, (int)nlen, nm);
            if (id == 1) {
                uint32_t r = q + 4, rend = q + 4 + len;
                uint64_t *fields[3] = {&usize, &csize, &lho};
                for (int f = 0; f < 3; f++) {
                    if (*fields[f] != 0xFFFFFFFFu) continue;
                    if (r + 8 > rend)
                        return mer__err(MER_ERR_FORMAT, "%s: zip: entry \"%.*s\": ZIP64 field missing", path,
                                        (int)nlen, nm);
                    *fields[f] = rd64(x + r);
                    r += 8;
                }
            }
            q += 4 + len;
        }
        if (!in_bounds(lho, 30, size) || rd32(b + lho) != 0x04034b50)
            return mer__err(MER_ERR_FORMAT, "%s: zip: entry \"%.*s\": local header at %llu is bad", path, (int)nlen,
                            nm, (unsigned long long)lho);
        uint64_t lnlen = rd16(b + lho + 26), lxlen = rd16(b + lho + 28);
        if (lnlen != nlen || !in_bounds(lho + 30, lnlen, size) || memcmp(b + lho + 30, nm, nlen) != 0)
            return mer__err(MER_ERR_FORMAT, "%s: zip: entry \"%.*s\": local header names another file", path,
                            (int)nlen, nm);
        uint64_t doff = lho + 30 + lnlen + lxlen;
        if (!in_bounds(doff, csize, size))
            return mer__err(MER_ERR_FORMAT, "%s: zip: entry \"%.*s\": data [%llu, +%llu) outside the %zu-byte file",
                            path, (int)nlen, nm, (unsigned long long)doff, (unsigned long long)csize, size);
        if (flags & 1)
            return mer__err(MER_ERR_UNSUPPORTED, "%s: zip: entry \"%.*s\" is encrypted", path, (int)nlen, nm);
        if (method == 0 && csize != usize)
            return mer__err(MER_ERR_FORMAT, "%s: zip: stored entry \"%.*s\" has sizes %llu and %llu", path,
                            (int)nlen, nm, (unsigned long long)csize, (unsigned long long)usize);
        mer__zip_entry *ze = &z->e[z->n];
        ze->name = malloc(nlen + 1);
        if (!ze->name) return mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
        memcpy(ze->name, nm, nlen);
        ze->name[nlen] = '\0';
        ze->offset = doff;
        ze->size = csize;
        ze->method = method;
        z->n++;
        p += 46 + (uint64_t)nlen + xlen + clen;
    }
    if (z->n > 1) qsort(z->e, (size_t)z->n, sizeof *z->e, cmp_entry_name);
    for (int64_t i = 1; i < z->n; i++)
        if (!strcmp(z->e[i].name, z->e[i - 1].name))
            return mer__err(MER_ERR_FORMAT, "%s: zip: entry \"%.200s\" appears twice", path, z->e[i].name);
    return MER_OK;
}

const mer__zip_entry *mer__zip_find(const mer__zip *z, const char *name) {
    int64_t lo = 0, hi = z->n - 1;
    while (lo <= hi) {
        int64_t mid = lo + (hi - lo) / 2;
        int c = strcmp(z->e[mid].name, name);
        if (!c) return &z->e[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

mer_status mer__zip_data(const mer__zip *z, const mer__zip_entry *e, const uint8_t **data) {
    if (e->method != 0)
        return mer__err(MER_ERR_UNSUPPORTED, "%s: zip: entry \"%.200s\" is compressed (method %u); torch.save stores "
                        "entries uncompressed",
                        z->path, e->name, (unsigned)e->method);
    *data = z->buf + e->offset;
    return MER_OK;
}
