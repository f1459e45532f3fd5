/*
 * finetune.c -- `mer finetune speech` as one library call (mer_finetune_speech): cache the
 * frozen lower layers of a speech encoder once per clip, then train the top layers with
 * adapters or LoRA through the ordinary trainer (model "speech", src/train/model_speech.c).
 *
 * The cache is hidden state first-1 of every clip, (T, D) float16 .npy (half the bytes of
 * float32; npy has no bfloat16), in RUN/cache (or a directory shared between runs) with
 * cache.json naming the checkpoint digest and the layer: a cache from another model or layer is
 * refused rather than silently trained on. Clips already cached are not recomputed, so an
 * interrupted cache pass resumes too.
 */
#include "train/train.h"

#include "models/speech_train.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

mer_finetune_params mer_finetune_default_params(void) {
    mer_finetune_params p;
    memset(&p, 0, sizeof p);
    p.name_col = "name";
    p.label_col = "emotion";
    p.method = MER_FINETUNE_ADAPTER;
    p.bottleneck = 64;
    p.rank = 8;
    p.alpha = 16.0f;
    p.mask_prob = 0.05f;
    p.mask_len = 10;
    p.train = mer_train_default_params();
    snprintf(p.train.model, sizeof p.train.model, "speech");
    p.train.epochs = 20;
    p.train.batch = 8;
    p.train.lr = 1e-3;
    p.train.l2 = 0.01;
    p.train.optimizer = MER_OPT_ADAMW;
    return p;
}

static int clip_media(char *buf, size_t n, const char *dir, const char *name) {
    static const char *fmts[] = {"%s/%s.wav", "%s/%s.flac", "%s/%s.mp4", "%s/%s.mp3", "%s/%s.avi",
                                 "%s/flac/%s.flac", "%s/wav/%s.wav"};
    for (size_t i = 0; i < sizeof fmts / sizeof *fmts; i++) {
        snprintf(buf, n, fmts[i], dir, name);
        if (access(buf, R_OK) == 0) return 0;
    }
    return -1;
}

/* float16 .npy (T, D), written atomically. */
static mer_status write_npy_f16(const char *path, const float *x, int64_t T, int64_t D) {
    char hdr[128];
    int hl = snprintf(hdr, sizeof hdr, "{'descr': '<f2', 'fortran_order': False, 'shape': (%lld, %lld), }",
                      (long long)T, (long long)D);
    const int total = ((10 + hl + 1 + 63) / 64) * 64; /* magic + len + dict + '\n', 64-aligned */
    const size_t bytes = (size_t)total + (size_t)(T * D) * 2;
    unsigned char *b = malloc(bytes);
    if (!b) return mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)((total - 10) & 0xff);
    b[9] = (unsigned char)((total - 10) >> 8);
    memset(b + 10, ' ', (size_t)(total - 10));
    memcpy(b + 10, hdr, (size_t)hl);
    b[total - 1] = '\n';
    uint16_t *h = (uint16_t *)(b + total);
    for (int64_t i = 0; i < T * D; i++) h[i] = mer__f32_to_f16(x[i]);
    mer_status s = mer__write_file_atomic(path, b, bytes);
    free(b);
    return s;
}

/* Hidden state `layer` (T, D) of one media file as the cache holds it: decoded at the model's
 * rate, normalised as the checkpoint asks, encoded, rounded to float16 and back when round16
 * (so features made from media for prediction equal the cached ones bitwise). *out malloc'd. */
