/*
 * fs.c -- the file-system helpers, one copy each (docs/safety.md):
 *  - names to paths: a name read from a file (clip, speaker, class) becomes a file name only
 *    here, and only when it cannot leave its directory;
 *  - outputs are not inputs: the same file is recognised by device and inode;
 *  - atomic writes: a temporary file "<path>.tmp.<pid>", fsynced, renamed over path, then the
 *    directory fsynced; the first failed write stops with strerror; stale temporaries of dead
 *    processes are removed;
 *  - directories mer made carry a marker file listing what mer wrote into them, and only such a
 *    directory, holding nothing else, is ever removed.
 */
#include "internal.h"

#include <cJSON.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* ---- names ------------------------------------------------------------------------------- */

/* Printable form of a hostile name for an error message (controls as \xNN, cut at 80 bytes). */
static const char *shown(char *buf, size_t n, const char *name, size_t len) {
    size_t k = 0;
    for (size_t i = 0; i < len && k + 5 < n && i < 300; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f)
            k += (size_t)snprintf(buf + k, n - k, "\\x%02x", c);
        else
            buf[k++] = (char)c;
    }
    buf[k] = '\0';
    return buf;
}

/* "src: row N: " with src printable (a hostile file name must not drive the terminal). */
static const char *where(char *buf, size_t n, const char *src, int64_t row) {
    char sh[400];
    if (src) shown(sh, sizeof sh, src, strlen(src));
    if (src && row > 0)
        snprintf(buf, n, "%s: row %lld: ", sh, (long long)row);
    else if (src)
        snprintf(buf, n, "%s: ", sh);
    else
        buf[0] = '\0';
    return buf;
}

mer_status mer__name_check_n(const char *name, size_t len, const char *src, int64_t row) {
    char w[512], sh[512];
    if (!name) return mer__err(MER_ERR_INVALID_ARG, "%sNULL name", where(w, sizeof w, src, row));
    const char *why = NULL;
    if (len == 0) why = "is empty";
    else if (len > 200) why = "is longer than 200 bytes";
    else if (strcmp(name, ".") == 0 && len == 1) why = "is '.'";
    for (size_t i = 0; !why && i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == 0) why = "contains a NUL byte";
        else if (c == '/' || c == '\\') why = "contains a path separator";
        else if (c < 0x20 || c == 0x7f) why = "contains a control character";
        /* C1 controls U+0080..U+009F are 0xC2 0x80..0x9F in UTF-8 */
        else if (c == 0xC2 && i + 1 < len && (unsigned char)name[i + 1] >= 0x80 &&
                 (unsigned char)name[i + 1] <= 0x9F)
            why = "contains a control character";
        else if (c == '.' && i + 1 < len && name[i + 1] == '.') why = "contains '..'";
    }
    if (!why) return MER_OK;
    return mer__err(MER_ERR_FORMAT, "%sname '%s' %s: a name is not a path (names may not hold "
                    "'/', '\\', '..', NUL or control characters)",
                    where(w, sizeof w, src, row), shown(sh, sizeof sh, name, len), why);
}

mer_status mer_name_check(const char *name, const char *src, int64_t row) {
    return mer__name_check_n(name, name ? strlen(name) : 0, src, row);
}

mer_status mer_name_path(char *out, size_t cap, const char *dir, const char *name,
                         const char *suffix, const char *src, int64_t row) {
    if (!out || cap == 0 || !dir) return mer__err(MER_ERR_INVALID_ARG, "mer_name_path: NULL argument");
    out[0] = '\0';
    mer_status s = mer_name_check(name, src, row);
    if (s != MER_OK) return s;
    int n = snprintf(out, cap, "%s/%s%s", dir, name, suffix ? suffix : "");
    if (n < 0 || (size_t)n >= cap) {
        out[0] = '\0';
        return mer__err(MER_ERR_INVALID_ARG, "%s/%s%s: path too long", dir, name, suffix ? suffix : "");
    }
    return MER_OK;
}

/* ---- outputs are not inputs -------------------------------------------------------------- */

