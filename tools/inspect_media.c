/*
 * inspect_media.c -- the media part of `mer inspect`: container, duration and every stream
 * (codec, sample rate and channels; size, frame rate and frame count) of a file FFmpeg reads.
 * Called by cmd_inspect.c for files that are neither safetensors nor .npy.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int inspect_media(const char *path);

int inspect_media(const char *path) {
    mer_media_info info;
    mer_status s = mer_media_probe(path, &info);
    mer_media_stream *st = NULL;
    int32_t n = 0;
    if (!s) s = mer_media_streams(path, &st, &n);
    if (s) {
        return cli_fail("inspect", "%s", mer_last_error()); /* the message starts with the file name */
    }
    printf("%s: %s, ", path, info.format);
    if (info.duration > 0) printf("duration %.3f s", info.duration);
    else printf("duration unknown");
    printf(", %d stream%s\n", (int)n, n == 1 ? "" : "s");
    for (int32_t i = 0; i < n; i++) {
        const mer_media_stream *m = &st[i];
        printf("  stream %d: %-5s %-10s", (int)m->index, m->type, m->codec);
        if (!strcmp(m->type, "audio")) {
            printf(" %d Hz, %d channel%s", (int)m->sample_rate, (int)m->channels, m->channels == 1 ? "" : "s");
        } else if (!strcmp(m->type, "video")) {
            printf(" %dx%d", (int)m->width, (int)m->height);
            if (m->attached_pic) printf(", still picture (cover art)");
            else if (m->frames > 0) printf(", %.3f fps, %lld frames", m->fps, (long long)m->frames);
            else printf(", %.3f fps", m->fps);
        }
        if (m->duration > 0) printf(", %.3f s", m->duration);
        printf("\n");
    }
    free(st);
    return 0;
}
