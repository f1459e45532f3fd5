/*
 * media.c -- audio and video decoding through FFmpeg (libavformat, libavcodec, libswresample,
 * libswscale; FFmpeg 5.1 as in Debian 12).
 *
 * Audio: the best audio stream is decoded (decoder priming/padding removed by libavcodec, the
 * decoder drained at the end), averaged over channels to mono (an explicit 1/C mixing matrix,
 * not swresample's centre-mix default which scales stereo by 1/sqrt(2)), and resampled by
 * swresample with the soxr engine at precision 28 ("very high quality"; falls back to the
 * built-in swr engine with a 64-tap filter when soxr is not compiled in). The resampler is
 * flushed and the result trimmed/padded to ceil(n_in * rate_out / rate_in) samples, the length
 * torchaudio.functional.resample returns. See docs/media.md.
 *
 * Video: the best video stream is decoded; frames are picked by a mer_frame_sampling rule
 * (times relative to the container start) and converted to packed RGB24 at native size by
 * swscale with the frame's own colour matrix and range.
 *
 * Input paths are opened through the "file:" protocol only (no URLs, no image-sequence
 * patterns). FFmpeg's own log lines are routed to the mer logger at DEBUG level.
 */
#include "internal.h"

#include <float.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>

/* Largest accepted picture side: keeps width * height * 3 far from any overflow. */
#define MEDIA_MAX_DIM 16384
/* Slack when comparing a frame time with a sampling target (seconds). */
#define TIME_EPS 1e-4

/* ============================================================================================
 * Shared: logging, opening, decoders
 * ========================================================================================== */

static void av_log_to_mer(void *avcl, int level, const char *fmt, va_list vl) {
    if (level > AV_LOG_WARNING) return;
    char line[1024];
    int prefix = 1;
    va_list cp;
    va_copy(cp, vl);
    av_log_format_line2(avcl, level, fmt, cp, line, sizeof line, &prefix);
    va_end(cp);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
    MER_LOG_D("ffmpeg: %s", line);
}

static pthread_once_t log_once = PTHREAD_ONCE_INIT;
static void install_av_log(void) { av_log_set_callback(av_log_to_mer); }

static const char *averr(int e, char *buf, size_t n) {
    if (av_strerror(e, buf, n) < 0) snprintf(buf, n, "error %d", e);
    return buf;
}

/* Streams: "-" (stdin), pipes, FIFOs, character devices (/dev/stdin) can be read only once,
 * while a command may open its input several times (probe, audio, frames). So a stream is read
 * whole into memory on its first open (at most MEDIA_MAX_STREAM bytes; nothing is written to
 * disk) and every open of that path reads the copy. The copies live until the process ends. */
#define MEDIA_MAX_STREAM ((int64_t)2 << 30)
#define MEDIA_STREAMS 4
static struct {
    char *path;
    uint8_t *data;
    int64_t n;
} stream_copies[MEDIA_STREAMS];
static pthread_mutex_t streams_lock = PTHREAD_MUTEX_INITIALIZER;

static mer_status stream_read(const char *path, const uint8_t **data, int64_t *n) {
    pthread_mutex_lock(&streams_lock);
    mer_status s = MER_OK;
    int slot = -1;
    for (int i = 0; i < MEDIA_STREAMS && slot < 0; i++)
        if (stream_copies[i].path && !strcmp(stream_copies[i].path, path)) slot = i;
    if (slot < 0) {
        for (int i = 0; i < MEDIA_STREAMS && slot < 0; i++)
            if (!stream_copies[i].path) slot = i;
        if (slot < 0) {
            s = mer__err(MER_ERR_UNSUPPORTED, "%s: more than %d streams (pipes, FIFOs, stdin) in one process",
                         path, MEDIA_STREAMS);
            goto done;
        }
        int fd = strcmp(path, "-") ? open(path, O_RDONLY) : STDIN_FILENO;
        if (fd < 0) {
            s = mer__err(MER_ERR_MEDIA, "%s: cannot open: %s", path, strerror(errno));
            goto done;
        }
        uint8_t *d = NULL;
        int64_t len = 0, cap = 0;
        for (;;) {
            if (len == cap) {
                int64_t nc = cap ? cap * 2 : 1 << 20;
                uint8_t *nd = len >= MEDIA_MAX_STREAM ? NULL : realloc(d, (size_t)nc);
                if (!nd) {
                    s = len >= MEDIA_MAX_STREAM
                            ? mer__err(MER_ERR_UNSUPPORTED, "%s: a stream of more than %lld MB: give a file", path,
                                       (long long)(MEDIA_MAX_STREAM >> 20))
                            : mer__err(MER_ERR_NOMEM, "%s: out of memory reading the stream", path);
                    break;
                }
                d = nd;
                cap = nc;
            }
            ssize_t r = read(fd, d + len, (size_t)(cap - len));
            if (r < 0 && errno == EINTR) continue;
            if (r < 0) {
                s = mer__err(MER_ERR_MEDIA, "%s: read failed: %s", path, strerror(errno));
                break;
            }
            if (r == 0) break;
            len += r;
        }
        if (fd != STDIN_FILENO) close(fd);
        if (!s && len == 0) s = mer__err(MER_ERR_MEDIA, "%s: empty stream", path);
        if (!s && !(stream_copies[slot].path = strdup(path))) s = mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
        if (s) {
            free(d);
            goto done;
        }
        stream_copies[slot].data = d;
        stream_copies[slot].n = len;
    }
    *data = stream_copies[slot].data;
    *n = stream_copies[slot].n;
done:
    pthread_mutex_unlock(&streams_lock);
    return s;
}