typedef struct {
    dev_t dev;
    ino_t ino;
    int64_t idx;
} file_id;

struct mer_input_set {
    file_id *ids;
    int64_t n;
    const char *const *paths; /* borrowed: names the input in messages */
};

static int cmp_id(const void *a, const void *b) {
    const file_id *x = a, *y = b;
    if (x->dev != y->dev) return x->dev < y->dev ? -1 : 1;
    if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
    return 0;
}

mer_status mer_input_set_init(mer_input_set **out, const char *const *inputs, int64_t n) {
    *out = NULL;
    mer_input_set *set = calloc(1, sizeof *set);
    if (!set || !(set->ids = malloc((size_t)(n > 0 ? n : 1) * sizeof *set->ids))) {
        free(set);
        return mer__err(MER_ERR_NOMEM, "out of memory");
    }
    set->paths = inputs;
    for (int64_t i = 0; i < n; i++) {
        struct stat si;
        if (!inputs[i] || strcmp(inputs[i], "-") == 0 || stat(inputs[i], &si) != 0) continue;
        set->ids[set->n++] = (file_id){si.st_dev, si.st_ino, i};
    }
    qsort(set->ids, (size_t)set->n, sizeof *set->ids, cmp_id);
    *out = set;
    return MER_OK;
}

mer_status mer_input_set_check(const mer_input_set *set, const char *out) {
    struct stat so;
    if (!set || !out || stat(out, &so) != 0) return MER_OK; /* not there yet: cannot be an input */
    file_id key = {so.st_dev, so.st_ino, 0};
    const file_id *hit = bsearch(&key, set->ids, (size_t)set->n, sizeof key, cmp_id);
    if (!hit) return MER_OK;
    return mer__err(MER_ERR_INVALID_ARG, "%s: the output is the input %s; refusing to overwrite an "
                    "input", out, set->paths[hit->idx]);
}

void mer_input_set_free(mer_input_set *set) {
    if (!set) return;
    free(set->ids);
    free(set);
}

mer_status mer_output_check(const char *out, const char *const *inputs, int64_t n) {
    struct stat so;
    if (!out || stat(out, &so) != 0) return MER_OK;
    mer_input_set *set = NULL;
    mer_status s = mer_input_set_init(&set, inputs, n);
    if (s == MER_OK) s = mer_input_set_check(set, out);
    mer_input_set_free(set);
    return s;
}

/* ---- directories ------------------------------------------------------------------------- */

#define MARKER ".mer-made"

mer_status mer_mkdir_p(const char *path) { return mer__mkdir(path); }

/* mkdir of one level; *made says whether it was created now. */
static mer_status mkdir_one(const char *path, const char *whole, int *made) {
    *made = 0;
    if (mkdir(path, 0777) == 0) {
        *made = 1;
        return MER_OK;
    }
    int e = errno;
    struct stat st;
    if (e == EEXIST && stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return MER_OK;
        return mer__err(MER_ERR_IO, "%s: cannot create directory: %s exists and is not a directory", whole, path);
    }
    return mer__err(MER_ERR_IO, "%s: cannot create directory %s: %s", whole, path, strerror(e));
}

static mer_status mkdir_p(const char *path, int *made_last) {
    char buf[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf) return mer__err(MER_ERR_INVALID_ARG, "%s: bad directory path", path);
    memcpy(buf, path, n + 1);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = '\0';
    int made = 0;
    for (size_t i = 1; i < n; i++) {
        if (buf[i] != '/' || buf[i - 1] == '/') continue;
        buf[i] = '\0';
        mer_status s = mkdir_one(buf, path, &made);
        buf[i] = '/';
        if (s != MER_OK) return s;
    }
    mer_status s = mkdir_one(buf, path, &made);
    if (made_last) *made_last = made;
    return s;
}

mer_status mer__mkdir(const char *path) { return mkdir_p(path, NULL); }

int mer__file_exists(const char *path) { return access(path, F_OK) == 0; }

