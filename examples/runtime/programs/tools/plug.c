/* A plugin: a shared library with a soname, found by dlopen through /etc/ld.so.cache. */
const char *plug(void) { return "plugin ok"; }