static mer_status encode_clip(mer_speech_model *sm, mer_speech_state *st, const char *media,
                              int32_t layer, int round16, float **out, int64_t *T_out) {
    mer_speech_info info;
    mer_speech_model_info(sm, &info);
    float *x = NULL, *h = NULL;
    int64_t n = 0;
    *out = NULL;
    mer_status s = mer_media_decode_audio(media, info.sample_rate, &x, &n);
    if (s) return s;
    if (info.do_normalize) mer_speech_normalize(x, n);
    const int64_t T = mer_speech_frames(sm, n), D = info.hidden_size;
    if (T < 1) {
        s = mer__err(MER_ERR_SHAPE, "%s: too short for one frame", media);
    } else if (!(h = malloc((size_t)(T * D) * sizeof(float)))) {
        s = mer__err(MER_ERR_NOMEM, "%s: out of memory", media);
    } else if (!(s = mer_speech_encode(st, x, n, layer, layer, h)) && round16) {
        for (int64_t i = 0; i < T * D; i++) h[i] = mer__f16_to_f32(mer__f32_to_f16(h[i]));
    }
    free(x);
    if (s) {
        free(h);
        return s;
    }
    *out = h;
    *T_out = T;
    return MER_OK;
}

/* Make or check DIR/cache.json; MER_ERR_INVALID_ARG when the cache is another model's/layer's. */
static mer_status cache_open(const char *dir, const char *digest, int32_t layer) {
    char path[MER_PATH_CAP], want[256];
    snprintf(want, sizeof want,
             "{\"format\": \"mer-speech-cache\", \"digest\": \"%s\", \"layer\": %d, \"dtype\": \"f16\"}\n",
             digest, (int)layer);
    mer_status s = mer__mkdir(dir);
    if (s) return s;
    snprintf(path, sizeof path, "%s/cache.json", dir);
    if (mer__file_exists(path)) {
        char *have = NULL;
        size_t n = 0;
        if ((s = mer__read_file(path, &have, &n))) return s;
        int same = n == strlen(want) && !memcmp(have, want, n);
        free(have);
        if (!same)
            return mer__err(MER_ERR_INVALID_ARG, "%s: the cache was made from another model or layer "
                            "(want digest %s, hidden state %d; use another --cache directory)",
                            path, digest, (int)layer);
        return MER_OK;
    }
    return mer__write_file_atomic(path, want, strlen(want));
}

static mer_status build_cache(const mer_finetune_params *p, mer_speech_model *sm,
                              const char *cache, const mer_csv *csv, int32_t name_col) {
    mer_speech_info info;
    mer_speech_model_info(sm, &info);
    char digest[17];
    mer__speech_digest(sm, digest);
    const int32_t layer = p->first - 1;
    mer_status s = cache_open(cache, digest, layer);
    if (s) return s;
    mer_speech_state *st = NULL;
    if ((s = mer_speech_state_init(&st, sm, NULL))) return s;
    const int64_t rows = mer_csv_rows(csv), D = info.hidden_size;
    char media[MER_PATH_CAP], out[MER_PATH_CAP];
    for (int64_t r = 0; r < rows && s == MER_OK; r++) {
        const char *name = mer_csv_cell(csv, r, name_col);
        /* a clip name is data: it becomes a path only through mer_name_path */
        if ((s = mer_name_path(out, sizeof out, cache, name ? name : "", ".npy", p->labels_csv, r + 2)))
            break;
        if (mer__file_exists(out)) continue;
        if (clip_media(media, sizeof media, p->audio_dir, name)) {
            s = mer__err(MER_ERR_NOT_FOUND, "%s: no media file for clip %s (%s/%s.wav|flac|mp4|mp3|avi)",
                         p->audio_dir, name, p->audio_dir, name);
            break;
        }
        float *h = NULL;
        int64_t T = 0;
        if (!(s = encode_clip(sm, st, media, layer, 0, &h, &T))) s = write_npy_f16(out, h, T, D);
        free(h);
        if (s == MER_OK && p->progress) p->progress(r + 1, rows, p->progress_user_data);
        if (s == MER_OK && p->abort && p->abort(p->abort_user_data))
            s = mer__err(MER_ERR_ABORTED, "stopped by the caller while caching (rerun with --resume)");
    }
    mer_speech_state_free(st);
    return s;
}

/* RUN/adapter_config.json for a LoRA run: peft's LoraConfig of what was trained, so a fold
 * checkpoint (tensor names with peft's prefix) with this file next to it as
 * adapter_model.safetensors is a peft adapter directory over a module holding a HubertModel-
 * style `encoder` and a `head` (modules_to_save). */
