/*
 * extract_common.h -- the batch machinery shared by every `mer extract <kind>` subcommand.
 *
 * An extractor supplies one function that turns an input file into a float32 array; this
 * module does everything around it, identically for audio, acoustic and visual features:
 *  - inputs from the command line and/or `--list FILE` (one path a line; blank lines and lines
 *    starting with '#' ignored);
 *  - one positional INPUT and no --list: --out PATH is the .npy file itself (unless PATH is an
 *    existing directory); otherwise PATH is a directory (created if missing) receiving
 *    `<basename>.npy` per input (basename = file name without directory and extension: the
 *    MERTools feature layout);
 *  - existing outputs are skipped unless --overwrite; two inputs with the same basename are an
 *    error for the second one (it would overwrite the first);
 *  - each output is written atomically (mer_npy_write: temp file + rename), so an interrupted
 *    run never leaves a half-written .npy;
 *  - a file that fails (undecodable, no audio, ...) is reported on one line
 *    `mer <cmd>: <file>: <problem>` and skipped; the exit code is 1 at the end if any failed;
 *  - a progress bar with ETA on stderr when it is a terminal.
 *
 * Typical use in a subcommand:
 *
 *     extract_opts eo;
 *     extract_opts_init(&eo, "extract audio");
 *     for (int i = 1; i < argc; i++) {
 *         int r = extract_parse_common(&eo, argc, argv, &i);
 *         if (r < 0) return 2;            // usage error already printed
 *         if (r > 0) continue;            // --out, --list, --overwrite, --threads, INPUT
 *         ... own options ...
 *     }
 *     if (extract_check(&eo)) return 2;
 *     ... load the model ...
 *     int rc = extract_run(&eo, my_fn, &my_ctx);
 *     extract_opts_free(&eo);
 */
#ifndef MER_EXTRACT_COMMON_H
#define MER_EXTRACT_COMMON_H

#include "cli.h"

#include <stdbool.h>

typedef struct {
    const char *cmd;       /* "extract audio", used in messages */
    const char *out;       /* --out PATH */
    const char *list;      /* --list FILE, or NULL */
    bool overwrite;        /* --overwrite */
    long threads;          /* --threads N (0: all online CPUs) */
    bool threads_set;
    const char *recipe;    /* the extractor's recipe JSON (borrowed), or NULL: an output
                              directory records it as recipe.json and refuses another
                              (mer_output_recipe); set it before extract_run */
    char **inputs;         /* positional inputs (borrowed argv strings) */
    int n_inputs;
    int cap_inputs;
} extract_opts;

void extract_opts_init(extract_opts *o, const char *cmd);
void extract_opts_free(extract_opts *o);

/* Consume argv[*i] if it is one of the common options (--out, --list, --overwrite,
 * --threads) or a positional input. Returns 1 if consumed (advancing *i past a value), 0 if
 * it is some other option for the caller, -1 on a usage error (already printed). */
int extract_parse_common(extract_opts *o, int argc, char **argv, int *i);

/* After parsing: --out given, at least one input or a list, applies --threads. Returns 0 when
 * fine, else prints the usage error and returns 2. */
int extract_check(extract_opts *o);

/* The per-input work: compute the feature array of `input`. On success *data is malloc'd
 * (the batch frees it), ndim and shape describe it. On failure return the status with the
 * message set through the library (mer_last_error(); mer__err style, naming the problem). */
typedef mer_status (*extract_fn)(const char *input, float **data, int32_t *ndim,
                                 int64_t shape[MER_MAX_DIMS], void *user);

/* Run the batch. Returns the exit code: 0 all written or skipped, 1 if any input failed or
 * the output could not be written. */
int extract_run(const extract_opts *o, extract_fn fn, void *user);

/* Several inputs computed together (batched extraction): fill res[0..k-1] (data malloc'd, the
 * runner frees it; a failing input gets its status and one-line message in its slot). Return
 * non-zero only for a failure of the group as a whole (message through the library). */
typedef struct {
    float *data;
    int32_t ndim;
    int64_t shape[MER_MAX_DIMS];
    mer_status status;
    char error[512];
} extract_result;
typedef mer_status (*extract_batch_fn)(int k, const char *const *inputs, extract_result *res, void *user);

/* extract_run computing the due inputs (not skipped, not failing the name checks) in groups of
 * up to `batch` through bfn; fn when batch is 1. Output, skipping and reporting as extract_run. */
int extract_run_batch(const extract_opts *o, extract_fn fn, extract_batch_fn bfn, int batch, void *user);

/* The output name of an input: basename without extension (into buf). */
void extract_basename(char *buf, size_t n, const char *input);

#endif
