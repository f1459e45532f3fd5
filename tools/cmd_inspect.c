/*
 * cmd_inspect.c -- `mer inspect FILE...`: what a file holds without loading it.
 *   safetensors (a file, a sharded checkpoint's index.json, or a checkpoint directory): every
 *     tensor's name, dtype and shape, then the total parameter count;
 *   .npy: dtype and shape;
 *   tokenizer.json, vocab.txt, *.model: the tokenizer (tools/inspect_tokenizer.c);
 *   anything else: container, duration and streams through FFmpeg (tools/inspect_media.c).
 * A bad file prints one line `mer inspect: <file>: <problem>`; the exit code is 1 if any file
 * failed, 2 for usage errors.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int inspect_media(const char *path);
int inspect_tokenizer(const char *path);

static const char *st_dtype(mer_dtype t) {
    static const char *names[] = {"F32", "F16", "BF16", "F64", "I32", "I64", "U8", "I8", "I16", "BOOL"};
    return (int)t >= 0 && t < MER_DTYPE_COUNT ? names[t] : "?";
}

/* 1234567 -> "1.23M" */
static void human(char *buf, size_t n, int64_t v) {
    if (v >= 1000000000) snprintf(buf, n, "%.2fB", v / 1e9);
    else if (v >= 1000000) snprintf(buf, n, "%.2fM", v / 1e6);
    else if (v >= 1000) snprintf(buf, n, "%.2fK", v / 1e3);
    else snprintf(buf, n, "%lld", (long long)v);
}

static int inspect_safetensors(const char *path) {
    mer_safetensors *st;
    mer_status s = mer_safetensors_open(&st, path);
    if (s != MER_OK) return cli_fail("inspect", "%s", mer_last_error());
    int64_t n = mer_safetensors_count(st), params = 0, bytes = 0;
    int32_t shards = 0;
    size_t width = 4;
    mer_safetensors_entry e;
    for (int64_t i = 0; i < n; i++) {
        mer_safetensors_entry_at(st, i, &e);
        size_t l = strlen(e.name);
        if (l > width) width = l < 72 ? l : 72;
        if (e.shard + 1 > shards) shards = e.shard + 1;
        int64_t numel = 1;
        for (int32_t d = 0; d < e.ndim; d++) numel *= e.shape[d];
        params += numel;
        bytes += (int64_t)e.nbytes;
    }
    char h[32];
    human(h, sizeof h, params);
    printf("%s: %s, %lld tensors, %lld parameters (%s), %lld bytes of data", path, mer_safetensors_format(st),
           (long long)n,
           (long long)params, h, (long long)bytes);
    if (shards > 1) printf(", %d shards", (int)shards);
    const char *fmt = mer_safetensors_metadata(st, "format");
    if (fmt) printf(", format %s", fmt);
    printf("\n");
    for (int64_t i = 0; i < n; i++) {
        mer_safetensors_entry_at(st, i, &e);
        char sh[256];
        mer_shape_str(sh, sizeof sh, e.ndim, e.shape);
        if (shards > 1) printf("  %-*s %-4s %s  [shard %d]\n", (int)width, e.name, st_dtype(e.dtype), sh, (int)e.shard);
        else printf("  %-*s %-4s %s\n", (int)width, e.name, st_dtype(e.dtype), sh);
    }
    mer_safetensors_free(st);
    return 0;
}

static int inspect_npy(const char *path) {
    mer_dtype t;
    int32_t nd;
    int64_t shape[MER_MAX_DIMS];
    mer_status s = mer_npy_read_header(path, &t, &nd, shape);
    if (s != MER_OK) return cli_fail("inspect", "%s", mer_last_error());
    char sh[256];
    mer_shape_str(sh, sizeof sh, nd, shape);
    int64_t numel = 1;
    for (int32_t d = 0; d < nd; d++) numel *= shape[d];
    printf("%s: npy, %s, shape %s, %lld elements\n", path, mer_dtype_name(t), sh, (long long)numel);
    return 0;
}

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* What kind of file: by name first, then by the first bytes. */
static int inspect_one(const char *path) {
    struct stat sb;
    /* "-" (stdin), pipes and FIFOs can be read once: as media (the media reader keeps a copy);
     * sniffing their first bytes would consume them */
    if (!strcmp(path, "-")) return inspect_media(path);
    if (stat(path, &sb) != 0) return cli_fail("inspect", "%s: %s", path, strerror(errno));
    if (S_ISFIFO(sb.st_mode) || S_ISCHR(sb.st_mode) || S_ISSOCK(sb.st_mode)) return inspect_media(path);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    if (!S_ISDIR(sb.st_mode) && (!strcmp(base, "tokenizer.json") || !strcmp(base, "vocab.txt") ||
                                 has_suffix(base, ".model")))
        return inspect_tokenizer(path);
    if (S_ISDIR(sb.st_mode) || has_suffix(path, ".safetensors") || has_suffix(path, ".json") ||
        has_suffix(path, ".bin") || has_suffix(path, ".pt") || has_suffix(path, ".pth"))
        return inspect_safetensors(path);
    if (has_suffix(path, ".npy")) return inspect_npy(path);
    unsigned char head[9] = {0};
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(head, 1, sizeof head, f) : 0;
    if (f) fclose(f);
    if (got >= 6 && !memcmp(head, "\x93NUMPY", 6)) return inspect_npy(path);
    if (got == 9 && head[8] == '{' && head[7] == 0 && head[6] == 0 && head[5] == 0)
        return inspect_safetensors(path);
    if (got >= 4 && !memcmp(head, "PK\3\4", 4)) return inspect_safetensors(path); /* torch.save zip */
    if (got >= 4 && head[0] == 0x80 && head[2] == 0x8a && head[3] == 10) return inspect_safetensors(path);
    return inspect_media(path);
}

int cmd_inspect(int argc, char **argv) {
    int n = 0, rc = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_flag(argv[i], "--help") || cli_flag(argv[i], "-h")) {
            printf("usage: mer inspect FILE...\n"
                   "Shows what each file holds without loading it:\n"
                   "  safetensors (a .safetensors file, a sharded checkpoint's\n"
                   "  model.safetensors.index.json, or a directory holding either): each tensor's\n"
                   "  name, dtype and shape, and the total parameter count;\n"
                   "  .npy: dtype and shape;\n"
                   "  tokenizer.json / vocab.txt / tokenizer.model: kind, vocabulary size,\n"
                   "  special tokens and what is added around a text;\n"
                   "  audio/video/images: container, duration and streams.\n"
                   "Exit code 1 if any file is unreadable or malformed (one line per file on stderr).\n");
            return 0;
        }
        if (cli_is_option(argv[i]) && strcmp(argv[i], "-") != 0)
            return cli_usage("inspect", "unknown option %s", argv[i]);
    }
    for (int i = 1; i < argc; i++) {
        n++;
        if (inspect_one(argv[i]) != 0) rc = 1;
    }
    if (!n) return cli_usage("inspect", "needs a FILE");
    return rc;
}
