/* iconvert TO FROM TEXT: converts TEXT from charset FROM to charset TO with iconv(3), prints the bytes in hex. */
#include <errno.h>
#include <iconv.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: iconvert TO FROM TEXT\n");
        return 2;
    }
    iconv_t cd = iconv_open(argv[1], argv[2]);
    if (cd == (iconv_t)-1) {
        printf("iconv_open %s <- %s failed: %s\n", argv[1], argv[2], strerror(errno));
        return 1;
    }
    char out[1024], *in = argv[3], *o = out;
    size_t inleft = strlen(in), outleft = sizeof out;
    if (iconv(cd, &in, &inleft, &o, &outleft) == (size_t)-1) {
        printf("iconv failed: %s\n", strerror(errno));
        return 1;
    }
    for (char *p = out; p < o; p++)
        printf("%02x", (unsigned char)*p);
    printf("\n");
    iconv_close(cd);
    return 0;
}
