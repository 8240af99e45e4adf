/*
 * harness-client.c: the harness's helpers that call libpatchbay. An
 * object of its own in the harness library, so that a suite that does not
 * link libpatchbay never pulls it in.
 */
#include <string.h>

#include "clients/patchbay.h"
#include "tests/harness.h"

/* A client connected to ep; see harness.h. */
struct pb_client *
harness_client(const char *ep)
{
	struct pb_client	*c;
	int			 r;

	r = pb_client_connect(ep, NULL, &c);
	ck_assert_msg(r == 0, "connect %s: %s (%s)", ep, strerror(-r),
	    pb_client_last_error(NULL));
	return c;
}
