/*
 * test_fs.c -- the file-system helpers of src/core/fs.c (docs/safety.md): names that are not
 * paths, outputs that are not inputs, atomic writes that stop at the first failed write,
 * stale temporaries, and removal of only the directories mer made.
 */
#include "test.h"

#include "internal.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int exists(const char *p) {
    struct stat st;
    return lstat(p, &st) == 0;
}

static char *slurp(const char *p) {
    char *d = NULL;
    size_t n;
    return mer__read_file(p, &d, &n) == MER_OK ? d : NULL;
}

MER_TEST(fs_name_check_refuses_paths) {
    const char *bad[] = {"", "..", ".", "../x", "a/b", "/etc", "a\\b", "..\\x", "x/..", "a..b",
                         "tab\there", "nl\n", "cr\r", "esc\x1b[2J", "del\x7f", "c1\xc2\x85",
                         "trailing/"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        mer_status s = mer_name_check(bad[i], "labels.csv", 7);
        CHECK(s == MER_ERR_FORMAT);
        if (s == MER_ERR_FORMAT) {
            CHECK(strstr(mer_last_error(), "labels.csv: row 7: name '") == mer_last_error());
            CHECK(!strchr(mer_last_error(), '\n') && !strchr(mer_last_error(), '\x1b'));
        }
    }
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    CHECK_ERR(mer_name_check(longname, "x.txt", 0), MER_ERR_FORMAT, "x.txt: name");
    /* an embedded NUL is caught when the length is known */
    CHECK_ERR(mer__name_check_n("ab\0../c", 7, "f", 2), MER_ERR_FORMAT, "NUL");
    const char *good[] = {"Ses01F_impro01_F000", "sample_00001", "a.b.c", "clip-1 (copy)",
                          "\xe4\xbd\xa0\xe5\xa5\xbd", "caf\xc3\xa9", "-dash", ".hidden", "x."};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) CHECK_OK(mer_name_check(good[i], "f", 1));
}

MER_TEST(fs_name_path) {
    char p[64];
    REQUIRE_OK(mer_name_path(p, sizeof p, "out/feats", "clip1", ".npy", "l.csv", 2));
    CHECK(!strcmp(p, "out/feats/clip1.npy"));
    CHECK_ERR(mer_name_path(p, sizeof p, "out", "../clip1", ".npy", "l.csv", 3), MER_ERR_FORMAT,
              "l.csv: row 3: name '../clip1' contains '..'");
    CHECK(p[0] == '\0');
    CHECK_ERR(mer_name_path(p, 16, "out/feats", "clip_with_a_long_name", ".npy", NULL, 0),
              MER_ERR_INVALID_ARG, "path too long");
    CHECK_ERR(mer_name_path(p, sizeof p, "d", "x\x01", NULL, "list.txt", 0), MER_ERR_FORMAT,
              "list.txt: name 'x\\x01' contains a control character");
}

MER_TEST(fs_output_is_not_an_input) {
    const char *d = mer_test_tmpdir("fs_output");
    char a[512], b[512], hl[512], sl[512], other[512], spelled[600];
    snprintf(a, sizeof a, "%s/a.flac", d);
    snprintf(b, sizeof b, "%s/b.flac", d);
    snprintf(hl, sizeof hl, "%s/hard.flac", d);
    snprintf(sl, sizeof sl, "%s/sym.flac", d);
    snprintf(other, sizeof other, "%s/new.npy", d);
    snprintf(spelled, sizeof spelled, "%s/./../%s/a.flac", d, strrchr(d, '/') + 1);
    REQUIRE(mer_test_write(a, "A", 1) == 0 && mer_test_write(b, "B", 1) == 0);
    REQUIRE(link(a, hl) == 0 && symlink("a.flac", sl) == 0);
    const char *in[] = {b, "-", a};
    CHECK_ERR(mer_output_check(a, in, 3), MER_ERR_INVALID_ARG, "the output is the input");
    CHECK_ERR(mer_output_check(hl, in, 3), MER_ERR_INVALID_ARG, "refusing to overwrite an input");
    CHECK_ERR(mer_output_check(sl, in, 3), MER_ERR_INVALID_ARG, "a.flac");
    CHECK_ERR(mer_output_check(spelled, in, 3), MER_ERR_INVALID_ARG, "the output is the input");
    CHECK_OK(mer_output_check(other, in, 3)); /* not there yet */
    CHECK_OK(mer_output_check(b, in, 1 - 1));
    const char *in2[] = {b};
    CHECK_OK(mer_output_check(a, in2, 1));
}