static int split_dir(const char *path, char *dir, size_t cap, const char **base) {
    const char *sl = strrchr(path, '/');
    if (!sl) {
        snprintf(dir, cap, ".");
        *base = path;
        return 0;
    }
    size_t k = (size_t)(sl - path);
    if (k == 0) k = 1; /* "/x" */
    if (k >= cap) return -1;
    memcpy(dir, path, k);
    dir[k] = '\0';
    *base = sl + 1;
    return 0;
}

/* Adds "base\n" to dir's marker when dir has one (O_APPEND: concurrent writers of one line each
 * do not interleave). A directory without a marker was not made by mer and records nothing. */
static void record_made(const char *dir, const char *base) {
    char m[MER_PATH_CAP];
    if (snprintf(m, sizeof m, "%s/" MARKER, dir) >= (int)sizeof m) return;
    int fd = open(m, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return;
    char line[1024];
    int k = snprintf(line, sizeof line, "%s\n", base);
    if (k > 0 && (size_t)k < sizeof line && write(fd, line, (size_t)k) != k) {
        /* the marker only ever widens what may be removed; a short write loses one name,
         * which makes a later removal refuse, never remove more */
    }
    close(fd);
}

static void record_path(const char *path) {
    char dir[MER_PATH_CAP];
    const char *base;
    if (split_dir(path, dir, sizeof dir, &base) == 0 && *base) record_made(dir, base);
}

mer_status mer_mkdir_made(const char *path) {
    int made = 0;
    mer_status s = mkdir_p(path, &made);
    if (s != MER_OK || !made) {
        if (s == MER_OK) mer__tmp_cleanup(path);
        return s;
    }
    char m[MER_PATH_CAP];
    if (snprintf(m, sizeof m, "%s/" MARKER, path) >= (int)sizeof m)
        return mer__err(MER_ERR_INVALID_ARG, "%s: path too long", path);
    int fd = open(m, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd < 0) return mer__err(MER_ERR_IO, "%s: %s", m, strerror(errno));
    static const char head[] = "# made by mer: it removes this directory only while it holds nothing but these\n";
    ssize_t w = write(fd, head, sizeof head - 1);
    int e = errno;
    close(fd);
    if (w != (ssize_t)(sizeof head - 1))
        return mer__err(MER_ERR_IO, "%s: write failed: %s", m, w < 0 ? strerror(e) : "short write");
    char trimmed[4096];
    snprintf(trimmed, sizeof trimmed, "%s", path);
    size_t n = strlen(trimmed);
    while (n > 1 && trimmed[n - 1] == '/') trimmed[--n] = '\0';
    record_path(trimmed);
    return MER_OK;
}

/* "<name>.tmp.<digits>" -> pid, else 0 */
static long tmp_pid(const char *name) {
    const char *t = strstr(name, ".tmp.");
    if (!t) return 0;
    const char *nx;
    while ((nx = strstr(t + 1, ".tmp.")) != NULL) t = nx;
    const char *d = t + 5;
    if (!*d) return 0;
    long pid = 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9' || pid > 100000000) return 0;
        pid = pid * 10 + (*d - '0');
    }
    return pid;
}

static int pid_dead(long pid) { return pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH; }

int mer__tmp_cleanup(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int removed = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long pid = tmp_pid(e->d_name);
        if (pid <= 0 || pid == (long)getpid() || !pid_dead(pid)) continue;
        char p[4600];
        if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p) continue;
        struct stat st;
        if (lstat(p, &st) == 0 && S_ISREG(st.st_mode) && unlink(p) == 0) {
            removed++;
            MER_LOG_I("%s: removed the temporary file of a stopped run", p);
        }
    }
    closedir(d);
    return removed;
}

mer_status mer_tmp_cleanup(const char *dir, int *removed) {
    int k = mer__tmp_cleanup(dir);
    if (removed) *removed = k;
    return MER_OK;
}

