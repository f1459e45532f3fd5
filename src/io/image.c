/*
 * image.c -- still images: PNG through libpng, JPEG through libjpeg(-turbo), anything else
 * through FFmpeg's image decoders (first frame of the file); PNG writing.
 *
 * Every image comes back as packed 8-bit RGB. PNG conversions: palette -> RGB, grey -> RGB
 * (replicated), 16-bit -> 8-bit by rounding (v * 255 / 65535, libpng's png_set_scale_16), alpha
 * dropped without compositing (as PIL's convert("RGB")), gamma chunks ignored. JPEG: islow
 * IDCT and fancy upsampling (libjpeg's and PIL's defaults), grey -> RGB; CMYK is rejected.
 * EXIF orientation is ignored: pixels come back in stored order.
 */
#include "internal.h"

#include <errno.h>
#include <setjmp.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

/* Largest accepted side: width * height * 3 stays below 1 GiB. */
#define IMAGE_MAX_DIM 16384

static mer_status check_dims(const char *path, int64_t w, int64_t h) {
    if (w <= 0 || h <= 0 || w > IMAGE_MAX_DIM || h > IMAGE_MAX_DIM)
        return mer__err(MER_ERR_FORMAT, "%s: image size %lldx%lld out of range (max %d per side)", path,
                        (long long)w, (long long)h, IMAGE_MAX_DIM);
    return MER_OK;
}

/* ============================================================================================
 * PNG
 * ========================================================================================== */

typedef struct {
    const char *path;
    char msg[256];
} png_err_ctx;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_err_ctx *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
    png_err_ctx *c = png_get_error_ptr(png);
    MER_LOG_D("%s: libpng: %s", c->path, msg);
}

static mer_status load_png(const char *path, FILE *f, mer_image *out) {
    png_err_ctx ctx = {.path = path};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
    if (!png) return mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
    png_infop info = png_create_info_struct(png);
    uint8_t *volatile rgb = NULL;
    png_bytep *volatile rows = NULL;
    mer_status s = MER_OK;
    if (!info) {
        png_destroy_read_struct(&png, NULL, NULL);
        return mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        s = mer__err(MER_ERR_FORMAT, "%s: corrupt PNG (%s)", path, ctx.msg);
        goto done;
    }
    png_set_user_limits(png, IMAGE_MAX_DIM, IMAGE_MAX_DIM);
    png_init_io(png, f);
    png_read_info(png, info);
    png_uint_32 w = png_get_image_width(png, info), h = png_get_image_height(png, info);
    if ((s = check_dims(path, w, h))) goto done;
    int color = png_get_color_type(png, info);
    int depth = png_get_bit_depth(png, info);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_scale_16(png);
    if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
    png_set_strip_alpha(png); /* also drops a tRNS transparency: we return RGB */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    if (png_get_rowbytes(png, info) != (size_t)w * 3) {
        s = mer__err(MER_ERR_UNSUPPORTED, "%s: PNG layout (color type %d, depth %d) not convertible to RGB8", path,
                     color, depth);
        goto done;
    }
    rgb = malloc((size_t)w * h * 3);
    rows = malloc((size_t)h * sizeof *rows);
    if (!rgb || !rows) {
        s = mer__err(MER_ERR_NOMEM, "%s: out of memory for a %ux%u image", path, (unsigned)w, (unsigned)h);
        goto done;
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = rgb + (size_t)y * w * 3;
    png_read_image(png, rows);
    png_read_end(png, NULL);
    out->width = (int32_t)w;
    out->height = (int32_t)h;
    out->rgb = rgb;
    rgb = NULL;
done:
    png_destroy_read_struct(&png, &info, NULL);
    free(rows);
    free(rgb);
    return s;
}

/* ============================================================================================
 * JPEG
 * ========================================================================================== */

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jmp;
    char msg[JMSG_LENGTH_MAX];
    int truncated;
} jpeg_err_ctx;

static void jpeg_on_error(j_common_ptr cinfo) {
    jpeg_err_ctx *e = (jpeg_err_ctx *)cinfo->err;
    (*cinfo->err->format_message)(cinfo, e->msg);
    longjmp(e->jmp, 1);
}

/* Warnings stay quiet, except that running out of data is an error for us: libjpeg would pad
 * the rest of the picture with grey (PIL also refuses such files). */
static void jpeg_on_emit(j_common_ptr cinfo, int level) {
    jpeg_err_ctx *e = (jpeg_err_ctx *)cinfo->err;
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) e->truncated = 1;
}