static mer_status write_peft_config(const char *rundir, const char *model_dir,
                                    const mer__sft_config *c) {
    static const char *targets[] = {"q_proj", "k_proj", "v_proj", "out_proj", "intermediate_dense",
                                    "output_dense"};
    char path[MER_PATH_CAP];
    snprintf(path, sizeof path, "%s/adapter_config.json", rundir);
    mer__json w = {0};
    struct cJSON *r = mer__json_root(&w);
    mer__json_str(&w, r, "peft_type", "LORA");
    mer__json_str(&w, r, "base_model_name_or_path", model_dir);
    mer__json_int(&w, r, "r", c->rank);
    mer__json_fixed(&w, r, "lora_alpha", c->alpha, 6);
    mer__json_fixed(&w, r, "lora_dropout", c->dropout, 6);
    mer__json_str(&w, r, "bias", "none");
    mer__json_bool(&w, r, "fan_in_fan_out", 0);
    mer__json_bool(&w, r, "inference_mode", 1);
    struct cJSON *t = mer__json_arr(&w, r, "target_modules");
    for (int i = 0; i < (c->lora_ffn ? 6 : 4); i++) mer__json_str(&w, t, NULL, targets[i]);
    struct cJSON *l = mer__json_arr(&w, r, "layers_to_transform");
    for (int32_t i = c->first; i <= c->adapt_last; i++) mer__json_int(&w, l, NULL, i - 1);
    mer__json_str(&w, r, "layers_pattern", "layers");
    struct cJSON *m = mer__json_arr(&w, r, "modules_to_save");
    mer__json_str(&w, m, NULL, "head");
    if (c->recon_weight > 0.0f) mer__json_str(&w, m, NULL, "recon");
    return mer__json_save(&w, path);
}

static mer_status finetune_run(const mer_finetune_params *p, const char *rundir, mer_metrics *out);

mer_status mer_finetune_speech(const mer_finetune_params *p, const char *rundir, mer_metrics *out) {
    if (!p) return mer__err(MER_ERR_INVALID_ARG, "finetune: NULL params");
    const int threads = mer__threads_use(p->n_threads);
    mer_status s = finetune_run(p, rundir, out);
    mer__threads_use(threads);
    return s;
}