/* The names listed in dir's marker, as one buffer of NUL-separated lines; NULL without one. */
static char *read_marker(const char *dir, size_t *n) {
    char m[MER_PATH_CAP];
    snprintf(m, sizeof m, "%s/" MARKER, dir);
    struct stat st;
    if (lstat(m, &st) != 0 || !S_ISREG(st.st_mode)) return NULL;
    char *data = NULL;
    if (mer__read_file(m, &data, n) != MER_OK) return NULL;
    for (size_t i = 0; i < *n; i++)
        if (data[i] == '\n') data[i] = '\0';
    return data;
}

static int listed(const char *list, size_t n, const char *name) {
    for (size_t i = 0; i < n; i += strlen(list + i) + 1)
        if (list[i] != '#' && strcmp(list + i, name) == 0) return 1;
    return 0;
}

/* Everything in dir is ours: the marker, names it lists (directories among them again made by
 * mer) and temporaries "<listed>.tmp.<pid>". check=1 only verifies; check=0 removes. */
static mer_status walk_made(const char *dir, int check, int depth) {
    if (depth > 16) return mer__err(MER_ERR_INVALID_ARG, "%s: directories nested too deep to remove", dir);
    size_t n = 0;
    char *list = read_marker(dir, &n);
    if (!list)
        return mer__err(MER_ERR_INVALID_ARG, "%s: not removed: mer did not make this directory (it "
                        "has no " MARKER " marker); remove it yourself or choose another output", dir);
    DIR *d = opendir(dir);
    if (!d) {
        free(list);
        return mer__err(MER_ERR_IO, "%s: %s", dir, strerror(errno));
    }
    mer_status s = MER_OK;
    struct dirent *e;
    while (s == MER_OK && (e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        if (!strcmp(nm, ".") || !strcmp(nm, "..") || !strcmp(nm, MARKER)) continue;
        char p[4600];
        if (snprintf(p, sizeof p, "%s/%s", dir, nm) >= (int)sizeof p) {
            s = mer__err(MER_ERR_INVALID_ARG, "%s/%s: path too long", dir, nm);
            break;
        }
        struct stat st;
        if (lstat(p, &st) != 0) continue;
        int ours = listed(list, n, nm);
        if (!ours && tmp_pid(nm) > 0) {
            char stem[1024];
            snprintf(stem, sizeof stem, "%s", nm);
            char *t = strstr(stem, ".tmp.");
            for (char *nx; t && (nx = strstr(t + 1, ".tmp.")) != NULL;) t = nx;
            if (t) *t = '\0';
            ours = listed(list, n, stem);
        }
        if (!ours || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
            s = mer__err(MER_ERR_INVALID_ARG, "%s: not removed: it holds %s, which mer did not make; "
                         "remove it yourself or choose another output", dir, p);
            break;
        }
        if (S_ISDIR(st.st_mode))
            s = walk_made(p, check, depth + 1);
        else if (!check && unlink(p) != 0 && errno != ENOENT)
            s = mer__err(MER_ERR_IO, "%s: cannot remove: %s", p, strerror(errno));
    }
    closedir(d);
    free(list);
    if (s == MER_OK && !check) {
        char m[MER_PATH_CAP];
        snprintf(m, sizeof m, "%s/" MARKER, dir);
        unlink(m);
        if (rmdir(dir) != 0) s = mer__err(MER_ERR_IO, "%s: cannot remove: %s", dir, strerror(errno));
    }
    return s;
}

mer_status mer_dir_remove_made(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? MER_OK : mer__err(MER_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return mer__err(MER_ERR_INVALID_ARG, "%s: not removed: not a directory", path);
    mer_status s = walk_made(path, 1, 0);
    if (s == MER_OK) s = walk_made(path, 0, 0);
    return s;
}

/* ---- reading ----------------------------------------------------------------------------- */

mer_status mer__read_fd(int fd, const char *path, char **data, size_t *size) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > ((size_t)1 << 40)) {
                free(buf);
                return mer__err(MER_ERR_NOMEM, "%s: input too large", path);
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return mer__err(MER_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            return mer__err(MER_ERR_IO, "%s: %s", path, strerror(e));
        }
        if (r == 0) break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    *data = buf;
    if (size) *size = n;
    return MER_OK;
}

mer_status mer__read_file(const char *path, char **data, size_t *size) {
    *data = NULL;
    if (size) *size = 0;
    if (!path) return mer__err(MER_ERR_INVALID_ARG, "NULL path");
    if (strcmp(path, "-") == 0) return mer__read_fd(0, "<stdin>", data, size);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mer__err(MER_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return mer__err(MER_ERR_IO, "%s: %s", path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return mer__err(MER_ERR_IO, "%s: is a directory (a file was expected)", path);
    }
    /* pipes, FIFOs and character devices have no size: read them as streams */
    mer_status s = mer__read_fd(fd, path, data, size);
    close(fd);
    return s;
}

/* ---- atomic writes ----------------------------------------------------------------------- */

static mer_status fsync_dir_of(const char *path) {
    char dir[MER_PATH_CAP];
    const char *base;
    if (split_dir(path, dir, sizeof dir, &base) != 0) return MER_OK;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return MER_OK; /* nothing to sync we could open; the rename itself succeeded */
    int r = fsync(fd);
    int e = errno;
    close(fd);
    /* some file systems refuse fsync on directories (EINVAL); that is not a write failure */
    if (r != 0 && e != EINVAL && e != EROFS)
        return mer__err(MER_ERR_IO, "%s: fsync of directory %s failed: %s", path, dir, strerror(e));
    return MER_OK;
}

mer_status mer__afile_open(mer__afile *f, const char *path) {
    memset(f, 0, sizeof *f);
    f->fd = -1;
    size_t pl = path ? strlen(path) : 0;
    if (!pl) return mer__err(MER_ERR_INVALID_ARG, "(empty): bad output path");
    if (pl + 32 > sizeof f->tmp) return mer__err(MER_ERR_INVALID_ARG, "%s: path too long (%zu bytes)", path, pl);
    memcpy(f->path, path, pl + 1);
    snprintf(f->tmp, sizeof f->tmp, "%s.tmp.%ld", path, (long)getpid());
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return mer__err(MER_ERR_IO, "%s: is a directory (a file was expected)", path);
    /* named in the directory's marker before anything exists, so a removal after a kill
     * recognises the temporary as ours */
    record_path(path);
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (f->fd < 0) return mer__err(MER_ERR_IO, "%s: cannot create: %s", f->tmp, strerror(errno));
    return MER_OK;
}

mer_status mer__afile_write(mer__afile *f, const void *data, size_t n) {
    if (f->fd < 0) return mer__err(MER_ERR_IO, "%s: write after a failed write", f->path);
    const char *p = data;
    while (n > 0) {
        ssize_t w = write(f->fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC;
            mer__afile_abort(f);
            return mer__err(MER_ERR_IO, "%s: write failed: %s", f->path, strerror(e));
        }
        p += w;
        n -= (size_t)w;
    }
    return MER_OK;
}

void mer__afile_abort(mer__afile *f) {
    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
        unlink(f->tmp);
    }
}

/* this thread's commits skip their fsyncs until mer__afile_settle */
static _Thread_local int afile_deferred;

void mer__afile_defer(int on) { afile_deferred = on != 0; }

mer_status mer__afile_settle(const char *dir) {
    afile_deferred = 0;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return mer__err(MER_ERR_IO, "%s: %s", dir, strerror(errno));
    int r = syncfs(fd);
    int e = errno;
    close(fd);
    if (r != 0) return mer__err(MER_ERR_IO, "%s: syncfs failed: %s", dir, strerror(e));
    return MER_OK;
}

mer_status mer__afile_commit(mer__afile *f) {
    if (f->fd < 0) return mer__err(MER_ERR_IO, "%s: write failed", f->path);
    if (!afile_deferred && fsync(f->fd) != 0 && errno != EINVAL) {
        int e = errno;
        mer__afile_abort(f);
        return mer__err(MER_ERR_IO, "%s: fsync failed: %s", f->path, strerror(e));
    }
    if (close(f->fd) != 0) {
        int e = errno;
        f->fd = -1;
        unlink(f->tmp);
        return mer__err(MER_ERR_IO, "%s: write failed: %s", f->path, strerror(e));
    }
    f->fd = -1;
    if (rename(f->tmp, f->path) != 0) {
        int e = errno;
        unlink(f->tmp);
        return mer__err(MER_ERR_IO, "%s: rename failed: %s", f->path, strerror(e));
    }
    return afile_deferred ? MER_OK : fsync_dir_of(f->path);
}

mer_status mer__write_file_atomic(const char *path, const void *data, size_t size) {
    mer__afile f;
    mer_status s = mer__afile_open(&f, path);
    if (s == MER_OK && size) s = mer__afile_write(&f, data, size);
    if (s == MER_OK) s = mer__afile_commit(&f);
    else mer__afile_abort(&f);
    return s;
}

mer_status mer__copy_file_atomic(const char *from, const char *to) {
    char *data = NULL;
    size_t n = 0;
    mer_status s = mer__read_file(from, &data, &n);
    if (s == MER_OK) s = mer__write_file_atomic(to, data, n);
    free(data);
    return s;
}

mer_status mer_write_file_atomic(const char *path, const void *data, size_t size) {
    if (!path || (!data && size)) return mer__err(MER_ERR_INVALID_ARG, "mer_write_file_atomic: NULL argument");
    return mer__write_file_atomic(path, data, size);
}

/* ---- list files -------------------------------------------------------------------------- */

mer_status mer__read_lines_n(const char *path, char ***lines, int64_t **lineno, int64_t *n) {
    *lines = NULL;
    if (lineno) *lineno = NULL;
    *n = 0;
    char *text = NULL;
    size_t size = 0;
    mer_status s = mer__read_file(path, &text, &size);
    if (s != MER_OK) return s;
    const char *shown_path = strcmp(path, "-") ? path : "<stdin>";
    if (memchr(text, '\0', size)) {
        free(text);
        return mer__err(MER_ERR_FORMAT, "%s: NUL byte in a text file", shown_path);
    }
    size_t off = size >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3) ? 3 : 0; /* one UTF-8 BOM, at the start only */
    int64_t cap = 1;
    for (size_t i = off; i < size; i++) cap += text[i] == '\n';
    /* one block: the pointer array followed by the text */
    char **arr = malloc((size_t)cap * sizeof(char *) + (size - off) + 1);
    if (!arr) {
        free(text);
        return mer__err(MER_ERR_NOMEM, "%s: out of memory", shown_path);
    }
    char *buf = (char *)(arr + cap);
    memcpy(buf, text + off, size - off + 1);
    free(text);
    int64_t *num = lineno ? malloc((size_t)cap * sizeof *num) : NULL;
    if (lineno && !num) {
        free(arr);
        return mer__err(MER_ERR_NOMEM, "%s: out of memory", shown_path);
    }
    int64_t k = 0, line = 0;
    for (char *p = buf; p && *p;) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        line++;
        char *b = p, *e = p + strlen(p);
        while (*b == ' ' || *b == '\t' || *b == '\r') b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) *--e = '\0';
        if (*b && *b != '#') {
            if (num) num[k] = line;
            arr[k++] = b;
        }
        p = nl ? nl + 1 : NULL;
    }
    *lines = arr;
    if (lineno) *lineno = num;
    *n = k;
    return MER_OK;
}

