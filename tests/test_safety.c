/*
 * test_safety.c -- hostile and careless input through the CLI (issue #16, docs/safety.md):
 * names that try to be paths, directories mer did not make, outputs that are inputs, wrong
 * answers without a warning, stale inputs, and the messages of bad input. Each class has
 * several cases; fs_* in test_fs.c tests the helpers themselves.
 */
#include "test.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static char out[1 << 16];

#define CLIP "data/emodb/flac/03a01Fa.flac"
#define FACE "tests/fixtures/faces/astronaut_crop.png"

static int exists(const char *p) {
    struct stat st;
    return lstat(p, &st) == 0;
}

static int write_str(const char *path, const char *s) { return mer_test_write(path, s, strlen(s)); }

/* A small synthetic data set: DIR/s/labels.csv, DIR/s/audio/<name>.npy (30 clips, 2 classes). */
static int make_synth(const char *dir) {
    return mer_test_run(out, sizeof out, "%s synth --out %s/s --n 30 --classes a,b --modality audio=3:2",
                        mer_test_bin(), dir);
}

static int train(const char *dir, const char *labels, const char *run, const char *extra) {
    return mer_test_run(out, sizeof out,
                        "%s train --labels %s --feature audio=%s/s/audio --model attention --folds 2 "
                        "--epochs 2 --out %s %s",
                        mer_test_bin(), labels, dir, run, extra ? extra : "");
}

/* Every path under root (except under skip), sorted, with size and mtime: a snapshot. */
static char *snapshot(const char *root, const char *skip) {
    static char buf[1 << 17];
    int rc = mer_test_run(buf, sizeof buf, "find '%s' -path '%s' -prune -o -printf '%%p %%s %%T@\\n' | sort",
                          root, skip);
    return rc == 0 ? strdup(buf) : NULL;
}

/* ---- 1. names are not paths -------------------------------------------------------------- */

MER_TEST(safety_train_refuses_path_names) {
    const char *d = mer_test_tmpdir("safety_names_train");
    char dir[512], lab[600], run[600], victim[600];
    snprintf(dir, sizeof dir, "%s", d);
    REQUIRE(make_synth(dir) == 0);
    snprintf(victim, sizeof victim, "%s/victim.npy", dir);
    /* a feature file outside the feature directory that a "../" name would reach */
    char cp[1400];
    snprintf(cp, sizeof cp, "cp %s/s/audio/l000000.npy %s", dir, victim);
    REQUIRE(system(cp) == 0);
    const char *bad[] = {"../../victim", "sub/x", "..", "a\\\\b", "\"tab\there\""};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        snprintf(lab, sizeof lab, "%s/bad%zu.csv", dir, k);
        char text[512];
        snprintf(text, sizeof text, "name,emotion\nl000000,a\nl000001,b\n%s,a\nl000003,b\n", bad[k]);
        REQUIRE(write_str(lab, text) == 0);
        snprintf(run, sizeof run, "%s/run%zu", dir, k);
        int rc = train(dir, lab, run, NULL);
        CHECK(rc == 1);
        CHECK(strstr(out, lab) && strstr(out, "row 4: name '"));
        CHECK(!exists(run));
    }
    /* a clip list (predict --list, --unlabeled) names the file and the line */
    snprintf(lab, sizeof lab, "%s/s/labels.csv", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    REQUIRE(train(dir, lab, run, NULL) == 0);
    char list[600], pred[600];
    snprintf(list, sizeof list, "%s/list.txt", dir);
    snprintf(pred, sizeof pred, "%s/pred.csv", dir);
    REQUIRE(write_str(list, "name\nl000000\n\n../victim\n") == 0);
    int rc = mer_test_run(out, sizeof out, "%s predict --run %s --feature audio=%s/s/audio --list %s --out %s",
                          mer_test_bin(), run, dir, list, pred);
    CHECK(rc == 1 && strstr(out, "list.txt: row 4: name '../victim' contains"));
    CHECK(!exists(pred));
    char run2[600];
    snprintf(run2, sizeof run2, "%s/run2", dir);
    rc = train(dir, lab, run2, "--pseudo-rounds 1 --unlabeled ");
    CHECK(rc != 0);
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "--pseudo-rounds 1 --unlabeled %s", list);
    rc = train(dir, lab, run2, cmd);
    CHECK(rc == 1 && strstr(out, "list.txt: row 4: name '../victim'"));
}

MER_TEST(safety_extract_and_faces_refuse_path_names) {
    const char *d = mer_test_tmpdir("safety_names_extract");
    char dir[512], o[600], list[600];
    snprintf(dir, sizeof dir, "%s", d);
    /* inputs whose file names are not usable as output names */
    char cmd[2400];
    snprintf(cmd, sizeof cmd, "cp " CLIP " '%s/ok.flac' && cp " CLIP " \"%s/$(printf 'c\\001x').flac\"", dir, dir);
    REQUIRE(system(cmd) == 0);
    snprintf(o, sizeof o, "%s/feats", dir);
    snprintf(list, sizeof list, "%s/list.txt", dir);
    char text[1200];
    snprintf(text, sizeof text, "%s/ok.flac\n%s/c\001x.flac\n", dir, dir);
    REQUIRE(write_str(list, text) == 0);
    int rc = mer_test_run(out, sizeof out, "%s extract acoustic --list %s --out %s", mer_test_bin(), list, o);
    CHECK(rc == 1 && strstr(out, "list.txt: row 2: name 'c\\x01x' contains a control character"));
    snprintf(text, sizeof text, "%s/feats/ok.npy", dir);
    CHECK(exists(text));
    /* faces --crops: the crop names come from the input's name */
    char img[600];
    snprintf(img, sizeof img, "%s/x\033[2J.png", dir);
    snprintf(cmd, sizeof cmd, "cp " FACE " '%s'", img);
    REQUIRE(system(cmd) == 0);
    rc = mer_test_run(out, sizeof out, "%s faces '%s' --crops %s/crops", mer_test_bin(), img, dir);
    CHECK(rc == 1 && strstr(out, "contains a control character") && !strchr(out, '\033'));
    snprintf(text, sizeof text, "%s/crops", dir);
    CHECK(!exists(text));
}

/* ---- 2. only directories mer made are removed -------------------------------------------- */