static mer_status finetune_run(const mer_finetune_params *p, const char *rundir, mer_metrics *out) {
    if (!p || !rundir || !p->model_dir || !p->labels_csv || !p->audio_dir)
        return mer__err(MER_ERR_INVALID_ARG, "finetune: model, labels, audio and out are required");
    if (p->method != MER_FINETUNE_ADAPTER && p->method != MER_FINETUNE_LORA)
        return mer__err(MER_ERR_INVALID_ARG, "finetune: method must be adapter or lora");
    struct stat sb;
    if (!p->train.resume && stat(rundir, &sb) == 0)
        return mer__err(MER_ERR_INVALID_ARG, "%s: already exists (use --resume to continue the run, or another directory)", rundir);
    mer_speech_model *sm = NULL;
    mer_csv *csv = NULL;
    mer_dataset *ds = NULL;
    mer_status s = mer_speech_model_load(&sm, p->model_dir, NULL);
    if (s) return s;
    mer_speech_info info;
    mer_speech_model_info(sm, &info);
    /* the layers, checked against the model before any work */
    mer__sft_config c;
    memset(&c, 0, sizeof c);
    c.first = p->first;
    c.adapt_last = p->adapt_last;
    c.last = p->last > 0 ? p->last : p->adapt_last;
    c.head_first = p->head_first > 0 ? p->head_first : c.last;
    c.method = p->method;
    c.bottleneck = p->bottleneck;
    c.rank = p->rank;
    c.alpha = p->alpha;
    c.lora_ffn = p->lora_ffn;
    c.dropout = p->method == MER_FINETUNE_LORA ? p->lora_dropout : 0.0f;
    c.recon_weight = p->recon_weight;
    c.mask_prob = p->mask_prob;
    c.mask_len = p->mask_len;
    c.bf16 = p->precision == MER_PRECISION_BF16;
    c.int8 = p->precision == MER_PRECISION_INT8;
    c.memo_mb = p->memo_mb;
    if (p->precision != MER_PRECISION_F32 && p->precision != MER_PRECISION_BF16 &&
        p->precision != MER_PRECISION_INT8)
        return mer__err(MER_ERR_INVALID_ARG, "finetune: precision must be f32, bf16 or int8");
    c.n_classes = 2;
    mer__sft *probe = NULL;
    if ((s = mer__sft_init(&probe, sm, &c))) {
        mer__err_prefix("%s", p->model_dir);
        goto done;
    }
    mer__sft_free(probe);
    char cache[MER_PATH_CAP], absdir[PATH_MAX], digest[17], spec[1536];
    if ((s = mer__mkdir(rundir))) goto done;
    if (p->cache_dir) snprintf(cache, sizeof cache, "%s", p->cache_dir);
    else snprintf(cache, sizeof cache, "%s/cache", rundir);
    if ((s = mer_csv_load(&csv, p->labels_csv))) goto done;
    int32_t name_col = 0;
    if ((s = mer_csv_col(csv, p->name_col, &name_col))) goto done;
    if ((s = build_cache(p, sm, cache, csv, name_col))) goto done;
    /* the training data: labels + the cache as one sequence modality */
    mer_modality_spec mod = {"audio", cache};
    mer_dataset_params dp = mer_dataset_default_params();
    dp.labels_csv = p->labels_csv;
    dp.name_col = p->name_col;
    dp.label_col = p->label_col;
    dp.group_col = p->group_col;
    dp.modalities = &mod;
    dp.n_modalities = 1;
    if ((s = mer_dataset_load(&ds, &dp))) goto done;
    if (!realpath(p->model_dir, absdir)) {
        s = mer__err(MER_ERR_IO, "%s: %s", p->model_dir, strerror(errno));
        goto done;
    }
    mer__speech_digest(sm, digest);
    mer__sft_spec_format(spec, sizeof spec, absdir, digest, &c);
    if (c.method == MER__SFT_LORA && (s = write_peft_config(rundir, absdir, &c))) goto done;
    mer_train_params tp = p->train;
    tp.n_threads = 0; /* this call's, set by mer_finetune_speech */
    tp.abort = p->abort;
    tp.abort_user_data = p->abort_user_data;
    snprintf(tp.model, sizeof tp.model, "speech");
    tp.encoder = spec;
    tp.resume = 1; /* the directory is ours: made above, or continued on request */
    s = mer_train_run(ds, NULL, &tp, rundir, out);
done:
    mer_dataset_free(ds);
    mer_csv_free(csv);
    mer_speech_model_free(sm);
    return s;
}

/* ---- a run's encoder applied to media (extract --adapter, predict --input) ---------------- */

struct mer_speech_adapter {
    mer_speech_model *sm;
    mer_speech_state *st;
    mer__sft *sft;          /* NULL until a fold's weights are loaded */
    float *params;
    mer__sft_config c;
    char dir[MER_PATH_CAP];
};

void mer_speech_adapter_free(mer_speech_adapter *a) {
    if (!a) return;
    mer__sft_free(a->sft);
    free(a->params);
    mer_speech_state_free(a->st);
    mer_speech_model_free(a->sm);
    free(a);
}