typedef struct {
    const uint8_t *d;
    int64_t n, pos;
} membuf;

static int mem_read(void *opaque, uint8_t *buf, int size) {
    membuf *m = opaque;
    int64_t left = m->n - m->pos;
    if (left <= 0) return AVERROR_EOF;
    if (size > left) size = (int)left;
    memcpy(buf, m->d + m->pos, (size_t)size);
    m->pos += size;
    return size;
}

static int64_t mem_seek(void *opaque, int64_t off, int whence) {
    membuf *m = opaque;
    if (whence == AVSEEK_SIZE) return m->n;
    whence &= ~AVSEEK_FORCE;
    int64_t p = whence == SEEK_SET ? off : whence == SEEK_CUR ? m->pos + off : whence == SEEK_END ? m->n + off : -1;
    if (p < 0 || p > m->n) return -1;
    m->pos = p;
    return p;
}

/* avformat_close_input, and the memory reader of a stream (custom I/O is the caller's). */
static void close_input(AVFormatContext **fc) {
    if (!*fc) return;
    AVIOContext *pb = ((*fc)->flags & AVFMT_FLAG_CUSTOM_IO) ? (*fc)->pb : NULL;
    avformat_close_input(fc);
    if (pb) {
        av_free(pb->opaque);
        av_freep(&pb->buffer);
        avio_context_free(&pb);
    }
}

/* Open and probe path; MER_ERR_MEDIA naming the file on any failure. "-" is stdin; streams
 * (pipes, FIFOs, devices) are read whole first (stream_read). */
static mer_status open_input(const char *path, AVFormatContext **out) {
    *out = NULL;
    pthread_once(&log_once, install_av_log);
    struct stat sb;
    int is_stream = !strcmp(path, "-");
    if (!is_stream) {
        if (stat(path, &sb) != 0) return mer__err(MER_ERR_MEDIA, "%s: cannot open: %s", path, strerror(errno));
        if (S_ISDIR(sb.st_mode)) return mer__err(MER_ERR_MEDIA, "%s: is a directory", path);
        is_stream = S_ISFIFO(sb.st_mode) || S_ISCHR(sb.st_mode) || S_ISSOCK(sb.st_mode);
        if (!is_stream && sb.st_size == 0) return mer__err(MER_ERR_MEDIA, "%s: empty file", path);
    }
    AVDictionary *opts = NULL;
    av_dict_set(&opts, "pattern_type", "none", 0); /* image2: the file itself, not a sequence */
    AVFormatContext *fc = NULL;
    char *url = NULL;
    int r;
    if (is_stream) {
        const uint8_t *data = NULL;
        int64_t n = 0;
        mer_status s = stream_read(path, &data, &n);
        if (s) {
            av_dict_free(&opts);
            return s;
        }
        membuf *m = av_mallocz(sizeof *m);
        uint8_t *buf = av_malloc(65536);
        AVIOContext *pb = m && buf ? avio_alloc_context(buf, 65536, 0, m, mem_read, NULL, mem_seek) : NULL;
        fc = pb ? avformat_alloc_context() : NULL;
        if (!fc) {
            if (pb) avio_context_free(&pb);
            av_free(buf);
            av_free(m);
            av_dict_free(&opts);
            return mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
        }
        m->d = data;
        m->n = n;
        fc->pb = pb;
        fc->flags |= AVFMT_FLAG_CUSTOM_IO;
        r = avformat_open_input(&fc, "", NULL, &opts);
        if (r < 0) { /* avformat_open_input freed fc, not our reader */
            av_free(pb->opaque);
            av_freep(&pb->buffer);
            avio_context_free(&pb);
        }
    } else {
        size_t len = strlen(path);
        url = malloc(len + 6);
        if (!url) {
            av_dict_free(&opts);
            return mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
        }
        memcpy(url, "file:", 5);
        memcpy(url + 5, path, len + 1);
        av_dict_set(&opts, "protocol_whitelist", "file", 0);
        r = avformat_open_input(&fc, url, NULL, &opts);
    }
    av_dict_free(&opts);
    free(url);
    char eb[128];
    if (r < 0)
        return mer__err(MER_ERR_MEDIA, "%s: not a media file FFmpeg can read (%s)", path, averr(r, eb, sizeof eb));
    r = avformat_find_stream_info(fc, NULL);
    if (r < 0) {
        close_input(&fc);
        return mer__err(MER_ERR_MEDIA, "%s: cannot read stream info (%s)", path, averr(r, eb, sizeof eb));
    }
    *out = fc;
    return MER_OK;
}

/* "audio (mp3), video (h264)" or "none": what the file holds, for error messages. */
static void describe_streams(const AVFormatContext *fc, char *buf, size_t n) {
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < fc->nb_streams && used + 1 < n; i++) {
        const AVCodecParameters *p = fc->streams[i]->codecpar;
        const char *type = av_get_media_type_string(p->codec_type);
        int k = snprintf(buf + used, n - used, "%s%s (%s)", used ? ", " : "", type ? type : "unknown",
                         avcodec_get_name(p->codec_id));
        if (k < 0) break;
        used += (size_t)k;
    }
    if (!used) snprintf(buf, n, "none");
}