mer_status mer_read_lines(const char *path, char ***lines, int64_t *n) {
    return mer__read_lines_n(path, lines, NULL, n);
}

/* ---- digests ----------------------------------------------------------------------------- */

/* A 64-bit digest for detecting changed or corrupted data (not an adversary): 8-byte words
 * folded with a multiply-xorshift step, the length mixed in at the end. */
void mer__digest_init(mer__digest *d) {
    d->h = 0x243F6A8885A308D3ULL;
    d->n = 0;
}

static inline uint64_t mix64(uint64_t h, uint64_t w) {
    h ^= w;
    h *= 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 29);
}

void mer__digest_add(mer__digest *d, const void *data, size_t n) {
    const unsigned char *p = data;
    uint64_t h = d->h;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = mix64(h, w);
    }
    if (i < n) {
        uint64_t w = 0;
        memcpy(&w, p + i, n - i);
        h = mix64(h, w ^ ((uint64_t)(n - i) << 56));
    }
    d->h = h;
    d->n += n;
}

uint64_t mer__digest_final(const mer__digest *d) {
    uint64_t h = mix64(d->h, d->n);
    h ^= h >> 32;
    h *= 0xD6E8FEB86659FD93ULL;
    return h ^ (h >> 32);
}

/* ============================================================================================
 * The recipe of a directory of features
 * ========================================================================================== */