MER_TEST(fs_atomic_write) {
    const char *d = mer_test_tmpdir("fs_atomic");
    char p[512], tmp[600];
    snprintf(p, sizeof p, "%s/out.bin", d);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", p, (long)getpid());
    REQUIRE_OK(mer_write_file_atomic(p, "first", 5));
    char *t = slurp(p);
    CHECK(t && !strcmp(t, "first"));
    free(t);
    CHECK(!exists(tmp));
    REQUIRE_OK(mer_write_file_atomic(p, "", 0));
    t = slurp(p);
    CHECK(t && !strcmp(t, ""));
    free(t);
    /* a directory where the file should go */
    CHECK_ERR(mer_write_file_atomic(d, "x", 1), MER_ERR_IO, "is a directory");
    /* a missing directory names strerror */
    char q[600];
    snprintf(q, sizeof q, "%s/nope/out.bin", d);
    CHECK_ERR(mer_write_file_atomic(q, "x", 1), MER_ERR_IO, "No such file or directory");
    /* a write that fails half-way (file size limit: EFBIG, as a full disk gives ENOSPC) stops
     * with strerror, leaves the old file and no temporary */
    REQUIRE_OK(mer_write_file_atomic(p, "old", 3));
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {4096, 4096};
        setrlimit(RLIMIT_FSIZE, &rl);
        static char big[1 << 16];
        mer_status s = mer_write_file_atomic(p, big, sizeof big);
        int ok = s == MER_ERR_IO && strstr(mer_last_error(), "write failed: File too large") &&
                 !strstr(mer_last_error(), ".tmp.");
        _exit(ok ? 0 : 1);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", p, (long)pid);
    CHECK(!exists(tmp));
    t = slurp(p);
    CHECK(t && !strcmp(t, "old"));
    free(t);
}

/* The pid of a process that has exited. */
static pid_t dead_pid(void) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    waitpid(pid, NULL, 0);
    return pid;
}

MER_TEST(fs_stale_tmp_cleanup) {
    const char *d = mer_test_tmpdir("fs_stale");
    char dir[512], p1[600], p2[600], p3[600], p4[600];
    snprintf(dir, sizeof dir, "%s", d);
    pid_t dead = dead_pid();
    snprintf(p1, sizeof p1, "%s/a.npy.tmp.%ld", dir, (long)dead);
    snprintf(p2, sizeof p2, "%s/b.npy.tmp.%ld", dir, (long)getpid()); /* ours: in use */
    snprintf(p3, sizeof p3, "%s/c.npy.tmp.1", dir);                     /* pid 1 lives */
    snprintf(p4, sizeof p4, "%s/notes.tmp.txt", dir);                   /* not ours */
    REQUIRE(!mer_test_write(p1, "x", 1) && !mer_test_write(p2, "x", 1) && !mer_test_write(p3, "x", 1) &&
            !mer_test_write(p4, "x", 1));
    int removed = -1;
    CHECK_OK(mer_tmp_cleanup(dir, &removed));
    CHECK(removed == 1);
    CHECK(!exists(p1) && exists(p2) && exists(p3) && exists(p4));
    /* an existing output directory is cleaned when mer uses it */
    REQUIRE(!mer_test_write(p1, "x", 1));
    CHECK_OK(mer_mkdir_made(dir));
    CHECK(!exists(p1));
}

