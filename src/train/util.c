/*
 * util.c -- the prediction CSV writer of the training engine (mer_write_predictions), built
 * with core's string builder (src/core/strbuf.c).
 */
#include "train/train.h"


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
        mer_argmax_rows(p, 1, c, &best);
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
