/*
 * cli.h -- shared helpers of the `mer` command-line tool: option parsing, errors, progress.
 * Only tools/ may exit(); subcommands return an exit code (0 ok, 1 failure, 2 usage error).
 */
#ifndef MER_CLI_H
#define MER_CLI_H

#include "mer.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>

/* A subcommand: argv[0] is the subcommand name. Returns the process exit code. */
typedef int (*mer_cmd_fn)(int argc, char **argv);

/* Print "mer <cmd>: <message>\n" to stderr. Returns 1 (or 2 for usage errors via cli_usage). */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "mer <cmd>: <what>: <mer_last_error() or status name>" and returns 1. */
int cli_fail_status(const char *cmd, mer_status s, const char *what);
/* Usage error: message + hint to run `mer <cmd> --help`; returns 2. */
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Option parsing over argv[1..]. Typical loop:
 *   for (int i = 1; i < argc; i++) {
 *       const char *v;
 *       if (cli_opt(argc, argv, &i, "--model", &v)) model = v;
 *       else if (cli_flag(argv[i], "--json")) json = true;
 *       else if (cli_is_option(argv[i])) return cli_usage(cmd, "unknown option %s", argv[i]);
 *       else positional[n++] = argv[i];
 *   }
 * cli_opt accepts "--name value" and "--name=value"; a missing value is reported through
 * cli_missing (check cli_error() after the loop). */
bool cli_opt(int argc, char **argv, int *i, const char *name, const char **value);
bool cli_flag(const char *arg, const char *name);
bool cli_is_option(const char *arg);
/* Set when cli_opt found a flag without its value; the message names it. */
const char *cli_error(void);

/* Numeric parsing with full validation; false on junk or out of range. */
bool cli_parse_int(const char *s, long lo, long hi, long *out);
bool cli_parse_double(const char *s, double lo, double hi, double *out);

/* Progress bar with ETA on stderr when it is a terminal (otherwise silent). */
typedef struct {
    const char *label;
    int64_t total;
    double t0;
    double last_draw;
    bool tty;
} cli_progress;
void cli_progress_start(cli_progress *p, const char *label, int64_t total);
void cli_progress_update(cli_progress *p, int64_t done, const char *detail);
void cli_progress_end(cli_progress *p);

double cli_now(void); /* monotonic seconds */

/* Ctrl-C asks a long library call to stop: cli_catch_sigint(1) installs the handler (0 restores
 * the default), cli_interrupted is the call's abort callback (mer_abort_fn). */
void cli_catch_sigint(int on);
bool cli_interrupted(void *user_data);

/* The --feature NAME=DIR options of one command: spec[k].name points into name[k], spec[k].dir
 * into the argument (argv outlives the command). */
typedef struct {
    mer_modality_spec spec[MER_MAX_MODALITIES];
    char name[MER_MAX_MODALITIES][MER_NAME_MAX];
    int32_t n;
} cli_features;
/* Add one NAME=DIR (the one place it is split): a usage error (returns 2, message printed) for
 * a missing '=', an empty side, a name too long, a repeated name or too many. 0 when added. */
int cli_feature_add(const char *cmd, cli_features *f, const char *arg);

/* s as a JSON string literal on f (escaped by mer_json_quote); false when out of memory. */
bool cli_json_str(FILE *f, const char *s);

/* Apply --threads: n <= 0 means online CPUs. */
void cli_set_threads(long n);

#endif