MER_TEST(fs_remove_only_what_mer_made) {
    const char *d = mer_test_tmpdir("fs_remove");
    char root[512], run[600], sub[700], f[800], g[800], stranger[800], m[800];
    snprintf(root, sizeof root, "%s", d);
    snprintf(run, sizeof run, "%s/run", root);
    snprintf(sub, sizeof sub, "%s/trials", run);
    REQUIRE_OK(mer_mkdir_made(run));
    REQUIRE_OK(mer_mkdir_made(sub));
    snprintf(f, sizeof f, "%s/config.json", run);
    snprintf(g, sizeof g, "%s/fold-0.json", sub);
    REQUIRE_OK(mer_write_file_atomic(f, "{}", 2));
    REQUIRE_OK(mer_write_file_atomic(g, "{}", 2));
    /* a user's file inside: nothing is removed */
    snprintf(stranger, sizeof stranger, "%s/notes.txt", sub);
    REQUIRE(mer_test_write(stranger, "mine", 4) == 0);
    CHECK_ERR(mer_dir_remove_made(run), MER_ERR_INVALID_ARG, "notes.txt, which mer did not make");
    CHECK(exists(f) && exists(g) && exists(stranger));
    REQUIRE(unlink(stranger) == 0);
    /* a symlink, even with a listed name, is not ours */
    REQUIRE(unlink(g) == 0 && symlink("/etc/passwd", g) == 0);
    CHECK_ERR(mer_dir_remove_made(run), MER_ERR_INVALID_ARG, "fold-0.json");
    CHECK(exists(f));
    REQUIRE(unlink(g) == 0);
    REQUIRE_OK(mer_write_file_atomic(g, "{}", 2));
    /* a temporary left by a killed writer of a listed file is ours */
    char t[900];
    snprintf(t, sizeof t, "%s.tmp.%ld", f, (long)dead_pid());
    REQUIRE(mer_test_write(t, "x", 1) == 0);
    CHECK_OK(mer_dir_remove_made(run));
    CHECK(!exists(run));
    CHECK(exists(root));
    /* a directory mer did not make (no marker), even one that looks like a run */
    char user[600];
    snprintf(user, sizeof user, "%s/model", root);
    REQUIRE(mkdir(user, 0777) == 0);
    snprintf(f, sizeof f, "%s/config.json", user);
    REQUIRE(mer_test_write(f, "{}", 2) == 0);
    CHECK_ERR(mer_dir_remove_made(user), MER_ERR_INVALID_ARG, "mer did not make this directory");
    CHECK(exists(f));
    /* an existing directory is not marked by mer_mkdir_made */
    CHECK_OK(mer_mkdir_made(user));
    snprintf(m, sizeof m, "%s/.mer-made", user);
    CHECK(!exists(m));
    /* a file, and a missing path */
    CHECK_ERR(mer_dir_remove_made(f), MER_ERR_INVALID_ARG, "not a directory");
    snprintf(m, sizeof m, "%s/missing", root);
    CHECK_OK(mer_dir_remove_made(m));
}

MER_TEST(fs_read_file_kinds) {
    const char *d = mer_test_tmpdir("fs_read");
    char *data = NULL;
    size_t n = 0;
    CHECK_ERR(mer__read_file(d, &data, &n), MER_ERR_IO, "is a directory");
    CHECK(data == NULL);
    char fifo[512];
    snprintf(fifo, sizeof fifo, "%s/pipe", d);
    REQUIRE(mkfifo(fifo, 0666) == 0);
    fflush(stdout);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int fd = open(fifo, O_WRONLY);
        for (int i = 0; i < 1000; i++)
            if (write(fd, "0123456789\n", 11) != 11) _exit(1);
        close(fd);
        _exit(0);
    }
    mer_status s = mer__read_file(fifo, &data, &n);
    waitpid(pid, NULL, 0);
    CHECK(s == MER_OK && n == 11000 && data && !strncmp(data + 10989, "0123456789\n", 11));
    free(data);
    CHECK_ERR(mer__read_file("/nonexistent/x", &data, &n), MER_ERR_IO, "/nonexistent/x: No such file");
}