MER_TEST(safety_demo_removes_only_what_it_made) {
    const char *d = mer_test_tmpdir("safety_demo");
    char dir[512], cmd[4096], mdir[600], keep[700];
    snprintf(dir, sizeof dir, "%s", d);
    /* 3 speakers x 4 clips of the bundled EmoDB, two emotions each */
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/data/flac && (echo name,emotion,speaker; awk -F, 'NR>1 && ($2==\"happiness\"||$2==\"neutral\") && c[$3]++<4 {print $1\",\"$2\",\"$3}' data/emodb/labels.csv | head -12) > %s/data/labels.csv && "
             "for n in $(tail -n +2 %s/data/labels.csv | cut -d, -f1); do cp data/emodb/flac/$n.flac %s/data/flac/; done",
             dir, dir, dir, dir);
    REQUIRE(system(cmd) == 0);
    const char *demo = "%s demo --data %s/data --out %s/out --seeds 1 --epochs 3 --no-single-clip --threads 1";
    int rc = mer_test_run(out, sizeof out, demo, mer_test_bin(), dir, dir);
    REQUIRE(rc == 0);
    snprintf(mdir, sizeof mdir, "%s/out/model", dir);
    snprintf(keep, sizeof keep, "%s/.mer-made", mdir);
    CHECK(exists(keep));
    /* a rerun replaces the model mer made */
    rc = mer_test_run(out, sizeof out, demo, mer_test_bin(), dir, dir);
    CHECK(rc == 0);
    /* a user's file in it: refused, nothing removed */
    snprintf(keep, sizeof keep, "%s/notes.txt", mdir);
    REQUIRE(write_str(keep, "mine") == 0);
    rc = mer_test_run(out, sizeof out, demo, mer_test_bin(), dir, dir);
    CHECK(rc == 1 && strstr(out, "notes.txt, which mer did not make"));
    CHECK(exists(keep));
    snprintf(cmd, sizeof cmd, "%s/config.json", mdir);
    CHECK(exists(cmd));
    /* a model directory mer did not make (no marker), even one holding a run */
    snprintf(cmd, sizeof cmd, "rm %s/.mer-made %s", mdir, keep);
    REQUIRE(system(cmd) == 0);
    rc = mer_test_run(out, sizeof out, demo, mer_test_bin(), dir, dir);
    CHECK(rc == 1 && strstr(out, "mer did not make this directory"));
    snprintf(cmd, sizeof cmd, "%s/config.json", mdir);
    CHECK(exists(cmd));
    /* a speaker name that is a path: nothing outside --out is touched */
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/victim-seed0 && echo keep > %s/victim-seed0/config.json && "
             "sed -i 's/,03$/,..\\/..\\/..\\/victim/' %s/data/labels.csv",
             dir, dir, dir);
    REQUIRE(system(cmd) == 0);
    rc = mer_test_run(out, sizeof out, "%s demo --data %s/data --out %s/out2 --seeds 1 --epochs 3", mer_test_bin(), dir, dir);
    CHECK(rc == 1 && strstr(out, "labels.csv: row 2: name '../../../victim' contains"));
    snprintf(cmd, sizeof cmd, "%s/victim-seed0/config.json", dir);
    CHECK(exists(cmd));
}

/* ---- 3. an output is never an input ------------------------------------------------------ */

