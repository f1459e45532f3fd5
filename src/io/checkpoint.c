/*
 * checkpoint.c -- where model checkpoints come from and how they are rewritten:
 *   mer_model_resolve       a --model argument: a directory as given, or ORG/NAME looked up in
 *                           the Hugging Face cache (never downloaded)
 *   mer_checkpoint_convert  any checkpoint mer_safetensors_open reads (PyTorch .bin, sharded,
 *                           safetensors) -> DIR/model.safetensors + the directory's config files
 *
 * The cache layout is huggingface_hub's (constants.py, file_download.py):
 *   HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE, else HF_HOME/hub, else
 *   $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub; a model repo ORG/NAME lives in
 *   models--ORG--NAME/, refs/<branch> holds the commit hash, snapshots/<hash>/ the files (symlinks
 *   into blobs/).
 */
#include "io_internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static char *dup_printf(const char *fmt, const char *a, const char *b, const char *c) {
    int n = snprintf(NULL, 0, fmt, a, b, c);
    char *s = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (s) snprintf(s, (size_t)n + 1, fmt, a, b, c);
    return s;
}

/* A Hugging Face repo id part or revision: letters, digits, '-', '_', '.', not "." or "..". */
static int hub_name_ok(const char *s, size_t n) {
    if (n == 0 || n > 96 || (n <= 2 && s[0] == '.' && (n == 1 || s[1] == '.'))) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.'))
            return 0;
    }
    return 1;
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* The hub cache directory (malloc'd). */
static char *hub_cache(void) {
    const char *e;
    if ((e = getenv("HF_HUB_CACHE")) && *e) return strdup(e);
    if ((e = getenv("HUGGINGFACE_HUB_CACHE")) && *e) return strdup(e);
    if ((e = getenv("HF_HOME")) && *e) return dup_printf("%s/hub%s%s", e, "", "");
    if ((e = getenv("XDG_CACHE_HOME")) && *e) return dup_printf("%s/huggingface/hub%s%s", e, "", "");
    const char *home = getenv("HOME");
    return dup_printf("%s/.cache/huggingface/hub%s%s", home && *home ? home : "/", "", "");
}

mer_status mer_model_resolve(const char *spec, char **out) {
    if (!spec || !out) return mer__err(MER_ERR_INVALID_ARG, "mer_model_resolve: NULL argument");
    *out = NULL;
    struct stat sb;
    if (stat(spec, &sb) == 0) {
        *out = strdup(spec);
        return *out ? MER_OK : mer__err(MER_ERR_NOMEM, "out of memory");
    }
    /* ORG/NAME or ORG/NAME@REVISION */
    const char *slash = strchr(spec, '/'), *at = strchr(spec, '@');
    size_t end = at ? (size_t)(at - spec) : strlen(spec);
    if (!slash || (size_t)(slash - spec) >= end || strchr(slash + 1, '/') ||
        !hub_name_ok(spec, (size_t)(slash - spec)) || !hub_name_ok(slash + 1, end - (size_t)(slash - spec) - 1) ||
        (at && !hub_name_ok(at + 1, strlen(at + 1))))
        return mer__err(MER_ERR_NOT_FOUND, "%s: no such file or directory (and not a Hugging Face ORG/NAME)", spec);
    char org[128], name[128], rev[128];
    snprintf(org, sizeof org, "%.*s", (int)(slash - spec), spec);
    snprintf(name, sizeof name, "%.*s", (int)(end - (size_t)(slash - spec) - 1), slash + 1);
    snprintf(rev, sizeof rev, "%s", at ? at + 1 : "main");
    char *cache = hub_cache();
    if (!cache) return mer__err(MER_ERR_NOMEM, "out of memory");
    char *repo = dup_printf("%s/models--%s--%s", cache, org, name);
    char *refp = repo ? dup_printf("%s/refs/%s%s", repo, rev, "") : NULL;
    char *snap = NULL;
    mer_status s = MER_OK;
    if (!repo || !refp) {
        s = mer__err(MER_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* refs/<rev> names a commit; a revision that is itself a commit hash is a snapshot name */
    char hash[128] = "";
    FILE *f = fopen(refp, "r");
    if (f) {
        if (!fgets(hash, sizeof hash, f)) hash[0] = '\0';
        fclose(f);
        hash[strcspn(hash, "\r\n")] = '\0';
        if (!hub_name_ok(hash, strlen(hash))) hash[0] = '\0';
    } else {
        snprintf(hash, sizeof hash, "%s", rev);
    }
    if (hash[0]) {
        snap = dup_printf("%s/snapshots/%s%s", repo, hash, "");
        if (!snap) {
            s = mer__err(MER_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (is_dir(snap)) {
            *out = snap;
            snap = NULL;
            goto done;
        }
    }
    s = mer__err(MER_ERR_NOT_FOUND,
                 "%s: not a directory and not in the Hugging Face cache (looked for %s/snapshots/<%s> via "
                 "HF_HUB_CACHE / HF_HOME / ~/.cache/huggingface/hub); download it with `huggingface-cli download "
                 "%s/%s` or pass the checkpoint directory",
                 spec, repo, at ? rev : "refs/main", org, name);
done:
    free(cache);
    free(repo);
    free(refp);
    free(snap);
    return s;
}

/* ---- conversion ----------------------------------------------------------------------------- */

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* Files of a checkpoint directory that are weights (rewritten, not copied) or not ours to copy:
 * a pickle such as training_args.bin is never carried along. */
static int is_weights(const char *n) {
    static const char *const suf[] = {".bin", ".safetensors", ".pt", ".pth", ".ckpt", ".h5", ".msgpack",
                                      ".onnx", ".index.json", ".pkl", ".tmp"};
    if (n[0] == '.') return 1;
    for (size_t i = 0; i < sizeof suf / sizeof *suf; i++)
        if (ends_with(n, suf[i])) return 1;
    return 0;
}


mer_status mer_checkpoint_convert(const char *src, const char *out_dir, int64_t *n_tensors) {
    if (!src || !out_dir) return mer__err(MER_ERR_INVALID_ARG, "mer_checkpoint_convert: NULL argument");
    struct stat ss, so;
    if (stat(src, &ss) != 0)
        return mer__err(errno == ENOENT ? MER_ERR_NOT_FOUND : MER_ERR_IO, "%s: %s", src, strerror(errno));
    /* the directory whose config files travel with the weights */
    char *src_dir;
    const char *sl = strrchr(src, '/');
    if (S_ISDIR(ss.st_mode)) src_dir = strdup(src);
    else if (!sl) src_dir = strdup(".");
    else if (sl == src) src_dir = strdup("/");
    else src_dir = strndup(src, (size_t)(sl - src));
    if (!src_dir) return mer__err(MER_ERR_NOMEM, "out of memory");
    mer_safetensors *st = NULL;
    mer_safetensors_writer *w = NULL;
    char *dst = NULL, *a = NULL, *b = NULL;
    DIR *d = NULL;
    mer_status s = mer_safetensors_open(&st, src);
    if (s != MER_OK) goto done;
    if ((s = mer__mkdir(out_dir)) != MER_OK) goto done;
    struct stat sd;
    if (stat(src_dir, &sd) == 0 && stat(out_dir, &so) == 0 && sd.st_dev == so.st_dev && sd.st_ino == so.st_ino) {
        s = mer__err(MER_ERR_INVALID_ARG, "%s: the output directory is the checkpoint's own directory", out_dir);
        goto done;
    }
    if ((s = mer_safetensors_writer_init(&w)) != MER_OK) goto done;
    /* transformers' own conversions mark torch-born files so */
    if ((s = mer_safetensors_writer_set_metadata(w, "format", "pt")) != MER_OK) goto done;
    int64_t n = mer_safetensors_count(st);
    for (int64_t i = 0; i < n; i++) {
        mer_safetensors_entry e;
        if ((s = mer_safetensors_entry_at(st, i, &e)) != MER_OK) goto done;
        if ((s = mer_safetensors_writer_add_borrowed(w, e.name, e.dtype, e.ndim, e.shape, e.data)) != MER_OK)
            goto done;
    }
    dst = dup_printf("%s/model.safetensors%s%s", out_dir, "", "");
    if (!dst) {
        s = mer__err(MER_ERR_NOMEM, "out of memory");
        goto done;
    }
    if ((s = mer_safetensors_writer_save(w, dst)) != MER_OK) goto done;
    d = opendir(src_dir);
    if (!d) {
        s = mer__err(MER_ERR_IO, "%s: %s", src_dir, strerror(errno));
        goto done;
    }
    for (struct dirent *de; (de = readdir(d));) {
        if (is_weights(de->d_name)) continue;
        free(a);
        free(b);
        a = dup_printf("%s/%s%s", src_dir, de->d_name, "");
        b = dup_printf("%s/%s%s", out_dir, de->d_name, "");
        struct stat fs;
        if (!a || !b) {
            s = mer__err(MER_ERR_NOMEM, "out of memory");
            goto done;
        }
        if (stat(a, &fs) != 0 || !S_ISREG(fs.st_mode)) continue;
        if ((s = mer__copy_file_atomic(a, b)) != MER_OK) goto done;
    }
    if (n_tensors) *n_tensors = n;
done:
    if (d) closedir(d);
    free(a);
    free(b);
    free(dst);
    free(src_dir);
    mer_safetensors_writer_free(w);
    mer_safetensors_free(st);
    return s;
}
