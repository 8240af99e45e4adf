/*
 * fail-strdup.c: an LD_PRELOAD shim for one test, which makes strdup(s)
 * fail with ENOMEM when s equals $PATCHBAY_FAIL_STRDUP, so that a test can
 * reach an out-of-memory path of a real patchbayd (the token file's copy).
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

char	*strdup(const char *);

/* strdup(), except for the one string the test names. */
char *
strdup(const char *s)
{
	static char	*(*real)(const char *);
	const char	*fail = getenv("PATCHBAY_FAIL_STRDUP");

	if (fail != NULL && strcmp(s, fail) == 0) {
		errno = ENOMEM;
		return NULL;
	}
	/* POSIX's way to store dlsym()'s answer in a function pointer. */
	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "strdup");
	return real(s);
}
