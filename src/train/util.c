/*
 * util.c -- file helpers of the training engine: directory creation and the prediction CSV
 * writer (mer_write_predictions). The string builder is core's mer__sb (src/core/strbuf.c).
 */
#include "train/train.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

mer_status mer__mkdir(const char *path) {
    /* missing parents first, as `mkdir -p` (an --out of runs/exp1/agt just works) */
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return mer__err(MER_ERR_INVALID_ARG, "%s: bad directory path", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i < n; i++) {
        if (buf[i] != '/' || buf[i - 1] == '/') continue;
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            int e = errno;
            return mer__err(MER_ERR_IO, "%s: cannot create directory %s: %s", path, buf, strerror(e));
        }
        buf[i] = '/';
    }
    if (mkdir(path, 0777) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return MER_OK;
        return mer__err(MER_ERR_IO, "%s: exists and is not a directory", path);
    }
    return mer__err(MER_ERR_IO, "%s: cannot create directory: %s", path, strerror(errno));
}

int mer__file_exists(const char *path) { return access(path, F_OK) == 0; }

mer_status mer_write_predictions(const char *path, const mer_dataset *ds, const float *probs,
                                 const char *const *classes, int32_t c, int mer2024) {
    mer__sb b = {0};
    int64_t n = mer_dataset_count(ds);
    if (mer2024) {
        mer__sb_printf(&b, "name,discrete\n");
    } else {
        mer__sb_printf(&b, "name");
        for (int32_t j = 0; j < c; j++) {
            mer__sb_printf(&b, ",");
            mer__sb_csv_field(&b, classes[j]);
        }
        mer__sb_printf(&b, ",pred\n");
    }
    for (int64_t i = 0; i < n; i++) {
        const float *p = probs + i * c;
        int32_t best;
        mer_argmax_rows(&best, p, 1, c);
        mer__sb_csv_field(&b, mer_dataset_name(ds, i));
        if (!mer2024)
            for (int32_t j = 0; j < c; j++) mer__sb_printf(&b, ",%.8g", p[j]);
        mer__sb_printf(&b, ",");
        mer__sb_csv_field(&b, classes[best]);
        mer__sb_printf(&b, "\n");
    }
    mer_status s = mer__sb_save(&b, path);
    mer__sb_free(&b);
    return s;
}