static mer_status find_stream(AVFormatContext *fc, enum AVMediaType type, const char *path, int *index) {
    int si = av_find_best_stream(fc, type, -1, -1, NULL, 0);
    if (si >= 0 && type == AVMEDIA_TYPE_VIDEO &&
        (fc->streams[si]->disposition & AV_DISPOSITION_ATTACHED_PIC))
        si = AVERROR_STREAM_NOT_FOUND; /* cover art is not a video */
    if (si < 0) {
        char have[256];
        describe_streams(fc, have, sizeof have);
        return mer__err(MER_ERR_MEDIA, "%s: no %s stream (streams: %s)", path,
                        type == AVMEDIA_TYPE_AUDIO ? "audio" : "video", have);
    }
    *index = si;
    return MER_OK;
}

static mer_status open_decoder(AVFormatContext *fc, int si, const char *path, AVCodecContext **out) {
    *out = NULL;
    AVStream *st = fc->streams[si];
    const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
    if (!codec)
        return mer__err(MER_ERR_MEDIA, "%s: no decoder for codec %s in this FFmpeg build", path,
                        avcodec_get_name(st->codecpar->codec_id));
    AVCodecContext *dc = avcodec_alloc_context3(codec);
    if (!dc) return mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
    char eb[128];
    int r = avcodec_parameters_to_context(dc, st->codecpar);
    if (r >= 0) {
        dc->pkt_timebase = st->time_base;
        if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO) dc->thread_count = mer_get_threads();
        r = avcodec_open2(dc, codec, NULL);
    }
    if (r < 0) {
        avcodec_free_context(&dc);
        return mer__err(MER_ERR_MEDIA, "%s: cannot open %s decoder (%s)", path, codec->name,
                        averr(r, eb, sizeof eb));
    }
    *out = dc;
    return MER_OK;
}

/* ============================================================================================
 * Probe
 * ========================================================================================== */

static double stream_fps(const AVStream *st) {
    if (st->avg_frame_rate.num > 0 && st->avg_frame_rate.den > 0) return av_q2d(st->avg_frame_rate);
    if (st->r_frame_rate.num > 0 && st->r_frame_rate.den > 0) return av_q2d(st->r_frame_rate);
    return 0;
}

static double stream_duration(const AVFormatContext *fc, const AVStream *st) {
    if (st->duration != AV_NOPTS_VALUE && st->duration > 0) return st->duration * av_q2d(st->time_base);
    if (fc->duration != AV_NOPTS_VALUE && fc->duration > 0) return fc->duration / (double)AV_TIME_BASE;
    return 0;
}

static void fill_stream(const AVFormatContext *fc, const AVStream *st, mer_media_stream *s) {
    const AVCodecParameters *p = st->codecpar;
    memset(s, 0, sizeof *s);
    s->index = st->index;
    const char *type = av_get_media_type_string(p->codec_type);
    snprintf(s->type, sizeof s->type, "%s", type ? type : "unknown");
    snprintf(s->codec, sizeof s->codec, "%s", avcodec_get_name(p->codec_id));
    s->duration = stream_duration(fc, st);
    if (p->codec_type == AVMEDIA_TYPE_AUDIO) {
        s->sample_rate = p->sample_rate;
        s->channels = p->ch_layout.nb_channels;
    } else if (p->codec_type == AVMEDIA_TYPE_VIDEO) {
        s->width = p->width;
        s->height = p->height;
        s->fps = stream_fps(st);
        s->frames = st->nb_frames > 0 ? st->nb_frames : (int64_t)llround(s->duration * s->fps);
        s->attached_pic = (st->disposition & AV_DISPOSITION_ATTACHED_PIC) != 0;
    }
}