static mer_status load_jpeg(const char *path, FILE *f, mer_image *out) {
    struct jpeg_decompress_struct cinfo;
    jpeg_err_ctx err;
    uint8_t *volatile rgb = NULL;
    mer_status s = MER_OK;
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = jpeg_on_error;
    err.pub.emit_message = jpeg_on_emit;
    err.msg[0] = '\0';
    err.truncated = 0;
    if (setjmp(err.jmp)) {
        s = mer__err(MER_ERR_FORMAT, "%s: corrupt JPEG (%s)", path, err.msg);
        goto done;
    }
    jpeg_create_decompress(&cinfo);
    jpeg_stdio_src(&cinfo, f);
    jpeg_read_header(&cinfo, TRUE);
    if ((s = check_dims(path, cinfo.image_width, cinfo.image_height))) goto done;
    if (cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK) {
        s = mer__err(MER_ERR_UNSUPPORTED, "%s: CMYK JPEG is not supported", path);
        goto done;
    }
    cinfo.out_color_space = JCS_RGB;
    jpeg_start_decompress(&cinfo);
    if (cinfo.output_components != 3) {
        s = mer__err(MER_ERR_UNSUPPORTED, "%s: JPEG decodes to %d components, expected 3", path,
                     cinfo.output_components);
        goto done;
    }
    size_t stride = (size_t)cinfo.output_width * 3;
    rgb = malloc(stride * cinfo.output_height);
    if (!rgb) {
        s = mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        JSAMPROW row = rgb + stride * cinfo.output_scanline;
        jpeg_read_scanlines(&cinfo, &row, 1);
    }
    jpeg_finish_decompress(&cinfo);
    if (err.truncated) {
        s = mer__err(MER_ERR_FORMAT, "%s: corrupt JPEG (truncated: data ends early)", path);
        goto done;
    }
    out->width = (int32_t)cinfo.output_width;
    out->height = (int32_t)cinfo.output_height;
    out->rgb = rgb;
    rgb = NULL;
done:
    jpeg_destroy_decompress(&cinfo);
    free(rgb);
    return s;
}

/* ============================================================================================
 * Load, write
 * ========================================================================================== */

mer_status mer_image_load(const char *path, mer_image *out) {
    if (!path || !out) return mer__err(MER_ERR_INVALID_ARG, "mer_image_load: NULL argument");
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return mer__err(MER_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t magic[8] = {0};
    size_t got = fread(magic, 1, sizeof magic, f);
    rewind(f);
    mer_status s;
    if (got == 0) {
        s = mer__err(MER_ERR_FORMAT, "%s: empty file", path);
    } else if (got == 8 && png_sig_cmp(magic, 0, 8) == 0) {
        s = load_png(path, f, out);
    } else if (got >= 3 && magic[0] == 0xFF && magic[1] == 0xD8 && magic[2] == 0xFF) {
        s = load_jpeg(path, f, out);
    } else {
        /* Anything else (BMP, WebP, TIFF, GIF, ...): the first picture FFmpeg decodes. */
        fclose(f);
        f = NULL;
        mer_frame_sampling one = {.max_frames = 1};
        mer_image *frames = NULL;
        int32_t n = 0;
        s = mer_media_decode_video(path, &one, &frames, &n);
        if (!s && n < 1) s = mer__err(MER_ERR_FORMAT, "%s: no picture decoded", path);
        if (!s) {
            *out = frames[0];
            out->time = 0;
            out->index = 0;
            frames[0].rgb = NULL;
        } else if (s == MER_ERR_MEDIA) {
            s = MER_ERR_FORMAT; /* keep FFmpeg's message, which names the file */
        }
        mer_frames_free(frames, n);
    }
    if (f) fclose(f);
    if (s) memset(out, 0, sizeof *out);
    return s;
}

typedef struct {
    uint8_t *d;
    size_t n, cap;
    int failed;
} membuf;

static void png_mem_write(png_structp png, png_bytep data, size_t len) {
    membuf *b = png_get_io_ptr(png);
    if (b->failed) return;
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + len) cap *= 2;
        uint8_t *d = realloc(b->d, cap);
        if (!d) {
            b->failed = 1;
            return;
        }
        b->d = d;
        b->cap = cap;
    }
    memcpy(b->d + b->n, data, len);
    b->n += len;
}

static void png_mem_flush(png_structp png) { (void)png; }

mer_status mer_image_write_png(const char *path, const uint8_t *pixels, int32_t width, int32_t height,
                               int32_t channels) {
    if (!path || !pixels) return mer__err(MER_ERR_INVALID_ARG, "mer_image_write_png: NULL argument");
    if (channels != 1 && channels != 3 && channels != 4)
        return mer__err(MER_ERR_INVALID_ARG, "%s: %d channels (expected 1, 3 or 4)", path, (int)channels);
    if (width <= 0 || height <= 0 || width > IMAGE_MAX_DIM || height > IMAGE_MAX_DIM)
        return mer__err(MER_ERR_INVALID_ARG, "%s: image size %dx%d out of range", path, (int)width, (int)height);
    png_err_ctx ctx = {.path = path};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_on_error, png_on_warning);
    if (!png) return mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
    png_infop info = png_create_info_struct(png);
    membuf buf = {0};
    png_bytep *volatile rows = NULL;
    mer_status s = MER_OK;
    if (!info) {
        png_destroy_write_struct(&png, NULL);
        return mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
    }
    if (setjmp(png_jmpbuf(png))) {
        s = mer__err(MER_ERR_INTERNAL, "%s: PNG encoding failed (%s)", path, ctx.msg);
        goto done;
    }
    rows = malloc((size_t)height * sizeof *rows);
    if (!rows) {
        s = mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    for (int32_t y = 0; y < height; y++) rows[y] = (png_bytep)pixels + (size_t)y * width * channels;
    png_set_write_fn(png, &buf, png_mem_write, png_mem_flush);
    int color = channels == 1 ? PNG_COLOR_TYPE_GRAY : channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGBA;
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, color, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    if (buf.failed) s = mer__err(MER_ERR_NOMEM, "%s: out of memory while encoding", path);
    else s = mer__write_file_atomic(path, buf.d, buf.n);
done:
    png_destroy_write_struct(&png, &info);
    free(rows);
    free(buf.d);
    return s;
}
