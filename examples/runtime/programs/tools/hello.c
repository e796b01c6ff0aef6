#include <stdio.h>
#include <time.h>

int main(int argc, char **argv) {
    const char *who = argc > 1 ? argv[1] : "world";
    time_t epoch = 0;
    char buf[64];
    strftime(buf, sizeof buf, "%Y-%m-%d %H:%M %Z", localtime(&epoch));
    printf("hello %s, the epoch began %s\n", who, buf);
    return 0;
}