/* The trained tensors of fold-K.safetensors, each by name and shape. */
static mer_status load_fold(mer_speech_adapter *a, const char *rundir, int32_t fold) {
    char path[MER_PATH_CAP];
    snprintf(path, sizeof path, "%s/fold-%d.safetensors", rundir, (int)fold);
    mer_safetensors *st = NULL;
    mer_status s = mer_safetensors_open(&st, path);
    if (s) return s;
    int32_t nt = 0;
    const mer__param_info *pt = mer__sft_params(a->sft, &nt);
    if (!(a->params = calloc((size_t)mer__sft_n_params(a->sft), sizeof(float))))
        s = mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
    for (int32_t i = 0; s == MER_OK && i < nt; i++) {
        mer_safetensors_entry e;
        int64_t n = e.ndim = 0;
        if (mer_safetensors_find(st, pt[i].name, &e) != MER_OK) {
            s = mer__err(MER_ERR_FORMAT, "%s: no tensor %s (a fold of another run layout?)", path,
                         pt[i].name);
            break;
        }
        n = 1;
        for (int32_t d = 0; d < e.ndim; d++) n *= e.shape[d];
        if (e.dtype != MER_DTYPE_F32 || n != pt[i].numel)
            s = mer__err(MER_ERR_SHAPE, "%s: %s has %lld %s values, want %lld float32", path,
                         pt[i].name, (long long)n, mer_dtype_name(e.dtype), (long long)pt[i].numel);
        else
            memcpy(a->params + pt[i].offset, e.data, (size_t)n * sizeof(float));
    }
    mer_safetensors_free(st);
    return s;
}

mer_status mer_speech_adapter_open(mer_speech_adapter **out, const char *rundir,
                                   const char *model_dir, int32_t fold) {
    *out = NULL;
    char path[MER_PATH_CAP], dir[MER_PATH_CAP], want[17], have[17];
    snprintf(path, sizeof path, "%s/config.json", rundir);
    mer_json *j = NULL;
    mer_status s = mer_json_load(&j, path);
    if (s) return s;
    const char *enc = "";
    mer__sft_config c;
    int32_t classes = 0;
    s = mer_json_string_or(j, "encoder", "", &enc);
    if (s == MER_OK && !enc[0])
        s = mer__err(MER_ERR_INVALID_ARG, "%s: not a `mer finetune speech` run (no encoder)", path);
    if (s == MER_OK) s = mer__sft_spec_parse(enc, &c, dir, sizeof dir, want);
    for (char key[32]; s == MER_OK; classes++) {
        snprintf(key, sizeof key, "classes.%d", (int)classes);
        if (!mer_json_has(j, key)) break;
    }
    mer_json_free(j);
    if (s) return s;
    c.n_classes = classes;
    mer_speech_adapter *a = mer__calloc(1, sizeof *a);
    if (!a) return MER_ERR_NOMEM;
    a->c = c;
    snprintf(a->dir, sizeof a->dir, "%s", rundir);
    if (model_dir) snprintf(dir, sizeof dir, "%s", model_dir);
    s = mer_speech_model_load(&a->sm, dir, NULL);
    if (s == MER_OK) {
        mer__speech_digest(a->sm, have);
        if (want[0] && strcmp(want, have))
            s = mer__err(MER_ERR_INVALID_ARG, "%s: checkpoint digest %s, but the run %s was made "
                         "for %s (another model or config)", dir, have, rundir, want);
    }
    if (s == MER_OK) s = mer_speech_state_init(&a->st, a->sm, NULL);
    if (s == MER_OK && fold >= 0 && !(s = mer__sft_init(&a->sft, a->sm, &c)))
        s = load_fold(a, rundir, fold);
    if (s) {
        mer_speech_adapter_free(a);
        return s;
    }
    *out = a;
    return MER_OK;
}

static int64_t info_dim(const mer_speech_model *m) {
    mer_speech_info info;
    mer_speech_model_info(m, &info);
    return info.hidden_size;
}

mer_status mer_speech_adapter_input(mer_speech_adapter *a, const char *media, float **data,
                                    int32_t *ndim, int64_t shape[MER_MAX_DIMS]) {
    int64_t T = 0;
    mer_status s = encode_clip(a->sm, a->st, media, a->c.first - 1, 1, data, &T);
    if (s) return s;
    *ndim = 2;
    shape[0] = T;
    shape[1] = info_dim(a->sm);
    return MER_OK;
}

