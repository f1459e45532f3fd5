/*
 * train_files.c -- `mer train` as one library call: the labelled clips, an optional test list
 * and unlabelled list (pseudo-labelling) loaded from feature directories, the recipe recorded in
 * the run (a file, or the feature directories' recipe.json), then mer_train_run or
 * mer_train_pseudo.
 */
#include "internal.h"

#include <string.h>

mer_train_files_params mer_train_files_default_params(void) {
    mer_train_files_params p;
    memset(&p, 0, sizeof p);
    p.data = mer_dataset_default_params();
    p.pseudo = mer_pseudo_default_params();
    p.train = mer_train_default_params();
    return p;
}

/* A recipe file's JSON as one line (so config.json stays readable); *out malloc'd. */
static mer_status read_recipe(const char *path, char **out) {
    mer_json *j = NULL;
    mer_status s = mer_json_load(&j, path); /* validates it is JSON */
    mer_json_free(j);
    size_t len = 0;
    if (s == MER_OK) s = mer__read_file(path, out, &len);
    if (s) return s;
    for (char *c = *out; *c; c++)
        if (*c == '\n' || *c == '\r' || *c == '\t') *c = ' ';
    return MER_OK;
}

/* The clips of a name list, with the training set's classes and modalities and no labels. */
static mer_status load_names(const mer_dataset *train, const mer_dataset_params *dp, const char *list,
                             char ***names, mer_dataset **out) {
    int64_t n = 0;
    mer_status s = mer_read_name_list(list, names, &n);
    if (s) return s;
    mer_dataset_params p = *dp;
    p.labels_csv = NULL;
    p.group_col = NULL;
    const char *cls[MER_MAX_CLASSES];
    const int32_t C = mer_dataset_n_classes(train);
    for (int32_t k = 0; k < C; k++) cls[k] = mer_dataset_class(train, k);
    p.classes = cls;
    p.n_classes = C;
    p.names = (const char *const *)*names;
    p.n_names = n;
    return mer_dataset_load(out, &p);
}

mer_status mer_train_files(const mer_train_files_params *p, const char *rundir, mer_metrics *out) {
    if (!p || !rundir || !p->data.labels_csv || p->data.n_modalities < 1 ||
        (p->pseudo.rounds > 0) != (p->unlabeled_list != NULL))
        return mer__err(MER_ERR_INVALID_ARG, "mer_train_files: bad params (labels, features, a run directory; "
                        "an unlabeled list goes with pseudo rounds >= 1)");
    mer_train_params tp = p->train;
    mer_pseudo_params pp = p->pseudo;
    char *recipe = NULL, **test_names = NULL, **unl_names = NULL;
    mer_dataset *train = NULL, *test = NULL, *unl = NULL;
    mer_status s = p->recipe_file ? read_recipe(p->recipe_file, &recipe)
                                  : mer_recipe_from_features(p->data.modalities, p->data.n_modalities, &recipe);
    if (s) goto done;
    tp.recipe_json = recipe;
    if ((s = mer_dataset_load(&train, &p->data))) goto done;
    if (p->test_list && (s = load_names(train, &p->data, p->test_list, &test_names, &test))) goto done;
    if (p->unlabeled_list) {
        const char *cls[MER_MAX_CLASSES];
        const int32_t C = mer_dataset_n_classes(train);
        for (int32_t k = 0; k < C; k++) cls[k] = mer_dataset_class(train, k);
        s = load_names(train, &p->data, p->unlabeled_list, &unl_names, &unl);
        if (s == MER_OK) s = mer_pseudo_default_thresholds(cls, C, pp.threshold);
        if (s == MER_OK && p->pseudo_thresholds) s = mer_pseudo_parse_thresholds(p->pseudo_thresholds, cls, C, pp.threshold);
        if (s) {
            const char *e = mer_last_error(), *u = p->unlabeled_list;
            if (strncmp(e, u, strlen(u))) mer__err_prefix("%s", u); /* the message names the list */
            goto done;
        }
    }
    if (p->loaded) p->loaded(train, test, unl, p->loaded_user_data);
    s = unl ? mer_train_pseudo(train, unl, test, &tp, &pp, rundir, out) : mer_train_run(train, test, &tp, rundir, out);
done:
    free(recipe);
    free(test_names);
    free(unl_names);
    mer_dataset_free(train);
    mer_dataset_free(test);
    mer_dataset_free(unl);
    return s;
}