MER_TEST(safety_output_is_not_an_input) {
    const char *d = mer_test_tmpdir("safety_out_in");
    char dir[512], cmd[3000], lab[600], run[600];
    snprintf(dir, sizeof dir, "%s", d);
    REQUIRE(make_synth(dir) == 0);
    snprintf(lab, sizeof lab, "%s/s/labels.csv", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    REQUIRE(train(dir, lab, run, NULL) == 0);
    char before[8192];
    REQUIRE(mer_test_run(before, sizeof before, "md5sum %s", lab) == 0);
    /* predict --out the training labels, the list, the run's config */
    int rc = mer_test_run(out, sizeof out, "%s predict --run %s --feature audio=%s/s/audio --out %s",
                          mer_test_bin(), run, dir, lab);
    CHECK(rc == 1 && strstr(out, "the output is the input") && strstr(out, "labels.csv"));
    char list[600];
    snprintf(list, sizeof list, "%s/list.txt", dir);
    REQUIRE(write_str(list, "l000000\nl000001\n") == 0);
    rc = mer_test_run(out, sizeof out, "%s predict --run %s --feature audio=%s/s/audio --list %s --out %s",
                      mer_test_bin(), run, dir, list, list);
    CHECK(rc == 1 && strstr(out, "refusing to overwrite an input"));
    rc = mer_test_run(out, sizeof out, "%s predict --run %s --feature audio=%s/s/audio --out %s/config.json",
                      mer_test_bin(), run, dir, run);
    CHECK(rc == 1 && strstr(out, "the output is the input"));
    /* a feature file as --out (through a hard link: same inode, other name) */
    snprintf(cmd, sizeof cmd, "ln %s/s/audio/l000001.npy %s/link.csv", dir, dir);
    REQUIRE(system(cmd) == 0);
    rc = mer_test_run(out, sizeof out, "%s predict --run %s --feature audio=%s/s/audio --out %s/link.csv",
                      mer_test_bin(), run, dir, dir);
    CHECK(rc == 1 && strstr(out, "l000001.npy"));
    /* vote --out the list */
    rc = mer_test_run(out, sizeof out, "%s vote %s --feature audio=%s/s/audio --list %s --out %s",
                      mer_test_bin(), run, dir, list, list);
    CHECK(rc == 1 && strstr(out, "refusing to overwrite an input"));
    char after[8192];
    REQUIRE(mer_test_run(after, sizeof after, "md5sum %s", lab) == 0);
    CHECK(!strcmp(before, after));
    /* extract: --overwrite --out the input itself, and through a symlink */
    snprintf(cmd, sizeof cmd, "cp " CLIP " %s/a.wav && ln -s a.wav %s/b.wav", dir, dir);
    REQUIRE(system(cmd) == 0);
    REQUIRE(mer_test_run(before, sizeof before, "md5sum %s/a.wav", dir) == 0);
    rc = mer_test_run(out, sizeof out, "%s extract acoustic --overwrite --out %s/a.wav %s/a.wav", mer_test_bin(), dir, dir);
    CHECK(rc == 1 && strstr(out, "the output is the input"));
    rc = mer_test_run(out, sizeof out, "%s extract acoustic --overwrite --out %s/b.wav %s/a.wav", mer_test_bin(), dir, dir);
    CHECK(rc == 1 && strstr(out, "the output is the input"));
    REQUIRE(mer_test_run(after, sizeof after, "md5sum %s/a.wav", dir) == 0);
    CHECK(!strcmp(before, after));
}

/* ---- 5. wrong answers -------------------------------------------------------------------- */

MER_TEST(safety_eval_and_predict_refuse_duplicates) {
    const char *d = mer_test_tmpdir("safety_dups");
    char dir[512], lab[600], pred[600], cmd[2000];
    snprintf(dir, sizeof dir, "%s", d);
    snprintf(lab, sizeof lab, "%s/labels.csv", dir);
    snprintf(pred, sizeof pred, "%s/pred.csv", dir);
    REQUIRE(write_str(lab, "name,emotion\na,x\nb,y\nc,x\n") == 0);
    REQUIRE(write_str(pred, "name,pred\na,x\nb,x\na,x\n") == 0);
    int rc = mer_test_run(out, sizeof out, "%s eval --labels %s --pred %s", mer_test_bin(), lab, pred);
    CHECK(rc == 1 && strstr(out, "pred.csv: clip 'a' is predicted twice (rows 2 and 4)"));
    REQUIRE(write_str(pred, "name,pred\na,x\nb,x\n") == 0);
    REQUIRE(write_str(lab, "name,emotion\na,x\nb,y\nb,x\n") == 0);
    rc = mer_test_run(out, sizeof out, "%s eval --labels %s --pred %s", mer_test_bin(), lab, pred);
    CHECK(rc == 1 && strstr(out, "labels.csv: clip 'b' appears twice (rows 3 and 4)"));
    REQUIRE(write_str(lab, "name,emotion\na,x\nb,y\n") == 0);
    rc = mer_test_run(out, sizeof out, "%s eval --labels %s --pred %s", mer_test_bin(), lab, pred);
    CHECK(rc == 0);
    /* predict --input: two files with one clip name */
    snprintf(cmd, sizeof cmd, "mkdir -p %s/a %s/b", dir, dir);
    REQUIRE(system(cmd) == 0);
    rc = mer_test_run(out, sizeof out, "%s predict --run models/emodb-acoustic --input %s/a/x.flac %s/b/x.flac --out %s/p.csv",
                      mer_test_bin(), dir, dir, dir);
    CHECK(rc == 1 && strstr(out, "have the same clip name 'x'"));
    rc = mer_test_run(out, sizeof out, "%s predict --run models/emodb-acoustic --input %s/a/x.flac %s/b/x.wav --out %s/p.csv",
                      mer_test_bin(), dir, dir, dir);
    CHECK(rc == 1 && strstr(out, "have the same clip name 'x'"));
    snprintf(cmd, sizeof cmd, "%s/p.csv", dir);
    CHECK(!exists(cmd));
}

/* ---- 6. stale inputs --------------------------------------------------------------------- */

MER_TEST(safety_resume_refuses_changed_features) {
    const char *d = mer_test_tmpdir("safety_resume");
    char dir[512], lab[600], run[600], cmd[2000];
    snprintf(dir, sizeof dir, "%s", d);
    REQUIRE(make_synth(dir) == 0);
    snprintf(lab, sizeof lab, "%s/s/labels.csv", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    REQUIRE(train(dir, lab, run, NULL) == 0);
    /* the same data resumes (a finished run is only re-read) */
    CHECK(train(dir, lab, run, "--resume") == 0);
    /* same shapes, other values: one feature file replaced by another clip's */
    snprintf(cmd, sizeof cmd, "cp %s/s/audio/l000002.npy %s/s/audio/l000001.npy", dir, dir);
    REQUIRE(system(cmd) == 0);
    int rc = train(dir, lab, run, "--resume");
    CHECK(rc == 1 && strstr(out, "the features or labels changed since the run started"));
    /* a changed label */
    REQUIRE(make_synth(dir) == 0);
    CHECK(train(dir, lab, run, "--resume") == 0);
    snprintf(cmd, sizeof cmd, "sed -i '2s/,a$/,X/;2s/,b$/,a/;2s/,X$/,b/' %s", lab);
    REQUIRE(system(cmd) == 0);
    rc = train(dir, lab, run, "--resume");
    CHECK(rc == 1 && strstr(out, "data digest"));
}

/* A trained run on the synthetic set in a fresh temporary directory: dir, dir/s/labels.csv, dir/run. */
static int trained_run(const char *tmp, char dir[512], char lab[600], char run[600]) {
    snprintf(dir, 512, "%s", mer_test_tmpdir(tmp));
    snprintf(lab, 600, "%s/s/labels.csv", dir);
    snprintf(run, 600, "%s/run", dir);
    return make_synth(dir) == 0 && train(dir, lab, run, NULL) == 0 ? 0 : -1;
}

MER_TEST(safety_checkpoint_checksum) {
    char dir[512], lab[600], run[600], w[700];
    REQUIRE(trained_run("safety_checksum", dir, lab, run) == 0);
    const char *pred = "%s predict --run %s --feature audio=%s/s/audio --out %s/p.csv";
    REQUIRE(mer_test_run(out, sizeof out, pred, mer_test_bin(), run, dir, dir) == 0);
    /* flip one bit in the last weight of fold 1 (the data section ends the file) */
    snprintf(w, sizeof w, "%s/fold-1.safetensors", run);
    FILE *f = fopen(w, "r+b");
    REQUIRE(f);
    fseek(f, -2, SEEK_END);
    int c = fgetc(f);
    fseek(f, -2, SEEK_END);
    fputc(c ^ 0x01, f);
    fclose(f);
    int rc = mer_test_run(out, sizeof out, pred, mer_test_bin(), run, dir, dir);
    CHECK(rc == 1 && strstr(out, "fold-1.safetensors: checksum mismatch"));
    /* and another bit in fold 0's first weight byte after the header */
    snprintf(w, sizeof w, "%s/fold-0.safetensors", run);
    f = fopen(w, "r+b");
    REQUIRE(f);
    unsigned char len8[8];
    REQUIRE(fread(len8, 1, 8, f) == 8);
    long hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl * 256 + len8[i];
    fseek(f, 8 + hl, SEEK_SET);
    c = fgetc(f);
    fseek(f, 8 + hl, SEEK_SET);
    fputc(c ^ 0x10, f);
    fclose(f);
    rc = mer_test_run(out, sizeof out, "%s vote %s --feature audio=%s/s/audio --out %s/v.csv", mer_test_bin(), run, dir, dir);
    CHECK(rc == 1 && strstr(out, "checksum mismatch"));
}

/* Rename the metadata key "checksum" in a safetensors header (same length, so the file stays
 * valid): what a checkpoint written before mer recorded checksums looks like. */
static int strip_checksum(const char *path) {
    FILE *f = fopen(path, "r+b");
    if (!f) return -1;
    unsigned char len8[8];
    if (fread(len8, 1, 8, f) != 8) {
        fclose(f);
        return -1;
    }
    long hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl * 256 + len8[i];
    char *h = malloc((size_t)hl + 1);
    int rc = -1;
    if (h && fread(h, 1, (size_t)hl, f) == (size_t)hl) {
        h[hl] = '\0';
        char *k = strstr(h, "\"checksum\"");
        if (k) {
            k[8] = 'x';
            fseek(f, 8, SEEK_SET);
            rc = fwrite(h, 1, (size_t)hl, f) == (size_t)hl ? 0 : -1;
        }
    }
    free(h);
    fclose(f);
    return rc;
}

/* Old checkpoints (no checksum) still load: a warning naming each file, the same predictions. */
MER_TEST(safety_old_checkpoint_without_checksum_warns) {
    char dir[512], lab[600], run[600], w[700], ref[64 * 1024];
    REQUIRE(trained_run("safety_oldckpt", dir, lab, run) == 0);
    const char *pred = "%s predict --run %s --feature audio=%s/s/audio --out %s/p.csv && cat %s/p.csv";
    REQUIRE(mer_test_run(out, sizeof out, pred, mer_test_bin(), run, dir, dir, dir) == 0);
    CHECK(!strstr(out, "no checksum"));
    snprintf(ref, sizeof ref, "%s", out);
    for (int fold = 0; fold < 2; fold++) { /* one old fold, then both */
        snprintf(w, sizeof w, "%s/fold-%d.safetensors", run, fold);
        REQUIRE(strip_checksum(w) == 0);
        int rc = mer_test_run(out, sizeof out, pred, mer_test_bin(), run, dir, dir, dir);
        CHECK(rc == 0);
        CHECK(strstr(out, "fold-0.safetensors: no checksum (written before mer recorded one): not verified"));
        CHECK((strstr(out, "fold-1.safetensors: no checksum") != NULL) == (fold == 1));
        const char *csv = strstr(out, "name,");
        CHECK(csv && strstr(ref, csv)); /* the same predictions, byte for byte */
    }
    /* vote and eval-free paths through mer_run_open warn the same way */
    int rc = mer_test_run(out, sizeof out, "%s vote %s --feature audio=%s/s/audio --out %s/v.csv", mer_test_bin(), run,
                          dir, dir);
    CHECK(rc == 0 && strstr(out, "fold-1.safetensors: no checksum"));
}

/* An output directory records its recipe; a rerun with another one is refused or redone. */
static int npy_ndim(const char *path) {
    float *x = NULL;
    int32_t nd = 0;
    int64_t sh[MER_MAX_DIMS];
    if (mer_npy_read(path, &x, &nd, sh) != MER_OK) return -1;
    free(x);
    return nd;
}

MER_TEST(safety_extract_recipe_recorded) {
    const char *d = mer_test_tmpdir("safety_recipe");
    char dir[512], f[700], r[700], cmd[2400];
    snprintf(dir, sizeof dir, "%s", d);
    snprintf(f, sizeof f, "%s/feats/03a01Fa.npy", dir);
    snprintf(r, sizeof r, "%s/feats/recipe.json", dir);
    const char *ac = "%s extract acoustic %s --out %s/feats " CLIP " data/emodb/flac/08a02Tb.flac";
    CHECK(mer_test_run(out, sizeof out, ac, mer_test_bin(), "--pool none", dir) == 0);
    CHECK(exists(r) && npy_ndim(f) == 2);
    /* --pool mean over (T, D) files: refused, naming the difference; nothing changed */
    CHECK(mer_test_run(out, sizeof out, ac, mer_test_bin(), "--pool mean", dir) == 1);
    CHECK(strstr(out, "feats: its features were made with another recipe (pool: was \"none\", now \"mean\"") &&
          strstr(out, "--overwrite"));
    CHECK(npy_ndim(f) == 2);
    CHECK(mer_test_run(out, sizeof out, ac, mer_test_bin(), "--pool none --sample-rate 8000", dir) == 1);
    CHECK(strstr(out, "params.sample_rate: was 16000, now 8000"));
    /* the same recipe resumes (existing files skipped) */
    CHECK(mer_test_run(out, sizeof out, ac, mer_test_bin(), "--pool none", dir) == 0);
    CHECK(strstr(out, "2 outputs already existed"));
    /* --overwrite redoes every file and records the new recipe */
    CHECK(mer_test_run(out, sizeof out, ac, mer_test_bin(), "--pool mean --overwrite", dir) == 0);
    CHECK(npy_ndim(f) == 1);
    CHECK(mer_test_run(out, sizeof out, ac, mer_test_bin(), "--pool mean", dir) == 0);
    /* a recipe.json that is not JSON is another recipe */
    REQUIRE(write_str(r, "{\"extractor\": \"acou") == 0);
    CHECK(mer_test_run(out, sizeof out, ac, mer_test_bin(), "--pool mean", dir) == 1);
    CHECK(strstr(out, "cannot be read as JSON"));
    /* features from before recipes were recorded: a warning, and no recipe claimed for them */
    REQUIRE(unlink(r) == 0);
    CHECK(mer_test_run(out, sizeof out, ac, mer_test_bin(), "--pool none", dir) == 0);
    CHECK(strstr(out, "2 feature files and no recipe.json") && !exists(r));
    /* extract visual: the same for --pool and --frames */
    const char *vis = "%s extract visual --model tests/fixtures/clip/tiny_clip %s --out %s/vis "
                      "tests/fixtures/clip/clip.mp4 tests/fixtures/image/astronaut.png";
    CHECK(mer_test_run(out, sizeof out, vis, mer_test_bin(), "--pool none --frames 3", dir) == 0);
    CHECK(mer_test_run(out, sizeof out, vis, mer_test_bin(), "--pool mean --frames 3", dir) == 1);
    CHECK(strstr(out, "vis: its features were made with another recipe (visual.pool_mean: was 0, now 1"));
    CHECK(mer_test_run(out, sizeof out, vis, mer_test_bin(), "--pool none --frames 4", dir) == 1);
    CHECK(strstr(out, "visual.frames: was 3, now 4"));
    snprintf(cmd, sizeof cmd, "%s/vis/clip.npy", dir);
    CHECK(npy_ndim(cmd) == 2);
    CHECK(mer_test_run(out, sizeof out, vis, mer_test_bin(), "--pool none --frames 3", dir) == 0);
}

/* ---- 7. labels and seeds ----------------------------------------------------------------- */

MER_TEST(safety_label_spaces_and_case_warned) {
    const char *d = mer_test_tmpdir("safety_labels");
    char dir[512], lab[600], run[600], cmd[2000];
    snprintf(dir, sizeof dir, "%s", d);
    REQUIRE(make_synth(dir) == 0);
    snprintf(lab, sizeof lab, "%s/s/labels.csv", dir);
    snprintf(cmd, sizeof cmd, "sed -i '2s/,a$/,\" a\"/;3s/,b$/,B/' %s", lab);
    REQUIRE(system(cmd) == 0);
    snprintf(run, sizeof run, "%s/run", dir);
    int rc = train(dir, lab, run, "--folds 1");
    CHECK(strstr(out, "label ' a' (1 clip) has spaces around it"));
    CHECK(strstr(out, "labels 'B' (1 clip) and 'b'") && strstr(out, "differ only in case or spaces"));
    CHECK(strstr(out, "--classes"));
    (void)rc;
    /* --classes turns the stray labels into an error naming the row */
    snprintf(run, sizeof run, "%s/run2", dir);
    rc = train(dir, lab, run, "--classes a,b");
    CHECK(rc == 1 && strstr(out, "label ' a' is not one of the classes"));
}

MER_TEST(safety_seed_range) {
    const char *d = mer_test_tmpdir("safety_seed");
    char dir[512], lab[600], run[600];
    snprintf(dir, sizeof dir, "%s", d);
    REQUIRE(make_synth(dir) == 0);
    snprintf(lab, sizeof lab, "%s/s/labels.csv", dir);
    const char *bad[] = {"18446744073709551616", "99999999999999999999999", "-1", "1e3", "+5", ""};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        char extra[128];
        snprintf(extra, sizeof extra, "--seed '%s'", bad[k]);
        snprintf(run, sizeof run, "%s/run%zu", dir, k);
        CHECK(train(dir, lab, run, extra) == 2 && strstr(out, "--seed wants an integer in [0, 2^64 - 1]"));
        CHECK(!exists(run));
    }
    snprintf(run, sizeof run, "%s/runmax", dir);
    CHECK(train(dir, lab, run, "--seed 18446744073709551615") == 0);
}

/* ---- 8. messages ------------------------------------------------------------------------- */

MER_TEST(safety_messages) {
    const char *d = mer_test_tmpdir("safety_msgs");
    char dir[512], lab[600], run[600], cmd[3000];
    snprintf(dir, sizeof dir, "%s", d);
    REQUIRE(make_synth(dir) == 0);
    snprintf(lab, sizeof lab, "%s/s/labels.csv", dir);
    /* a directory where a file is expected */
    snprintf(run, sizeof run, "%s/run", dir);
    int rc = train(dir, dir, run, NULL);
    CHECK(rc == 1 && strstr(out, "is a directory") && !strstr(out, "allocate"));
    rc = mer_test_run(out, sizeof out, "%s eval --labels %s --pred %s", mer_test_bin(), dir, lab);
    CHECK(rc == 1 && strstr(out, "is a directory"));
    /* labels from a pipe and from stdin */
    rc = mer_test_run(out, sizeof out,
                      "cat %s | %s train --labels /dev/stdin --feature audio=%s/s/audio --model attention --folds 2 --epochs 1 --out %s/r1",
                      lab, mer_test_bin(), dir, dir);
    CHECK(rc == 0);
    rc = mer_test_run(out, sizeof out,
                      "%s train --labels - --feature audio=%s/s/audio --model attention --folds 2 --epochs 1 --out %s/r2 < %s",
                      mer_test_bin(), dir, dir, lab);
    CHECK(rc == 0);
    /* a list with a BOM and CRLF reads the same in extract and predict (the one list reader) */
    snprintf(cmd, sizeof cmd, "printf '\\357\\273\\277l000000\\r\\nl000001\\r\\n' > %s/bom.txt", dir);
    REQUIRE(system(cmd) == 0);
    rc = mer_test_run(out, sizeof out, "%s predict --run %s/r1 --feature audio=%s/s/audio --list %s/bom.txt --out %s/p.csv",
                      mer_test_bin(), dir, dir, dir, dir);
    CHECK(rc == 0);
    snprintf(cmd, sizeof cmd, "%s/p.csv", dir);
    FILE *f = fopen(cmd, "rb");
    char line[256] = "";
    if (f) {
        CHECK(fgets(line, sizeof line, f) && fgets(line, sizeof line, f));
        fclose(f);
    }
    CHECK(!strncmp(line, "l000000,", 8));
    snprintf(cmd, sizeof cmd, "cp " CLIP " %s/w1.wav && printf '\\357\\273\\277%s/w1.wav\\r\\n' > %s/elist.txt",
             dir, dir, dir);
    REQUIRE(system(cmd) == 0);
    rc = mer_test_run(out, sizeof out, "%s extract acoustic --list %s/elist.txt --out %s/ef", mer_test_bin(), dir, dir);
    CHECK(rc == 0);
    snprintf(cmd, sizeof cmd, "%s/ef/w1.npy", dir);
    CHECK(exists(cmd));
    /* --crops FILE names FILE, not a temporary inside it */
    snprintf(cmd, sizeof cmd, "%s/crops-file", dir);
    REQUIRE(write_str(cmd, "x") == 0);
    rc = mer_test_run(out, sizeof out, "%s faces " FACE " --crops %s", mer_test_bin(), cmd);
    CHECK(rc == 1 && strstr(out, "crops-file") && strstr(out, "not a directory") && !strstr(out, ".tmp."));
    /* no progress control characters on a stderr that is not a terminal */
    rc = mer_test_run(out, sizeof out, "%s extract acoustic --overwrite --list %s/elist.txt --out %s/ef", mer_test_bin(), dir, dir);
    CHECK(rc == 0 && !strchr(out, '\r') && !strchr(out, '\033'));
}

MER_TEST(safety_truncated_resume_state) {
    const char *d = mer_test_tmpdir("safety_state");
    char dir[512], lab[600], run[600], st[700];
    snprintf(dir, sizeof dir, "%s", d);
    REQUIRE(make_synth(dir) == 0);
    snprintf(lab, sizeof lab, "%s/s/labels.csv", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    REQUIRE(train(dir, lab, run, NULL) == 0);
    /* an unfinished fold 1 with a cut-short state file */
    char cmd[2000];
    snprintf(cmd, sizeof cmd, "rm %s/fold-1.json %s/metrics.json", run, run);
    REQUIRE(system(cmd) == 0);
    snprintf(st, sizeof st, "%s/state-1.safetensors", run);
    REQUIRE(write_str(st, "\x40\x00\x00\x00\x00\x00\x00\x00{\"params\":") == 0);
    int rc = train(dir, lab, run, "--resume");
    CHECK(rc == 1 && strstr(out, "state-1.safetensors") && strstr(out, "delete") &&
          strstr(out, "to restart fold 1"));
    REQUIRE(unlink(st) == 0);
    CHECK(train(dir, lab, run, "--resume") == 0);
}

/* ---- 5. a degenerate EM prior falls back to the training prior --------------------------- */

MER_TEST(safety_prior_em_collapse) {
    /* every clip 0.6 / 0.4: the likelihood grows without bound toward all-class-0 */
    enum { N = 200, C = 3 };
    static float probs[N * C];
    for (int i = 0; i < N; i++) {
        probs[i * C + 0] = 0.5f;
        probs[i * C + 1] = 0.3f;
        probs[i * C + 2] = 0.2f;
    }
    const double train[C] = {2, 1, 1};
    double est[C];
    REQUIRE_OK(mer_prior_estimate_em(probs, N, C, train, NULL, est, NULL));
    CHECK_NEAR(est[0], 0.5, 1e-12);
    CHECK_NEAR(est[1], 0.25, 1e-12);
    CHECK_NEAR(est[2], 0.25, 1e-12);
    /* the check can be turned off: then EM's own answer, one class */
    mer_prior_em_params p = mer_prior_em_default_params();
    p.collapse = 1;
    REQUIRE_OK(mer_prior_estimate_em(probs, N, C, train, &p, est, NULL));
    CHECK(est[1] > 0.99); /* the vertex of the largest p / pi_train: 0.3 / 0.25 */
    /* a healthy mixture is estimated, not replaced: half the clips sure of class 1 */
    for (int i = 0; i < N; i++) {
        int k = i % 2 ? 1 : 0;
        for (int j = 0; j < C; j++) probs[i * C + j] = j == k ? 0.9f : 0.05f;
    }
    REQUIRE_OK(mer_prior_estimate_em(probs, N, C, train, NULL, est, NULL));
    CHECK(est[0] > 0.3 && est[1] > 0.3 && est[0] < 0.99);
}

/* ---- 4. --frames is clamped to the frames the clip has ---------------------------------------- */

MER_TEST(safety_frames_clamped_to_the_clip) {
    const char *d = mer_test_tmpdir("safety_frames");
    char o[600];
    /* tests/fixtures/clip/clip.mp4 has 10 frames: any --frames above gives each once */
    const char *asks[] = {"10", "11", "1000000"};
    for (int k = 0; k < 3; k++) {
        snprintf(o, sizeof o, "%s/v%d.npy", d, k);
        int rc = mer_test_run(out, sizeof out,
                              "%s extract visual --model tests/fixtures/clip/tiny_clip --frames %s --pool none "
                              "--out %s tests/fixtures/clip/clip.mp4", mer_test_bin(), asks[k], o);
        CHECK(rc == 0);
        float *x = NULL;
        int32_t nd = 0;
        int64_t sh[MER_MAX_DIMS] = {0};
        CHECK_OK(mer_npy_read(o, &x, &nd, sh));
        CHECK(nd == 2 && sh[0] == 10);
        free(x);
    }
    /* fewer than the clip has: as asked */
    snprintf(o, sizeof o, "%s/v3.npy", d);
    CHECK(mer_test_run(out, sizeof out, "%s extract visual --model tests/fixtures/clip/tiny_clip --frames 3 --pool none "
                       "--out %s tests/fixtures/clip/clip.mp4", mer_test_bin(), o) == 0);
    float *x = NULL;
    int32_t nd = 0;
    int64_t sh[MER_MAX_DIMS] = {0};
    CHECK_OK(mer_npy_read(o, &x, &nd, sh));
    CHECK(nd == 2 && sh[0] == 3);
    free(x);
}

/* extract audio chunks inputs longer than 10 s by default (MERTools), --chunk-seconds 0 is one
 * pass of full attention; inputs of at most 10 s are one pass either way. */
static int same_file(const char *a, const char *b) {
    char cmd[2200];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

MER_TEST(safety_extract_audio_chunks_long_inputs) {
    const char *d = mer_test_tmpdir("safety_chunk");
    const char *H = "tests/fixtures/hubert/";
    const char *runs[][2] = {{"a12", ""}, {"a12", "--chunk-seconds 10"}, {"a12", "--chunk-seconds 0"},
                             {"a2", ""}, {"a2", "--chunk-seconds 0"}};
    char o[5][600];
    for (int k = 0; k < 5; k++) {
        snprintf(o[k], sizeof o[k], "%s/%s_%d.npy", d, runs[k][0], k);
        int rc = mer_test_run(out, sizeof out, "%s extract audio --model %sbase --layers 1-2 --combine sum %s --out %s %s%s.wav",
                              mer_test_bin(), H, runs[k][1], o[k], H, runs[k][0]);
        CHECK(rc == 0);
    }
    CHECK(same_file(o[0], o[1]));  /* 12 s: the default is 10 s chunks */
    CHECK(!same_file(o[0], o[2])); /* and not one pass */
    CHECK(same_file(o[3], o[4]));  /* 2 s: one pass either way */
    int64_t T[5];
    for (int k = 0; k < 5; k++) {
        float *x = NULL;
        int32_t nd = 0;
        int64_t sh[MER_MAX_DIMS] = {0};
        CHECK_OK(mer_npy_read(o[k], &x, &nd, sh));
        T[k] = nd == 2 ? sh[0] : -1;
        free(x);
    }
    /* two zero-padded 10 s chunks have more frames than the 12 s signal in one pass */
    CHECK(T[0] == T[1] && T[0] > T[2] && T[2] > 0);
    CHECK(mer_test_run(out, sizeof out, "%s extract audio --model %sbase --chunk-seconds -1 --out %s/x.npy %sa2.wav",
                       mer_test_bin(), H, d, H) == 2);
}

/* ---- 8. "-" is stdin; pipes and FIFOs are read as streams ------------------------------------ */

MER_TEST(safety_stdin_pipes_and_fifos) {
    const char *d = mer_test_tmpdir("safety_stdin");
    char dir[512], a[700], b[700], fifo[700];
    snprintf(dir, sizeof dir, "%s", d);
    snprintf(a, sizeof a, "%s/file.npy", dir);
    snprintf(b, sizeof b, "%s/stdin.npy", dir);
    /* extract acoustic, one input: "-", /dev/stdin from a pipe, a FIFO give the file's bytes */
    CHECK(mer_test_run(out, sizeof out, "%s extract acoustic --out %s " CLIP, mer_test_bin(), a) == 0);
    CHECK(mer_test_run(out, sizeof out, "cat " CLIP " | %s extract acoustic --out %s -", mer_test_bin(), b) == 0);
    CHECK(same_file(a, b));
    CHECK(mer_test_run(out, sizeof out, "cat " CLIP " | %s extract acoustic --overwrite --out %s /dev/stdin",
                       mer_test_bin(), b) == 0);
    CHECK(same_file(a, b));
    snprintf(fifo, sizeof fifo, "%s/fifo.flac", dir);
    REQUIRE(mkfifo(fifo, 0600) == 0);
    CHECK(mer_test_run(out, sizeof out, "(cat " CLIP " > %s &) ; %s extract acoustic --overwrite --out %s %s", fifo,
                       mer_test_bin(), b, fifo) == 0);
    CHECK(same_file(a, b));
    /* analyze opens its input several times (probe, audio): the stream is kept in memory */
    CHECK(mer_test_run(out, sizeof out, "%s analyze " CLIP " --json 2>/dev/null", mer_test_bin()) == 0);
    char *want = strstr(out, "\"modalities\"");
    REQUIRE(want);
    want = strdup(want);
    CHECK(mer_test_run(out, sizeof out, "%s analyze - --json < " CLIP " 2>/dev/null", mer_test_bin()) == 0);
    CHECK(strstr(out, "\"file\":\t\"-\"") && strstr(out, want));
    CHECK(mer_test_run(out, sizeof out, "(cat " CLIP " > %s &) ; %s analyze %s --json 2>/dev/null", fifo,
                       mer_test_bin(), fifo) == 0);
    CHECK(strstr(out, want));
    free(want);
    /* inspect */
    CHECK(mer_test_run(out, sizeof out, "%s inspect - < " CLIP, mer_test_bin()) == 0 && strstr(out, "-: flac"));
    CHECK(mer_test_run(out, sizeof out, "cat " CLIP " | %s inspect /dev/stdin", mer_test_bin()) == 0 &&
          strstr(out, "audio flac"));
    /* refused clearly: nothing on stdin, not media */
    CHECK(mer_test_run(out, sizeof out, "%s analyze - < /dev/null", mer_test_bin()) == 1 && strstr(out, "-: empty stream"));
    CHECK(mer_test_run(out, sizeof out, "echo hello | %s inspect -", mer_test_bin()) == 1 &&
          strstr(out, "-: not a media file"));
    CHECK(mer_test_run(out, sizeof out, "echo hello | %s extract acoustic --out %s/x.npy -", mer_test_bin(), dir) == 1 &&
          strstr(out, "-: not a media file"));
    snprintf(b, sizeof b, "%s/x.npy", dir);
    CHECK(!exists(b));
}

/* ---- 5. digital silence is "no speech", not a class --------------------------------------- */

MER_TEST(safety_silence_is_not_speech) {
    /* the one test of silence: all zeros, below -120 dBFS, empty; a click or NaN is not silence */
    float x[1600] = {0}, peak = -1;
    CHECK(mer_audio_is_silent(x, 1600, &peak) && peak == 0);
    CHECK(mer_audio_is_silent(x, 0, NULL));
    for (int i = 0; i < 1600; i++) x[i] = (i % 2 ? -1 : 1) * 9e-7f;
    CHECK(mer_audio_is_silent(x, 1600, &peak) && peak == 9e-7f);
    x[800] = 1e-3f;
    CHECK(!mer_audio_is_silent(x, 1600, &peak) && peak == 1e-3f);
    x[800] = NAN;
    CHECK(!mer_audio_is_silent(x, 1600, NULL));

    const char *d = mer_test_tmpdir("safety_silence");
    char dir[512], cmd[4096];
    snprintf(dir, sizeof dir, "%s", d);
    /* zeros, -130 dBFS noise, and speech followed by 4 s of zeros */
    snprintf(cmd, sizeof cmd,
             "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i anullsrc=r=16000:cl=mono -t 3 %s/zero.flac && "
             "ffmpeg -nostdin -hide_banner -loglevel error -y -f lavfi -i 'anoisesrc=r=16000:a=0.0000003:d=3' "
             "-c:a pcm_f32le %s/faint.wav && "
             "ffmpeg -nostdin -hide_banner -loglevel error -y -i " CLIP " -af apad=pad_dur=4 %s/tail.flac",
             dir, dir, dir);
    REQUIRE(system(cmd) == 0);
    const char *silent[] = {"zero.flac", "faint.wav"};
    for (int k = 0; k < 2; k++) {
        /* analyze (the bundled speech model): the audio is missing with a reason, nothing fused */
        int rc = mer_test_run(out, sizeof out, "%s analyze %s/%s --json 2>/dev/null", mer_test_bin(), dir, silent[k]);
        CHECK(rc == 0);
        mer_json *j = NULL;
        REQUIRE_OK(mer_json_parse(&j, out, strlen(out), "analyze"));
        int b = 1;
        const char *note = NULL;
        CHECK_OK(mer_json_get_bool(j, "modalities.audio.present", &b));
        CHECK(!b);
        CHECK_OK(mer_json_get_string(j, "modalities.audio.note", &note));
        CHECK(note && strstr(note, "no speech: digital silence"));
        CHECK(!mer_json_has(j, "fused.probs.sad"));
        mer_json_free(j);
        rc = mer_test_run(out, sizeof out, "%s analyze %s/%s", mer_test_bin(), dir, silent[k]);
        CHECK(rc == 0 && strstr(out, "missing: no speech: digital silence") && !strstr(out, "verdict: sad"));
        /* predict --input refuses the clip, as extract audio does, and writes nothing */
        rc = mer_test_run(out, sizeof out, "%s predict --run models/emodb-acoustic --input " CLIP " %s/%s --out %s/p%d.csv",
                          mer_test_bin(), dir, silent[k], dir, k);
        CHECK(rc == 1 && strstr(out, silent[k]) && strstr(out, "digital silence") && strstr(out, "no speech"));
        snprintf(cmd, sizeof cmd, "%s/p%d.csv", dir, k);
        CHECK(!exists(cmd));
    }
    /* speech then silence: the clip has speech; the timeline's silent seconds have no audio */
    int rc = mer_test_run(out, sizeof out, "%s analyze %s/tail.flac --json --timeline 2>/dev/null", mer_test_bin(), dir);
    CHECK(rc == 0);
    mer_json *j = NULL;
    REQUIRE_OK(mer_json_parse(&j, out, strlen(out), "analyze"));
    int b = 0;
    CHECK_OK(mer_json_get_bool(j, "modalities.audio.present", &b));
    CHECK(b);
    CHECK(mer_json_has(j, "timeline.0.audio"));
    int silent_rows = 0, speech_rows = 0;
    for (int r = 0; r < 6; r++) { /* 2.0 s of speech, then 4 s of zeros */
        char key[64];
        snprintf(key, sizeof key, "timeline.%d.t0", r);
        CHECK(mer_json_has(j, key));
        snprintf(key, sizeof key, "timeline.%d.audio.neutral", r);
        if (mer_json_has(j, key)) speech_rows++;
        else if (r >= 3) silent_rows++;
    }
    CHECK(speech_rows == 3 && silent_rows == 3);
    mer_json_free(j);
}

/* ---- 1. random names through every command that turns names into paths ------------------- */

/* A random name from dangerous pieces (separators, "..", control characters, unicode, shell
 * and format characters) and plain ones. Never contains a NUL (the C string ends there; NUL in
 * files is refused by the CSV and list readers). */
static void random_name(char *buf, size_t cap, uint64_t *st) {
    static const char *pieces[] = {"../", "..", "/", "\\", ".", "a", "clip", "\x01", "\t", "\x1b[2J",
                                   "\xc2\x85", "\xe5\x90\x8d", "caf\xc3\xa9", " ", "-rf", "$(x)",
                                   "%s%n", "*", "~", "..\\", "/etc/passwd", "\x7f", "'", ";"};
    size_t k = 0;
    *st = *st * 6364136223846793005ULL + 1442695040888963407ULL;
    int parts = 1 + (int)((*st >> 33) % 4);
    buf[0] = '\0';
    for (int i = 0; i < parts; i++) {
        *st = *st * 6364136223846793005ULL + 1442695040888963407ULL;
        const char *p = pieces[(*st >> 33) % (sizeof pieces / sizeof *pieces)];
        size_t l = strlen(p);
        if (k + l + 1 >= cap) break;
        memcpy(buf + k, p, l + 1);
        k += l;
    }
}

/* A CSV field: always quoted, quotes doubled. */
static void csv_field(char *dst, size_t cap, const char *s) {
    size_t k = 0;
    dst[k++] = '"';
    for (; *s && k + 3 < cap; s++) {
        if (*s == '"') dst[k++] = '"';
        dst[k++] = *s;
    }
    dst[k++] = '"';
    dst[k] = '\0';
}

MER_TEST(safety_fuzz_names_stay_inside_out) {
    const char *d = mer_test_tmpdir("safety_fuzz");
    char root[512], w[600], o[700], cmd[8192];
    snprintf(root, sizeof root, "%s", d);
    snprintf(w, sizeof w, "%s/work", root);
    snprintf(o, sizeof o, "%s/work/out", root);
    /* victims around the output at every depth a "../" can reach */
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/victim %s/work/victim %s/work/out && echo v > %s/victim/keep && echo v > %s/work/victim/keep && "
             "echo v > %s/keep.npy && echo v > %s/work/keep.npy && "
             "%s synth --out %s/work/s --n 24 --classes a,b --modality audio=3:2 >/dev/null && "
             "mkdir -p %s/work/out/data/flac && cp data/emodb/flac/03a01Fa.flac %s/work/out/data/flac/ok.flac && "
             "for k in 1 2 3; do cp data/emodb/flac/08a02Tb.flac %s/work/out/data/flac/ok$k.flac; done && "
             "%s train --labels %s/work/s/labels.csv --feature audio=%s/work/s/audio --model attention --folds 2 --epochs 1 --out %s/work/run >/dev/null 2>&1",
             root, root, root, root, root, root, root, mer_test_bin(), root, root, root, root, mer_test_bin(), root,
             root, root);
    REQUIRE(system(cmd) == 0);
    char *before = snapshot(root, o);
    REQUIRE(before);
    uint64_t st = 0x5afe;
    int rounds = getenv("MER_SANITIZE") ? 2 : 4; /* more: MER_FUZZ_ROUNDS */
    if (getenv("MER_FUZZ_ROUNDS")) rounds = atoi(getenv("MER_FUZZ_ROUNDS"));
    for (int r = 0; r < rounds; r++) {
        char name[160], q[400], lab[800], list[800];
        random_name(name, sizeof name, &st);
        csv_field(q, sizeof q, name);
        /* train and the pseudo-label rounds: the name in the labels CSV and in --unlabeled */
        snprintf(lab, sizeof lab, "%s/labels.csv", o);
        snprintf(cmd, sizeof cmd, "name,emotion\nl000000,a\nl000001,b\n%s,a\nl000003,b\nl000004,a\nl000005,b\n", q);
        REQUIRE(write_str(lab, cmd) == 0);
        snprintf(list, sizeof list, "%s/list.txt", o);
        char lt[400];
        snprintf(lt, sizeof lt, "l000006\n%s\n", name);
        REQUIRE(mer_test_write(list, lt, strlen(lt)) == 0);
        mer_test_run(out, sizeof out,
                     "%s train --labels %s --feature audio=%s/s/audio --model attention --folds 2 --epochs 1 --out %s/run%d",
                     mer_test_bin(), lab, w, o, r);
        mer_test_run(out, sizeof out,
                     "%s train --labels %s/s/labels.csv --feature audio=%s/s/audio --model attention --folds 2 --epochs 1 "
                     "--unlabeled %s --pseudo-rounds 1 --out %s/pl%d",
                     mer_test_bin(), w, w, list, o, r);
        /* predict and vote with the name in --list */
        mer_test_run(out, sizeof out, "%s predict --run %s/run --feature audio=%s/s/audio --list %s --out %s/p%d.csv",
                     mer_test_bin(), w, w, list, o, r);
        mer_test_run(out, sizeof out, "%s vote %s/run --feature audio=%s/s/audio --list %s --out %s/v%d.csv",
                     mer_test_bin(), w, w, list, o, r);
        /* demo: the name as a clip and as a speaker */
        snprintf(cmd, sizeof cmd, "%s/demo%d", o, r);
        char dd[900];
        char text[1200];
        snprintf(text, sizeof text, "name,emotion,speaker\nok,happiness,%s\n%s,neutral,s2\nok,neutral,s3\n", q, q);
        snprintf(dd, sizeof dd, "%s/data/labels.csv", o);
        REQUIRE(write_str(dd, text) == 0);
        mer_test_run(out, sizeof out, "%s demo --data %s/data --out %s --seeds 1 --epochs 1 --no-single-clip",
                     mer_test_bin(), o, cmd);
        /* extract text: the name in the transcript CSV */
        snprintf(text, sizeof text, "name,chinese,english\nok,today,\n%s,hello,\n", q);
        snprintf(dd, sizeof dd, "%s/text.csv", o);
        REQUIRE(write_str(dd, text) == 0);
        mer_test_run(out, sizeof out, "%s extract text --model tests/fixtures/text/tiny_bert --csv %s --out %s/text%d",
                     mer_test_bin(), dd, o, r);
        /* finetune speech and probe: the name in the labels CSV (the media lookup and the cache) */
        snprintf(text, sizeof text, "name,emotion\nok,a\nok1,b\nok2,a\nok3,b\n%s,a\n", q);
        snprintf(dd, sizeof dd, "%s/ft.csv", o);
        REQUIRE(write_str(dd, text) == 0);
        mer_test_run(out, sizeof out,
                     "%s finetune speech --model tests/fixtures/hubert/base --labels %s --audio %s/data --layers 1-2 "
                     "--epochs 1 --folds 2 --out %s/ft%d --cache %s/ftcache%d",
                     mer_test_bin(), dd, o, o, r, o, r);
        mer_test_run(out, sizeof out,
                     "%s probe --model tests/fixtures/hubert/base --labels %s --audio %s/data --folds 2 --epochs 1 "
                     "--out %s/probe%d",
                     mer_test_bin(), dd, o, o, r);
        /* extract and faces: the name as the input's file name (where the file system allows it) */
        if (!strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..")) {
            char in[900];
            snprintf(in, sizeof in, "%s/%s.flac", o, name);
            FILE *f = fopen(in, "wb");
            if (f) {
                fclose(f);
                snprintf(cmd, sizeof cmd, "cp data/emodb/flac/03a01Fa.flac '%s/in.flac'", o);
                REQUIRE(system(cmd) == 0);
                char in2[900];
                snprintf(in2, sizeof in2, "%s/in.flac", o);
                REQUIRE(rename(in2, in) == 0);
                char el[900];
                snprintf(el, sizeof el, "%s/elist.txt", o);
                char et[1000];
                snprintf(et, sizeof et, "%s\n%s/data/flac/ok.flac\n", in, o);
                REQUIRE(mer_test_write(el, et, strlen(et)) == 0);
                mer_test_run(out, sizeof out, "%s extract acoustic --list %s --out %s/feats%d", mer_test_bin(), el, o, r);
                char png[900];
                snprintf(png, sizeof png, "%s/%s.png", o, name);
                snprintf(cmd, sizeof cmd, "cp " FACE " %s/face.png", o);
                REQUIRE(system(cmd) == 0);
                snprintf(in2, sizeof in2, "%s/face.png", o);
                if (rename(in2, png) == 0) {
                    /* the shell quoting of a hostile name is the test's problem: pass it by env */
                    setenv("MER_FUZZ_INPUT", png, 1);
                    mer_test_run(out, sizeof out, "%s faces \"$MER_FUZZ_INPUT\" --crops %s/crops%d", mer_test_bin(), o, r);
                    unsetenv("MER_FUZZ_INPUT");
                    unlink(png);
                }
                unlink(in);
            }
        }
        char *after = snapshot(root, o);
        REQUIRE(after);
        if (strcmp(before, after) != 0) {
            mer_test_fail(__FILE__, __LINE__, "round %d: name '%s' changed the tree outside %s", r, name, o);
            free(after);
            break;
        }
        free(after);
    }
    free(before);
}

/* ---- paths near PATH_MAX ------------------------------------------------------------------- */

/* dir/<200-char components> until the path is about len bytes long; returns it (static). */
static const char *deep_dir(const char *dir, size_t len) {
    static char p[5000];
    char comp[201];
    memset(comp, 'd', 200);
    comp[200] = '\0';
    snprintf(p, sizeof p, "%s", dir);
    while (strlen(p) + 201 <= len) strcat(strcat(p, "/"), comp);
    const size_t n = strlen(p);
    if (n + 2 <= len) { /* one shorter component to land on len exactly */
        p[n] = '/';
        memset(p + n + 1, 'e', len - n - 1);
        p[len] = '\0';
    }
    char cmd[5200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", p);
    return system(cmd) == 0 ? p : NULL;
}

/* A model directory whose path is long, but legal, is read whole (the loaders cut it at 1100 or
 * 1200 bytes before); an output whose files would be longer than PATH_MAX is refused with the
 * problem at the end of the one-line message, and no file with a shortened name appears. */
MER_TEST(safety_long_paths) {
    const char *d = mer_test_tmpdir("safety_long_paths");
    static char out2[8192], cmd[10000], m[5000], run[5000];
    const char *deep = deep_dir(d, 3900);
    REQUIRE(deep && strlen(deep) == 3900);
    snprintf(m, sizeof m, "%s/m", deep);
    snprintf(cmd, sizeof cmd, "cp -r tests/fixtures/hubert/base '%s'", m);
    REQUIRE(system(cmd) == 0);
    int rc = mer_test_run(out2, sizeof out2, "%s extract audio --model '%s' --layers 1-2 --pool mean "
                          "--out %s/a2.npy tests/fixtures/hubert/a2.wav", mer_test_bin(), m, d);
    if (rc) printf("    %.300s ... %s\n", out2, strlen(out2) > 300 ? out2 + strlen(out2) - 300 : "");
    CHECK(rc == 0);
    /* 4045 + "/run/inputs.json" fits the 4064 bytes an atomic write can name, "/run/fold-0.safetensors" not */
    const char *deeper = deep_dir(d, 4045);
    REQUIRE(deeper);
    REQUIRE(make_synth(d) == 0);
    snprintf(run, sizeof run, "%s/run", deeper);
    char lab[600];
    snprintf(lab, sizeof lab, "%s/s/labels.csv", d);
    rc = train(d, lab, run, NULL);
    CHECK(rc == 1);
    /* one line naming the file (its head and its tail) and the problem, which survives the cut */
    const char *line = strstr(out, "mer train: ");
    while (line && strstr(line + 1, "mer train: ")) line = strstr(line + 1, "mer train: ");
    if (line) printf("    %.60s ... %s", line, strlen(line) > 160 ? line + strlen(line) - 100 : "");
    /* the folds train in parallel: the first to reach a long name (a fold model or its state)
     * halts the other */
    CHECK(line && (strstr(line, "/run/fold-") || strstr(line, "/run/state-")) &&
          strstr(line, ".safetensors: path too long ("));
    CHECK(line && strchr(line, '\n') && strlen(line) < 1200);
    /* whatever the run wrote has its whole name */
    snprintf(cmd, sizeof cmd, "cd '%s' && ls -A", run);
    rc = mer_test_run(out2, sizeof out2, "%s", cmd);
    CHECK(rc == 0);
    for (char *save = NULL, *tok = strtok_r(out2, "\n", &save); tok; tok = strtok_r(NULL, "\n", &save))
        CHECK(!strcmp(tok, ".mer-made") || !strcmp(tok, "config.json") || !strcmp(tok, "inputs.json"));
}
