/*
 * test_harness.c -- a defect planted on request, so that scripts/run-tests.sh can show that the
 * harness catches each kind: MER_PLANT=leak|heap|ub|crash|hang makes harness_planted_defect
 * leak, overflow a heap block, overflow a signed integer, crash or hang. Without MER_PLANT it
 * passes and does nothing.
 */
#include "test.h"

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

static volatile int sink;

MER_TEST(harness_planted_defect) {
    const char *d = getenv("MER_PLANT");
    if (!d || !*d) return;
    if (!strcmp(d, "leak")) {
        char *volatile p = malloc(4096);
        if (p) p[0] = 1;
        p = NULL;
    } else if (!strcmp(d, "heap")) {
        volatile char *p = malloc(16);
        if (p) p[16 + sink] = 1;
        free((void *)p);
    } else if (!strcmp(d, "ub")) {
        volatile int x = INT_MAX;
        sink = x + 1;
    } else if (!strcmp(d, "crash")) {
        volatile int *p = NULL;
        sink = *p;
    } else if (!strcmp(d, "hang")) {
        for (;;) pause();
    }
}