mer_status mer_speech_adapter_extract(mer_speech_adapter *a, const char *media, int pool_mean,
                                      float **data, int32_t *ndim, int64_t shape[MER_MAX_DIMS]) {
    if (!a->sft)
        return mer__err(MER_ERR_INVALID_ARG, "%s: opened without a fold (fold < 0)", a->dir);
    float *x = NULL, *y = NULL;
    int64_t T = 0;
    mer_status s = encode_clip(a->sm, a->st, media, a->c.first - 1, 1, &x, &T);
    if (s) return s;
    const int64_t D = mer__sft_dim(a->sft), off[2] = {0, T};
    if (!(y = malloc((size_t)((pool_mean ? 1 : T) * D) * sizeof(float))))
        s = mer__err(MER_ERR_NOMEM, "%s: out of memory", media);
    if (s == MER_OK) s = mer__sft_forward(a->sft, a->params, x, off, 1, 0, NULL, NULL, pool_mean ? y : NULL);
    if (s == MER_OK && !pool_mean) memcpy(y, mer__sft_hidden(a->sft), (size_t)(T * D) * sizeof(float));
    free(x);
    if (s) {
        free(y);
        return s;
    }
    *data = y;
    *ndim = pool_mean ? 1 : 2;
    shape[0] = pool_mean ? D : T;
    shape[1] = pool_mean ? 0 : D;
    return MER_OK;
}

/* ---- mer probe: which layers carry the emotion ------------------------------------------- */

mer_probe_params mer_probe_default_params(void) {
    mer_probe_params p;
    memset(&p, 0, sizeof p);
    p.name_col = "name";
    p.label_col = "emotion";
    p.probes = "linear,attention";
    p.block_tolerance = 0.02;
    p.train = mer_train_default_params();
    p.train.epochs = 50;
    p.train.plots = 0;
    return p;
}

/* Every hidden state's frame mean of every clip, one forward per clip, into
 * DIR/layer-NN/<clip>.npy (D) float32; DIR/cache.json names the checkpoint digest. */
static mer_status probe_features(const mer_probe_params *p, mer_speech_model *sm, const char *dir,
                                 const mer_csv *csv, int32_t name_col) {
    mer_speech_info info;
    mer_speech_model_info(sm, &info);
    char digest[17], path[MER_PATH_CAP], media[MER_PATH_CAP];
    mer__speech_digest(sm, digest);
    mer_status s = cache_open(dir, digest, -1);
    for (int32_t l = 0; l <= info.n_layers && s == MER_OK; l++) {
        snprintf(path, sizeof path, "%s/layer-%02d", dir, (int)l);
        s = mer__mkdir(path);
    }
    if (s) return s;
    mer_speech_state *st = NULL;
    if ((s = mer_speech_state_init(&st, sm, NULL))) return s;
    mer_speech_params sp = mer_speech_default_params();
    sp.layer_first = 0;
    sp.layer_last = info.n_layers;
    sp.combine = MER_SPEECH_STACK;
    sp.pool_mean = 1;
    const int64_t rows = mer_csv_rows(csv), D = info.hidden_size;
    for (int64_t r = 0; r < rows && s == MER_OK; r++) {
        const char *name = mer_csv_cell(csv, r, name_col);
        char ldir[MER_PATH_CAP];
        snprintf(ldir, sizeof ldir, "%s/layer-%02d", dir, (int)info.n_layers);
        if ((s = mer_name_path(path, sizeof path, ldir, name ? name : "", ".npy", p->labels_csv, r + 2)))
            break;
        if (mer__file_exists(path)) continue; /* the last layer is written last */
        if (clip_media(media, sizeof media, p->audio_dir, name)) {
            s = mer__err(MER_ERR_NOT_FOUND, "%s: no media file for clip %s (%s/%s.wav|flac|mp4|mp3|avi)",
                         p->audio_dir, name, p->audio_dir, name);
            break;
        }
        float *x = NULL, *h = NULL;
        int64_t n = 0, shape[3];
        int32_t nd = 0;
        if ((s = mer_media_decode_audio(media, info.sample_rate, &x, &n))) break;
        s = mer_speech_extract(st, x, n, &sp, &h, &nd, shape);
        free(x);
        if (s == MER_OK && (nd != 2 || shape[0] != info.n_layers + 1 || shape[1] != D))
            s = mer__err(MER_ERR_INTERNAL, "probe: unexpected feature shape");
        for (int32_t l = 0; l <= info.n_layers && s == MER_OK; l++) {
            snprintf(path, sizeof path, "%s/layer-%02d/%s.npy", dir, (int)l, name);
            s = mer_npy_write(path, h + l * D, 1, (int64_t[]){D});
        }
        free(h);
        if (s == MER_OK && p->progress) p->progress(r + 1, rows, p->progress_user_data);
        if (s == MER_OK && p->abort && p->abort(p->abort_user_data))
            s = mer__err(MER_ERR_ABORTED, "stopped by the caller while extracting (rerun with --resume)");
    }
    mer_speech_state_free(st);
    return s;
}