mer_status mer_media_probe(const char *path, mer_media_info *info) {
    if (!path || !info) return mer__err(MER_ERR_INVALID_ARG, "mer_media_probe: NULL argument");
    memset(info, 0, sizeof *info);
    AVFormatContext *fc;
    mer_status s = open_input(path, &fc);
    if (s) return s;
    snprintf(info->format, sizeof info->format, "%s", fc->iformat->name);
    if (fc->duration != AV_NOPTS_VALUE && fc->duration > 0) info->duration = fc->duration / (double)AV_TIME_BASE;
    int si = av_find_best_stream(fc, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
    if (si >= 0) {
        mer_media_stream ms;
        fill_stream(fc, fc->streams[si], &ms);
        info->has_audio = 1;
        snprintf(info->audio_codec, sizeof info->audio_codec, "%s", ms.codec);
        info->sample_rate = ms.sample_rate;
        info->channels = ms.channels;
    }
    si = av_find_best_stream(fc, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    if (si >= 0 && !(fc->streams[si]->disposition & AV_DISPOSITION_ATTACHED_PIC)) {
        mer_media_stream ms;
        fill_stream(fc, fc->streams[si], &ms);
        info->has_video = 1;
        snprintf(info->video_codec, sizeof info->video_codec, "%s", ms.codec);
        info->width = ms.width;
        info->height = ms.height;
        info->fps = ms.fps;
        info->frames = ms.frames;
    }
    close_input(&fc);
    return MER_OK;
}

mer_status mer_media_streams(const char *path, mer_media_stream **streams, int32_t *n) {
    if (!path || !streams || !n) return mer__err(MER_ERR_INVALID_ARG, "mer_media_streams: NULL argument");
    *streams = NULL;
    *n = 0;
    AVFormatContext *fc;
    mer_status s = open_input(path, &fc);
    if (s) return s;
    int32_t count = (int32_t)fc->nb_streams;
    mer_media_stream *v = calloc(count > 0 ? (size_t)count : 1, sizeof *v);
    if (!v) {
        close_input(&fc);
        return mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
    }
    for (int32_t i = 0; i < count; i++) fill_stream(fc, fc->streams[i], &v[i]);
    close_input(&fc);
    *streams = v;
    *n = count;
    return MER_OK;
}

/* ============================================================================================
 * Audio
 * ========================================================================================== */

typedef struct {
    float *d;
    int64_t n, cap;
} fbuf;

/* Room for `extra` more samples. */
static mer_status fbuf_reserve(fbuf *b, int64_t extra, const char *path) {
    int64_t need;
    if (extra < 0 || !mer__add_overflow(b->n, extra, &need) || need > ((int64_t)1 << 40))
        return mer__err(MER_ERR_NOMEM, "%s: decoded audio too long", path);
    if (need <= b->cap) return MER_OK;
    int64_t cap = b->cap ? b->cap : 65536;
    while (cap < need) cap *= 2;
    float *d = realloc(b->d, (size_t)cap * sizeof *d);
    if (!d) return mer__err(MER_ERR_NOMEM, "%s: out of memory for %lld samples", path, (long long)cap);
    b->d = d;
    b->cap = cap;
    return MER_OK;
}

typedef struct {
    const char *path;
    int32_t out_rate;
    SwrContext *swr;
    int in_rate, in_format, in_channels;
    int64_t in_total;    /* input samples fed to the current resampler */
    int64_t expect_prev; /* expected output of earlier resampler configurations */
    int reconfigured;
    fbuf out;
} audio_state;

/* Drain what the resampler still holds (its filter delay) into out. */
static mer_status swr_drain(audio_state *a) {
    for (;;) {
        mer_status s = fbuf_reserve(&a->out, 4096, a->path);
        if (s) return s;
        uint8_t *dst = (uint8_t *)(a->out.d + a->out.n);
        int got = swr_convert(a->swr, &dst, 4096, NULL, 0);
        if (got < 0) return mer__err(MER_ERR_MEDIA, "%s: resampler flush failed", a->path);
        if (got == 0) return MER_OK;
        a->out.n += got;
    }
}

static mer_status swr_setup(audio_state *a, const AVFrame *fr) {
    int nch = fr->ch_layout.nb_channels;
    if (nch <= 0 || nch > 64 || fr->sample_rate <= 0)
        return mer__err(MER_ERR_MEDIA, "%s: decoded audio has %d channels at %d Hz", a->path, nch, fr->sample_rate);
    AVChannelLayout in_layout = {0};
    if (fr->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC) av_channel_layout_default(&in_layout, nch);
    else if (av_channel_layout_copy(&in_layout, &fr->ch_layout) < 0)
        return mer__err(MER_ERR_NOMEM, "%s: out of memory", a->path);
    AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
    /* Two attempts: soxr (very high quality), then swr's own engine if soxr is missing. */
    for (int attempt = 0; attempt < 2; attempt++) {
        SwrContext *swr = NULL;
        int r = swr_alloc_set_opts2(&swr, &mono, AV_SAMPLE_FMT_FLT, a->out_rate, &in_layout,
                                    (enum AVSampleFormat)fr->format, fr->sample_rate, 0, NULL);
        if (r < 0 || !swr) {
            av_channel_layout_uninit(&in_layout);
            return mer__err(MER_ERR_MEDIA, "%s: cannot set up the resampler", a->path);
        }
        if (attempt == 0) {
            av_opt_set(swr, "resampler", "soxr", 0);
            av_opt_set_double(swr, "precision", 28.0, 0);
        } else {
            av_opt_set_int(swr, "filter_size", 64, 0);
            av_opt_set_int(swr, "phase_shift", 10, 0);
            av_opt_set_double(swr, "cutoff", 0.97, 0);
        }
        double mix[64];
        for (int c = 0; c < nch; c++) mix[c] = 1.0 / nch; /* mono = mean of the channels */
        r = swr_set_matrix(swr, mix, nch);
        if (r >= 0) r = swr_init(swr);
        if (r >= 0) {
            av_channel_layout_uninit(&in_layout);
            if (attempt == 1) MER_LOG_D("%s: soxr unavailable, using swr resampler", a->path);
            a->swr = swr;
            a->in_rate = fr->sample_rate;
            a->in_format = fr->format;
            a->in_channels = nch;
            a->in_total = 0;
            return MER_OK;
        }
        swr_free(&swr);
    }
    av_channel_layout_uninit(&in_layout);
    return mer__err(MER_ERR_MEDIA, "%s: cannot initialise the resampler for %d Hz %d channels", a->path,
                    fr->sample_rate, nch);
}

static int64_t expected_len(int64_t n_in, int64_t rate_in, int64_t rate_out) {
    /* ceil(n_in * rate_out / rate_in) without overflow for any realistic length */
    int64_t q = n_in / rate_in, r = n_in % rate_in;
    return q * rate_out + (r * rate_out + rate_in - 1) / rate_in;
}

static mer_status audio_push(audio_state *a, const AVFrame *fr) {
    mer_status s;
    if (!a->swr || fr->sample_rate != a->in_rate || fr->format != a->in_format ||
        fr->ch_layout.nb_channels != a->in_channels) {
        if (a->swr) { /* parameters changed mid-stream: finish the old resampler first */
            if ((s = swr_drain(a))) return s;
            a->expect_prev += expected_len(a->in_total, a->in_rate, a->out_rate);
            a->reconfigured = 1;
            swr_free(&a->swr);
        }
        if ((s = swr_setup(a, fr))) return s;
    }
    int out_max = swr_get_out_samples(a->swr, fr->nb_samples);
    if (out_max < 0) return mer__err(MER_ERR_MEDIA, "%s: resampler error", a->path);
    if ((s = fbuf_reserve(&a->out, out_max, a->path))) return s;
    uint8_t *dst = (uint8_t *)(a->out.d + a->out.n);
    int got = swr_convert(a->swr, &dst, out_max, (const uint8_t **)fr->extended_data, fr->nb_samples);
    if (got < 0) return mer__err(MER_ERR_MEDIA, "%s: resampling failed", a->path);
    a->out.n += got;
    a->in_total += fr->nb_samples;
    return MER_OK;
}

/* Receive every frame the decoder has ready; push each through the resampler. */
static mer_status audio_receive(audio_state *a, AVCodecContext *dc, AVFrame *fr, int64_t *frames, int64_t *bad) {
    int errors = 0;
    for (;;) {
        int r = avcodec_receive_frame(dc, fr);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return MER_OK;
        if (r == AVERROR(ENOMEM)) return mer__err(MER_ERR_NOMEM, "%s: out of memory while decoding", a->path);
        if (r < 0) { /* corrupt data: counted, skipped (as the ffmpeg CLI does) */
            (*bad)++;
            if (++errors > 16) return MER_OK; /* never spin on a decoder stuck in an error */
            continue;
        }
        mer_status s = fr->nb_samples > 0 ? audio_push(a, fr) : MER_OK;
        av_frame_unref(fr);
        if (s) return s;
        (*frames)++;
    }
}

int mer_audio_is_silent(const float *x, int64_t n, float *peak) {
    float pk = 0.0f;
    int finite = 1;
    for (int64_t i = 0; x && i < n; i++) {
        float a = fabsf(x[i]);
        if (!(a <= FLT_MAX)) finite = 0;
        else if (a > pk) pk = a;
    }
    if (peak) *peak = pk;
    return finite && pk < MER_SILENCE_PEAK;
}

mer_status mer_media_decode_audio(const char *path, int32_t sample_rate, float **samples, int64_t *n) {
    if (!path || !samples || !n) return mer__err(MER_ERR_INVALID_ARG, "mer_media_decode_audio: NULL argument");
    *samples = NULL;
    *n = 0;
    if (sample_rate < 1000 || sample_rate > 768000)
        return mer__err(MER_ERR_INVALID_ARG, "%s: sample rate %d out of range [1000, 768000]", path, (int)sample_rate);

    AVFormatContext *fc = NULL;
    AVCodecContext *dc = NULL;
    AVPacket *pkt = NULL;
    AVFrame *fr = NULL;
    audio_state a = {.path = path, .out_rate = sample_rate};
    int64_t frames = 0, bad_packets = 0;
    int si = -1;
    char eb[128];
    mer_status s = open_input(path, &fc);
    if (!s) s = find_stream(fc, AVMEDIA_TYPE_AUDIO, path, &si);
    if (!s) s = open_decoder(fc, si, path, &dc);
    if (!s) {
        pkt = av_packet_alloc();
        fr = av_frame_alloc();
        if (!pkt || !fr) s = mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
    }
    while (!s) {
        int r = av_read_frame(fc, pkt);
        if (r == AVERROR_EOF) break;
        if (r < 0) {
            /* a read error after some audio: keep what was decoded (like a truncated file) */
            MER_LOG_W("%s: read error after %lld audio frames (%s)", path, (long long)frames, averr(r, eb, sizeof eb));
            if (!frames) s = mer__err(MER_ERR_MEDIA, "%s: cannot read packets (%s)", path, averr(r, eb, sizeof eb));
            break;
        }
        if (pkt->stream_index == si) {
            r = avcodec_send_packet(dc, pkt);
            if (r == AVERROR(EAGAIN)) { /* output pending: take it, then the packet fits */
                s = audio_receive(&a, dc, fr, &frames, &bad_packets);
                if (!s) r = avcodec_send_packet(dc, pkt);
            }
            if (r < 0 && r != AVERROR(EAGAIN)) bad_packets++; /* a corrupt packet: skip it, as ffmpeg does */
            if (!s) s = audio_receive(&a, dc, fr, &frames, &bad_packets);
        }
        av_packet_unref(pkt);
    }
    if (!s) {
        avcodec_send_packet(dc, NULL); /* drain the decoder */
        s = audio_receive(&a, dc, fr, &frames, &bad_packets);
    }
    if (!s && a.swr) s = swr_drain(&a);
    if (!s && bad_packets) {
        if (!frames) s = mer__err(MER_ERR_MEDIA, "%s: no audio could be decoded (%lld corrupt packets)", path, (long long)bad_packets);
        else MER_LOG_W("%s: skipped %lld corrupt audio packets", path, (long long)bad_packets);
    }
    if (!s && a.swr) {
        /* The resampler's flushed output is within a few samples of the exact length; make it
         * exactly ceil(n_in * out / in) so results do not depend on the engine. */
        int64_t want = a.expect_prev + expected_len(a.in_total, a.in_rate, a.out_rate);
        if (a.out.n > want) a.out.n = want;
        else if (a.out.n < want) {
            MER_LOG_D("%s: padding %lld samples after resampling", path, (long long)(want - a.out.n));
            s = fbuf_reserve(&a.out, want - a.out.n, path);
            if (!s) {
                memset(a.out.d + a.out.n, 0, (size_t)(want - a.out.n) * sizeof(float));
                a.out.n = want;
            }
        }
    }
    if (!s && !a.out.d) s = fbuf_reserve(&a.out, 1, path); /* an empty stream: a valid empty buffer */

    swr_free(&a.swr);
    av_frame_free(&fr);
    av_packet_free(&pkt);
    avcodec_free_context(&dc);
    close_input(&fc);
    if (s) {
        free(a.out.d);
        return s;
    }
    *samples = a.out.d;
    *n = a.out.n;
    return MER_OK;
}

/* ============================================================================================
 * Video
 * ========================================================================================== */

void mer_image_free(mer_image *img) {
    if (!img) return;
    free(img->rgb);
    memset(img, 0, sizeof *img);
}

void mer_frames_free(mer_image *frames, int32_t n) {
    if (!frames) return;
    for (int32_t i = 0; i < n; i++) free(frames[i].rgb);
    free(frames);
}

typedef struct {
    const char *path;
    const mer_frame_sampling *smp;
    struct SwsContext *sws;
    mer_image *v;
    int32_t n, cap;
    int32_t limit;            /* max frames to return (INT32_MAX when uncapped) */
    int64_t k;                /* next target index (fps/count sampling) */
    int32_t count;            /* count sampling: smp->count, at most the frames the stream has */
    double duration;          /* for count sampling */
    AVFrame *held;            /* the latest decoded frame (fps/count sampling) */
    int64_t held_index;
    double held_time, held_dur;
    int have_held;
    int64_t decoded;          /* frames out of the decoder so far */
    int64_t start_pts;        /* container start in stream time base, or first frame pts */
    int have_start;
    int64_t last_pts;
    AVRational tb;
    double nominal_dur;       /* 1 / fps of the stream, 0 if unknown */
    mer_frame_fn fn;          /* streaming: each frame goes to fn in cur (reused), none is kept */
    void *user;
    mer_image cur;
} video_state;

static int done(const video_state *v) { return v->n >= v->limit; }

/* Convert fr to RGB24 and append it with its time and index. */
static mer_status emit(video_state *v, const AVFrame *fr, double t, int64_t index) {
    if (fr->width <= 0 || fr->height <= 0 || fr->width > MEDIA_MAX_DIM || fr->height > MEDIA_MAX_DIM)
        return mer__err(MER_ERR_MEDIA, "%s: frame size %dx%d out of range (max %d)", v->path, fr->width,
                        fr->height, MEDIA_MAX_DIM);
    if (!v->fn && v->n == v->cap) {
        int32_t cap = v->cap ? v->cap * 2 : 16;
        if (cap > v->limit) cap = v->limit;
        mer_image *nv = realloc(v->v, (size_t)cap * sizeof *nv);
        if (!nv) return mer__err(MER_ERR_NOMEM, "%s: out of memory for %d frames", v->path, (int)cap);
        v->v = nv;
        v->cap = cap;
    }
    int w = fr->width, h = fr->height;
    v->sws = sws_getCachedContext(v->sws, w, h, (enum AVPixelFormat)fr->format, w, h, AV_PIX_FMT_RGB24,
                                  SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT, NULL, NULL, NULL);
    if (!v->sws)
        return mer__err(MER_ERR_MEDIA, "%s: cannot convert pixel format %s to RGB", v->path,
                        av_get_pix_fmt_name((enum AVPixelFormat)fr->format) ? av_get_pix_fmt_name((enum AVPixelFormat)fr->format) : "?");
    /* Honour the stream's colour matrix (BT.601 when unspecified) and range. */
    int cs = fr->colorspace == AVCOL_SPC_UNSPECIFIED ? SWS_CS_DEFAULT : (int)fr->colorspace;
    int *inv, *tab, src_range, dst_range, bri, con, sat;
    if (sws_getColorspaceDetails(v->sws, &inv, &src_range, &tab, &dst_range, &bri, &con, &sat) >= 0) {
        if (fr->color_range == AVCOL_RANGE_JPEG) src_range = 1;
        else if (fr->color_range == AVCOL_RANGE_MPEG) src_range = 0;
        sws_setColorspaceDetails(v->sws, sws_getCoefficients(cs), src_range, tab, 1, bri, con, sat);
    }
    size_t bytes = (size_t)w * (size_t)h * 3;
    uint8_t *rgb;
    if (v->fn && v->cur.rgb && v->cur.width == w && v->cur.height == h) {
        rgb = v->cur.rgb; /* streaming: one RGB buffer for the whole clip */
    } else {
        rgb = malloc(bytes + 64); /* slack: SIMD paths may write a little past a row */
        if (!rgb) return mer__err(MER_ERR_NOMEM, "%s: out of memory for a %dx%d frame", v->path, w, h);
        if (v->fn) {
            free(v->cur.rgb);
            v->cur.rgb = rgb;
        }
    }
    uint8_t *dst[4] = {rgb, NULL, NULL, NULL};
    int dst_stride[4] = {w * 3, 0, 0, 0};
    int r = sws_scale(v->sws, (const uint8_t *const *)fr->data, fr->linesize, 0, h, dst, dst_stride);
    if (r != h) {
        if (!v->fn) free(rgb);
        return mer__err(MER_ERR_MEDIA, "%s: pixel conversion failed", v->path);
    }
    if (v->fn) {
        v->cur.width = w;
        v->cur.height = h;
        v->cur.time = t;
        v->cur.index = index;
        v->n++;
        return v->fn(&v->cur, v->user);
    }
    mer_image *img = &v->v[v->n++];
    img->width = w;
    img->height = h;
    img->rgb = rgb;
    img->time = t;
    img->index = index;
    return MER_OK;
}

/* Sampling target k (seconds), or -1 when there is none left. */
static double target(const video_state *v, int64_t k) {
    if (v->smp->fps > 0) return k / v->smp->fps;
    if (k >= v->count) return -1;
    return (k + 0.5) * v->duration / v->count;
}

/* A decoded frame arrives: emit held/new frames for the targets it passes. */
static mer_status video_frame(video_state *v, AVFrame *fr) {
    int64_t pts = fr->best_effort_timestamp;
    if (pts == AV_NOPTS_VALUE) pts = fr->pts;
#if LIBAVUTIL_VERSION_INT >= AV_VERSION_INT(58, 2, 100)
    int64_t fdur = fr->duration;
#else
    int64_t fdur = fr->pkt_duration;
#endif
    double dur = fdur > 0 ? fdur * av_q2d(v->tb) : v->nominal_dur;
    double t;
    if (pts == AV_NOPTS_VALUE) { /* no timestamp: continue from the previous frame */
        t = v->have_held ? v->held_time + (v->held_dur > 0 ? v->held_dur : v->nominal_dur) : 0;
    } else {
        if (!v->have_start) {
            v->start_pts = pts;
            v->have_start = 1;
        }
        t = (pts - v->start_pts) * av_q2d(v->tb);
    }
    int64_t index = v->decoded++;
    mer_status s;
    const mer_frame_sampling *smp = v->smp;
    if (smp->fps <= 0 && smp->count <= 0) { /* all, or every N-th */
        int every = smp->every > 0 ? smp->every : 1;
        if (index % every == 0) return emit(v, fr, t, index);
        return MER_OK;
    }
    /* The frame shown at target time T is the last one with time <= T. */
    for (double T = target(v, v->k); T >= 0 && T < t - TIME_EPS && !done(v); T = target(v, ++v->k)) {
        if (v->have_held) s = emit(v, v->held, v->held_time, v->held_index);
        else s = emit(v, fr, t, index); /* a target before the first frame gets the first frame */
        if (s) return s;
    }
    av_frame_unref(v->held);
    if (av_frame_ref(v->held, fr) < 0) return mer__err(MER_ERR_NOMEM, "%s: out of memory", v->path);
    v->have_held = 1;
    v->held_index = index;
    v->held_time = t;
    v->held_dur = dur;
    return MER_OK;
}

/* End of stream: the last frame covers [t, t + duration); count sampling uses it for every
 * remaining target. */
static mer_status video_finish(video_state *v) {
    if (!v->have_held) return MER_OK;
    double end = v->held_time + (v->held_dur > 0 ? v->held_dur : v->nominal_dur);
    for (double T = target(v, v->k); T >= 0 && !done(v); T = target(v, ++v->k)) {
        if (v->smp->fps > 0 && T >= end - TIME_EPS) break;
        mer_status s = emit(v, v->held, v->held_time, v->held_index);
        if (s) return s;
    }
    return MER_OK;
}

static mer_status video_receive(video_state *v, AVCodecContext *dc, AVFrame *fr, int64_t *bad) {
    int errors = 0;
    for (;;) {
        if (done(v)) return MER_OK;
        int r = avcodec_receive_frame(dc, fr);
        if (r == AVERROR(EAGAIN) || r == AVERROR_EOF) return MER_OK;
        if (r == AVERROR(ENOMEM)) return mer__err(MER_ERR_NOMEM, "%s: out of memory while decoding", v->path);
        if (r < 0) { /* corrupt data: counted, skipped (as the ffmpeg CLI does) */
            (*bad)++;
            if (++errors > 16) return MER_OK; /* never spin on a decoder stuck in an error */
            continue;
        }
        mer_status s = video_frame(v, fr);
        av_frame_unref(fr);
        if (s) return s;
    }
}

/* Duration of stream si from its packets' timestamps (a demux-only pass over a second handle),
 * for count sampling when neither the stream nor the container states a duration (raw streams). */
static mer_status scan_duration(const char *path, int si, int64_t start, int have_start, double *duration) {
    AVFormatContext *fc;
    mer_status s = open_input(path, &fc);
    if (s) return s;
    AVPacket *pkt = av_packet_alloc();
    int64_t end = AV_NOPTS_VALUE, packets = 0;
    while (pkt && av_read_frame(fc, pkt) >= 0) {
        packets += pkt->stream_index == si;
        if (pkt->stream_index == si && pkt->pts != AV_NOPTS_VALUE) {
            int64_t e = pkt->pts + (pkt->duration > 0 ? pkt->duration : 0);
            if (end == AV_NOPTS_VALUE || e > end) end = e;
            if (!have_start || pkt->pts < start) start = pkt->pts, have_start = 1;
        }
        av_packet_unref(pkt);
    }
    double tb = av_q2d(fc->streams[si]->time_base), fps = stream_fps(fc->streams[si]);
    av_packet_free(&pkt);
    close_input(&fc);
    /* raw elementary streams carry no timestamps: one packet per frame at the nominal rate */
    *duration = end != AV_NOPTS_VALUE ? (end - start) * tb : fps > 0 ? packets / fps : 0;
    if (!(*duration > 0))
        return mer__err(MER_ERR_MEDIA, "%s: duration unknown, cannot sample frames uniformly (use fps or every)", path);
    return MER_OK;
}

static mer_status decode_video(const char *path, const mer_frame_sampling *sampling, mer_frame_fn fn,
                               void *user, mer_image **frames, int32_t *n) {
    mer_frame_sampling all = {0};
    const mer_frame_sampling *smp = sampling ? sampling : &all;
    if (!(smp->fps >= 0) || smp->count < 0 || smp->every < 0 || smp->max_frames < 0 || !isfinite(smp->fps))
        return mer__err(MER_ERR_INVALID_ARG, "%s: negative or non-finite frame sampling", path);
    if ((smp->fps > 0) + (smp->count > 0) + (smp->every > 0) > 1)
        return mer__err(MER_ERR_INVALID_ARG, "%s: frame sampling: set only one of fps, count, every", path);

    AVFormatContext *fc = NULL;
    AVCodecContext *dc = NULL;
    AVPacket *pkt = NULL;
    AVFrame *fr = NULL;
    video_state v = {.path = path, .smp = smp, .limit = INT32_MAX, .fn = fn, .user = user, .count = smp->count};
    if (smp->max_frames > 0) v.limit = smp->max_frames;
    if (smp->count > 0 && smp->count < v.limit) v.limit = smp->count;
    int64_t bad_packets = 0;
    int si = -1;
    char eb[128];
    mer_status s = open_input(path, &fc);
    if (!s) s = find_stream(fc, AVMEDIA_TYPE_VIDEO, path, &si);
    if (!s) {
        AVStream *st = fc->streams[si];
        if (st->codecpar->width > MEDIA_MAX_DIM || st->codecpar->height > MEDIA_MAX_DIM)
            s = mer__err(MER_ERR_MEDIA, "%s: video size %dx%d exceeds the maximum %d", path, st->codecpar->width,
                         st->codecpar->height, MEDIA_MAX_DIM);
        v.tb = st->time_base;
        double fps = stream_fps(st);
        v.nominal_dur = fps > 0 ? 1.0 / fps : 0;
        v.duration = stream_duration(fc, st);
        if (fc->start_time != AV_NOPTS_VALUE) {
            v.start_pts = av_rescale_q(fc->start_time, AV_TIME_BASE_Q, st->time_base);
            v.have_start = 1;
        } else if (st->start_time != AV_NOPTS_VALUE) {
            v.start_pts = st->start_time;
            v.have_start = 1;
        }
        if (!s && smp->count > 0 && !(v.duration > 0)) s = scan_duration(path, si, v.start_pts, v.have_start, &v.duration);
        /* more targets than frames would only repeat frames: clamp to what the stream has */
        int64_t have = st->nb_frames > 0 ? st->nb_frames : fps > 0 && v.duration > 0 ? (int64_t)llround(v.duration * fps) : 0;
        if (!s && have > 0 && v.count > have) {
            MER_LOG_I("%s: %d frames asked, the video has %lld: each is used once", path, (int)v.count, (long long)have);
            v.count = (int32_t)have;
            if (v.limit > v.count) v.limit = v.count;
        }
    }
    if (!s) s = open_decoder(fc, si, path, &dc);
    if (!s) {
        pkt = av_packet_alloc();
        fr = av_frame_alloc();
        v.held = av_frame_alloc();
        if (!pkt || !fr || !v.held) s = mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
    }
    while (!s && !done(&v)) {
        int r = av_read_frame(fc, pkt);
        if (r == AVERROR_EOF) break;
        if (r < 0) {
            MER_LOG_W("%s: read error after %lld video frames (%s)", path, (long long)v.decoded, averr(r, eb, sizeof eb));
            if (!v.decoded) s = mer__err(MER_ERR_MEDIA, "%s: cannot read packets (%s)", path, averr(r, eb, sizeof eb));
            break;
        }
        if (pkt->stream_index == si) {
            r = avcodec_send_packet(dc, pkt);
            if (r == AVERROR(EAGAIN)) { /* output pending: take it, then the packet fits */
                s = video_receive(&v, dc, fr, &bad_packets);
                if (!s && !done(&v)) r = avcodec_send_packet(dc, pkt);
            }
            if (r < 0 && r != AVERROR(EAGAIN)) bad_packets++;
            if (!s) s = video_receive(&v, dc, fr, &bad_packets);
        }
        av_packet_unref(pkt);
    }
    if (!s && !done(&v)) {
        avcodec_send_packet(dc, NULL);
        s = video_receive(&v, dc, fr, &bad_packets);
    }
    if (!s && !v.decoded)
        s = mer__err(MER_ERR_MEDIA, "%s: no video frame could be decoded%s", path, bad_packets ? " (corrupt data)" : "");
    if (!s && bad_packets) MER_LOG_W("%s: skipped %lld corrupt video packets", path, (long long)bad_packets);
    if (!s) s = video_finish(&v);

    sws_freeContext(v.sws);
    av_frame_free(&v.held);
    av_frame_free(&fr);
    av_packet_free(&pkt);
    avcodec_free_context(&dc);
    close_input(&fc);
    free(v.cur.rgb);
    if (s) {
        mer_frames_free(v.v, v.n);
        return s;
    }
    if (frames) *frames = v.v;
    if (n) *n = v.n;
    return MER_OK;
}

mer_status mer_media_decode_video(const char *path, const mer_frame_sampling *sampling, mer_image **frames,
                                  int32_t *n) {
    if (!path || !frames || !n) return mer__err(MER_ERR_INVALID_ARG, "mer_media_decode_video: NULL argument");
    *frames = NULL;
    *n = 0;
    return decode_video(path, sampling, NULL, NULL, frames, n);
}

mer_status mer_media_each_video_frame(const char *path, const mer_frame_sampling *sampling, mer_frame_fn fn,
                                      void *user_data, int32_t *n) {
    if (n) *n = 0;
    if (!path || !fn) return mer__err(MER_ERR_INVALID_ARG, "mer_media_each_video_frame: NULL argument");
    return decode_video(path, sampling, fn, user_data, NULL, n);
}
