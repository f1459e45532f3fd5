#include "text/text_internal.h"
mer_status mer__hfjson_load(mer_tokenizer *t, const char *file, const char *dir) {
    (void)t, (void)dir;
    return mer__err(MER_ERR_UNSUPPORTED, "%s: tokenizer.json is not read yet", file);
}
