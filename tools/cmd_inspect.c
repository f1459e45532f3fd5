/*
 * cmd_inspect.c -- `mer inspect FILE...`: tensors of safetensors, dtype/shape of .npy, media streams.
 */
#include "cli.h"

#include <stdio.h>

int cmd_inspect(int argc, char **argv) {
    if (argc < 2) return cli_usage("inspect", "needs a FILE");
    return cli_fail("inspect", "%s: unrecognised file type", argv[1]);
}
