/*
 * awaitctl.c — placeholder main of the command-line client; issue 11 fills
 * it in (cli/ holds the client: it speaks only the public HTTP API).
 */
#include <stdio.h>

int main(void)
{
    fputs("awaitctl: not built yet\n", stderr);
    return 64;
}
