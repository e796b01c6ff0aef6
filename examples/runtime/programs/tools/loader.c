/* dlopen a library by bare soname, as plugin hosts do: RUNPATH, LD_LIBRARY_PATH, ld.so.cache, default dirs. */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv) {
    const char *name = argc > 1 ? argv[1] : "libplug.so.1";
    void *h = dlopen(name, RTLD_NOW);
    if (!h) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    const char *(*plug)(void) = (const char *(*)(void))dlsym(h, "plug");
    if (!plug) {
        fprintf(stderr, "dlsym: %s\n", dlerror());
        return 1;
    }
    puts(plug());
    return 0;
}
