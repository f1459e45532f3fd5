/*
 * datadir.c -- where the bundled models and data are: mer_data_path.
 *
 * A default like models/face-api used to be relative to the working directory, so `mer faces`
 * and `mer analyze` only worked inside the source tree. Now a bundled item is looked up in
 *   1. $MER_DATA_DIR                      (an explicit override)
 *   2. <dir of libmer.so or of the mer executable>/../share/mer   (`make install PREFIX=...`)
 *   3. the source tree this build came from (MER_SOURCE_DIR, set by the Makefile)
 * The library's own location comes from dladdr (it is the executable when libmer.a is linked
 * statically), the executable's from /proc/self/exe; both are resolved through symlinks.
 */
#include "internal.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef MER_SOURCE_DIR
#define MER_SOURCE_DIR ""
#endif

static int exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* dir/../share/mer/rel for the directory holding `file` (a resolved path) */
static int try_share(char *buf, size_t cap, const char *file, const char *rel) {
    char real[PATH_MAX];
    if (!file || !realpath(file, real)) return 0;
    char *sl = strrchr(real, '/');
    if (!sl) return 0;
    *sl = '\0';
    if ((size_t)snprintf(buf, cap, "%s/../share/mer/%s", real, rel) >= cap) return 0;
    return exists(buf);
}

mer_status mer_data_path(const char *rel, char **out) {
    if (!rel || !out) return mer__err(MER_ERR_INVALID_ARG, "mer_data_path: NULL argument");
    *out = NULL;
    if (!*rel || rel[0] == '/' || strstr(rel, ".."))
        return mer__err(MER_ERR_INVALID_ARG, "mer_data_path: \"%.200s\" is not a relative bundled path", rel);
    char buf[PATH_MAX + 64];
    const char *env = getenv("MER_DATA_DIR");
    int found = 0;
    if (env && *env && (size_t)snprintf(buf, sizeof buf, "%s/%s", env, rel) < sizeof buf && exists(buf)) found = 1;
    if (!found) {
        Dl_info info;
        if (dladdr((void *)&mer_data_path, &info) && info.dli_fname && info.dli_fname[0] == '/')
            found = try_share(buf, sizeof buf, info.dli_fname, rel);
    }
    if (!found) found = try_share(buf, sizeof buf, "/proc/self/exe", rel);
    if (!found && MER_SOURCE_DIR[0] && (size_t)snprintf(buf, sizeof buf, "%s/%s", MER_SOURCE_DIR, rel) < sizeof buf &&
        exists(buf))
        found = 1;
    if (!found)
        return mer__err(MER_ERR_NOT_FOUND,
                        "%s: bundled file not found (looked in $MER_DATA_DIR, ../share/mer beside the library and "
                        "the executable, and the source tree %s); set MER_DATA_DIR to the directory holding it",
                        rel, MER_SOURCE_DIR[0] ? MER_SOURCE_DIR : "(none)");
    char real[PATH_MAX];
    *out = strdup(realpath(buf, real) ? real : buf);
    return *out ? MER_OK : mer__err(MER_ERR_NOMEM, "out of memory");
}