/* Where a and b first differ, as "key: was X, now Y" (keys joined by '.'), into buf. */
static int recipe_diff(const cJSON *a, const cJSON *b, const char *path, char *buf, size_t cap) {
    if (cJSON_Compare(a, b, 1)) return 0;
    if (cJSON_IsObject(a) && cJSON_IsObject(b)) {
        const cJSON *it;
        char sub[256];
        cJSON_ArrayForEach(it, b) {
            snprintf(sub, sizeof sub, "%s%s%s", path, *path ? "." : "", it->string);
            const cJSON *o = cJSON_GetObjectItemCaseSensitive(a, it->string);
            if (!o) {
                snprintf(buf, cap, "%s: not recorded, now set", sub);
                return 1;
            }
            if (recipe_diff(o, it, sub, buf, cap)) return 1;
        }
        cJSON_ArrayForEach(it, a) {
            if (!cJSON_GetObjectItemCaseSensitive(b, it->string)) {
                snprintf(buf, cap, "%s%s%s: recorded, now absent", path, *path ? "." : "", it->string);
                return 1;
            }
        }
    }
    char *x = cJSON_PrintUnformatted(a), *y = cJSON_PrintUnformatted(b);
    snprintf(buf, cap, "%s: was %.60s, now %.60s", *path ? path : "recipe", x ? x : "?", y ? y : "?");
    cJSON_free(x);
    cJSON_free(y);
    return 1;
}

