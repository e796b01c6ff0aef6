/* localeinfo [NAME]: setlocale(LC_ALL, NAME or "" for the environment), then the locale's codeset, a date,
   a number with thousands separators, and a multibyte string of the locale's charset read back as wide
   characters (which goes through the charset's gconv module unless the charset is UTF-8 or ASCII). */
#include <langinfo.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <wchar.h>

int main(int argc, char **argv) {
    const char *name = setlocale(LC_ALL, argc > 1 ? argv[1] : "");
    if (name == NULL) {
        printf("setlocale failed\n");
        return 1;
    }
    struct tm day = {.tm_year = 124, .tm_mon = 1, .tm_mday = 4, .tm_wday = 0};
    char date[128];
    strftime(date, sizeof date, "%A %d %B %Y", &day);
    const char *codeset = nl_langinfo(CODESET);
    /* e-acute in the locale's charset: two bytes in UTF-8, one in the ISO-8859 charsets. */
    const char *text = strcmp(codeset, "UTF-8") == 0 ? "\xc3\xa9" : "\xe9";
    wchar_t wide[4];
    size_t n = mbstowcs(wide, text, 4);
    printf("%s|%s|%s|%'.2f|", name, codeset, date, 1234567.891);
    if (n == (size_t)-1)
        printf("mbstowcs failed\n");
    else
        printf("U+%04X\n", (unsigned)wide[0]);
    return 0;
}
