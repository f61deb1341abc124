/*
 * fuzz_config.c — libFuzzer target: the configuration parser
 * (config_load over the defaults of config_init, then config_close).
 *
 * config_load reads a path, so each input is written to one temporary
 * file (made once, rewritten in place, removed at exit). Only crashes,
 * sanitizer reports and leaks count; whether the file is accepted does
 * not, but a refusal must come with a message.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char path[] = "/tmp/awaitd-fuzz-config-XXXXXX";
static int fd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void remove_file(void)
{
    unlink(path);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fd = mkstemp(path);
    if (fd < 0) {
        perror("mkstemp");
        abort();
    }
    atexit(remove_file);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
        abort();
    struct config c;
    char err[CONFIG_ERR_SIZE] = "";
    if (config_init(&c) < 0)
        abort();
    if (config_load(&c, path, err, sizeof err) < 0 && !err[0]) {
        fprintf(stderr, "config_load refused the file without a message\n");
        abort();
    }
    config_close(&c);
    return 0;
}
