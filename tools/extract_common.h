/*
 * extract_common.h -- the options and the report shared by every `mer extract <kind>` subcommand.
 * The work (inputs, output layout, skipping, clash detection, atomic writes, recipe.json, per-input
 * failures) is one library call, mer_extract_*_files / mer_extract_text_csv (src/pipeline/extract.c);
 * this module parses the options they share and prints what the call reports:
 *  - a failed input on one line `mer <cmd>: <input>: <problem>` as soon as it is known, and a
 *    progress bar with ETA on stderr when it is a terminal;
 *  - at the end: how many outputs already existed, how many inputs failed; exit code 1 if any
 *    failed or the run as a whole did (its message printed), 0 otherwise.
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
 *     extract_report rep;
 *     mer_extract_result res;
 *     mer_extract_params p = extract_params(&eo, &rep, &res);
 *     int rc = extract_finish(&rep, mer_extract_speech_files(st, eo.inputs, eo.n_inputs, eo.out, &sp, &p, &res));
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
    const char *const *inputs; /* positional inputs (borrowed argv strings) */
    int n_inputs;
    char **inputs_; /* the growable array behind inputs */
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

/* What the library reports while it runs, drawn and printed by the CLI. */
typedef struct {
    const char *cmd;
    const mer_extract_result *res;
    cli_progress bar;
    bool started;
} extract_report;

/* The library params of the options (--list, --overwrite), the report as progress callback and
 * Ctrl-C as abort (the handler installed here; extract_finish restores the default). recipe:
 * the extractor's JSON (borrowed), or NULL. */
mer_extract_params extract_params(const extract_opts *o, const char *recipe, extract_report *rep,
                                  mer_extract_result *res);

/* After the call that returned s: ends the bar, prints the run's error or the summary (existing
 * outputs skipped, inputs failed), frees the result. Returns the exit code (0 or 1). */
int extract_finish(extract_report *rep, mer_status s, mer_extract_result *res);

#endif