static mer_status probe_run(const mer_probe_params *p, const char *outdir, mer_probe_result *res);

mer_status mer_probe_speech(const mer_probe_params *p, const char *outdir, mer_probe_result *res) {
    if (!p) return mer__err(MER_ERR_INVALID_ARG, "probe: NULL params");
    const int threads = mer__threads_use(p->n_threads);
    mer_status s = probe_run(p, outdir, res);
    mer__threads_use(threads);
    return s;
}

static mer_status probe_run(const mer_probe_params *p, const char *outdir, mer_probe_result *res) {
    if (!p || !outdir || !res || !p->model_dir || !p->labels_csv || !p->audio_dir)
        return mer__err(MER_ERR_INVALID_ARG, "probe: model, labels, audio and out are required");
    memset(res, 0, sizeof *res);
    /* probe model names */
    char names[MER_PROBE_MAX][MER_NAME_MAX];
    int32_t np = 0;
    for (const char *q = p->probes; q && *q;) {
        const char *e = strchr(q, ',');
        size_t l = e ? (size_t)(e - q) : strlen(q);
        if (np == MER_PROBE_MAX || l == 0 || l >= MER_NAME_MAX)
            return mer__err(MER_ERR_INVALID_ARG, "probe: bad probe list '%s' (at most %d names)",
                            p->probes, MER_PROBE_MAX);
        memcpy(names[np], q, l);
        names[np][l] = '\0';
        if (!mer__model_lookup(names[np]) || !strcmp(names[np], "speech"))
            return mer__err(MER_ERR_INVALID_ARG, "probe: unknown probe model '%s' (one of %s)",
                            names[np], mer__model_names());
        np++;
        q = e ? e + 1 : q + l;
    }
    if (!np) return mer__err(MER_ERR_INVALID_ARG, "probe: no probe model");
    struct stat sb;
    if (!p->train.resume && stat(outdir, &sb) == 0)
        return mer__err(MER_ERR_INVALID_ARG, "%s: already exists (use --resume to continue, or another directory)", outdir);
    mer_speech_model *sm = NULL;
    mer_csv *csv = NULL;
    mer_status s = mer_speech_model_load(&sm, p->model_dir, NULL);
    if (s) return s;
    mer_speech_info info;
    mer_speech_model_info(sm, &info);
    const int32_t L = info.n_layers;
    if (L + 1 > MER_PROBE_MAX_LAYERS) {
        s = mer__err(MER_ERR_UNSUPPORTED, "probe: %d layers (at most %d)", (int)L, MER_PROBE_MAX_LAYERS - 1);
        goto done;
    }
    char feat[MER_PATH_CAP], run[MER_PATH_CAP], dir[MER_PATH_CAP];
    if ((s = mer__mkdir(outdir))) goto done;
    snprintf(feat, sizeof feat, "%s/features", outdir);
    if ((s = mer_csv_load(&csv, p->labels_csv))) goto done;
    int32_t name_col = 0;
    if ((s = mer_csv_col(csv, p->name_col, &name_col))) goto done;
    if ((s = probe_features(p, sm, feat, csv, name_col))) goto done;
    snprintf(run, sizeof run, "%s/runs", outdir);
    if ((s = mer__mkdir(run))) goto done;
    res->n_layers = L + 1;
    res->n_probes = np;
    for (int32_t k = 0; k < np; k++) snprintf(res->probe[k], MER_NAME_MAX, "%s", names[k]);
    for (int32_t l = 0; l <= L && s == MER_OK; l++) {
        snprintf(dir, sizeof dir, "%s/layer-%02d", feat, (int)l);
        mer_modality_spec mod = {"audio", dir};
        mer_dataset_params dp = mer_dataset_default_params();
        dp.labels_csv = p->labels_csv;
        dp.name_col = p->name_col;
        dp.label_col = p->label_col;
        dp.group_col = p->group_col;
        dp.modalities = &mod;
        dp.n_modalities = 1;
        mer_dataset *ds = NULL;
        if ((s = mer_dataset_load(&ds, &dp))) break;
        for (int32_t k = 0; k < np && s == MER_OK; k++) {
            mer_train_params tp = p->train;
            tp.n_threads = 0; /* this call's, set by mer_probe_speech */
            tp.abort = p->abort;
            tp.abort_user_data = p->abort_user_data;
            snprintf(tp.model, sizeof tp.model, "%s", names[k]);
            snprintf(dir, sizeof dir, "%s/%s-layer-%02d", run, names[k], (int)l);
            mer_metrics m;
            s = mer_train_run(ds, NULL, &tp, dir, &m);
            res->waf[k][l] = m.waf;
            res->accuracy[k][l] = m.accuracy;
            res->uar[k][l] = m.uar;
            if (s == MER_OK && p->layer_progress)
                p->layer_progress(l * np + k + 1, (L + 1) * np, p->layer_progress_user_data);
        }
        mer_dataset_free(ds);
    }
    if (s) goto done;
    /* the best layer of the first probe, and the contiguous block around it within tolerance */
    int32_t best = 0;
    for (int32_t l = 1; l <= L; l++)
        if (res->waf[0][l] > res->waf[0][best]) best = l;
    int32_t a = best, b = best;
    while (a > 0 && res->waf[0][a - 1] >= res->waf[0][best] - p->block_tolerance) a--;
    while (b < L && res->waf[0][b + 1] >= res->waf[0][best] - p->block_tolerance) b++;
    res->best_layer = best;
    res->block_first = a;
    res->block_last = b;
    /* table, JSON-free CSV and the plot */
    mer__sb t = {0};
    mer__sb_printf(&t, "layer,probe,waf,accuracy,uar\n");
    for (int32_t l = 0; l <= L; l++)
        for (int32_t k = 0; k < np; k++)
            mer__sb_printf(&t, "%d,%s,%.6f,%.6f,%.6f\n", (int)l, names[k], res->waf[k][l],
                           res->accuracy[k][l], res->uar[k][l]);
    snprintf(dir, sizeof dir, "%s/probe.csv", outdir);
    s = mer__sb_save(&t, dir);
    mer__sb_free(&t);
    if (s) goto done;
    double v[MER_PROBE_MAX * MER_PROBE_MAX_LAYERS];
    const char *leg[MER_PROBE_MAX];
    for (int32_t k = 0; k < np; k++) {
        leg[k] = names[k];
        for (int32_t l = 0; l <= L; l++) v[k * (L + 1) + l] = res->waf[k][l];
    }
    char title[256];
    snprintf(title, sizeof title, "probe WAF by hidden state (best %d, block %d-%d)", (int)best,
             (int)a, (int)b);
    snprintf(dir, sizeof dir, "%s/probe.png", outdir);
    s = mer__plot_series(dir, v, np, L + 1, leg, "hidden state (0 = encoder input)", 0,
                         "mean held-out WAF over folds", title);
done:
    mer_csv_free(csv);
    mer_speech_model_free(sm);
    return s;
}
