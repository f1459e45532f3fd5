/*
 * registry.c -- the table of trainable models by name. To add a model: define a
 * mer__model_ops in its own file (src/models/...) and add one line below.
 */
#include "train/train.h"

#include <string.h>

extern const mer__model_ops mer__model_attention;   /* src/models/fusion_attention.c */
extern const mer__model_ops mer__model_agt, mer__model_afusion; /* src/models/fusion_agt.c */
extern const mer__model_ops mer__model_linear;      /* src/models/linear_softmax.c */
extern const mer__model_ops mer__model_speech;      /* src/train/model_speech.c */

static const mer__model_ops *const registry[] = {
    &mer__model_attention,
    &mer__model_agt, &mer__model_afusion,
    &mer__model_linear,
    &mer__model_speech,
};

const mer__model_ops *mer__model_lookup(const char *name) {
    for (size_t i = 0; i < sizeof registry / sizeof *registry; i++)
        if (!strcmp(registry[i]->name, name)) return registry[i];
    return NULL;
}

const char *mer__model_names(void) {
    static char buf[512];
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof registry / sizeof *registry && o + 1 < sizeof buf; i++) {
        size_t l = strlen(registry[i]->name);
        if (o + l + 3 >= sizeof buf) break;
        if (i) { buf[o++] = ','; buf[o++] = ' '; }
        memcpy(buf + o, registry[i]->name, l + 1);
        o += l;
    }
    return buf;
}