static int64_t count_npy(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        n += l > 4 && !strcmp(e->d_name + l - 4, ".npy");
    }
    closedir(d);
    return n;
}

mer_status mer_output_recipe(const char *dir, const char *recipe_json, int overwrite) {
    if (!dir || !recipe_json) return mer__err(MER_ERR_INVALID_ARG, "mer_output_recipe: NULL argument");
    char path[MER_PATH_CAP];
    if (snprintf(path, sizeof path, "%s/recipe.json", dir) >= (int)sizeof path)
        return mer__err(MER_ERR_INVALID_ARG, "%s: path too long", dir);
    cJSON *now = cJSON_Parse(recipe_json);
    if (!now) return mer__err(MER_ERR_INTERNAL, "%s: the new recipe is not JSON", path);
    char *old = NULL;
    size_t size = 0;
    struct stat st;
    mer_status s = MER_OK;
    if (stat(path, &st) == 0) {
        if ((s = mer__read_file(path, &old, &size))) goto done;
        cJSON *was = cJSON_ParseWithLength(old, size);
        char why[200] = "it cannot be read as JSON";
        int differ = !was || recipe_diff(was, now, "", why, sizeof why);
        cJSON_Delete(was);
        if (differ && !overwrite) {
            s = mer__err(MER_ERR_INVALID_ARG,
                         "%s: its features were made with another recipe (%s; %s): --overwrite redoes "
                         "every file, or give another --out", dir, why, path);
            goto done;
        }
        if (!differ) goto done; /* the same recipe: resume */
    } else if (!overwrite) {
        int64_t n = count_npy(dir);
        if (n > 0) { /* made before recipes were recorded, or by hand: cannot be checked */
            MER_LOG_W("%s: %lld feature file%s and no recipe.json, so their recipe cannot be checked; "
                      "recipe.json is not written (--overwrite redoes them and records it)", dir,
                      (long long)n, n == 1 ? "" : "s");
            goto done;
        }
    }
    s = mer_write_file_atomic(path, recipe_json, strlen(recipe_json));
done:
    free(old);
    cJSON_Delete(now);
    return s;
}
