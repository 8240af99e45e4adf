/*
 * fuzz-proto.c: libFuzzer target for proto/.
 *
 * The input is read as a frame: frame_header() on the first four bytes,
 * then the body (the declared length when that much is there, else all the
 * rest) goes to packet_decode() in both directions. A packet that decodes is
 * encoded again, and that frame must decode and encode to the very same
 * bytes: the decoder and encoder agree on every packet either accepts. A
 * RUN's meta then goes through meta_check(), which accepts it or says why.
 * Seeds live in fuzz/corpus-proto/. The input may be as long as the
 * largest frame (LLVMFuzzerInitialize below).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/proto.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);
int	LLVMFuzzerInitialize(int *, char ***);

/* The input cap: the largest frame the broker accepts, plus its header. */
#define FUZZ_PROTO_MAX_LEN	(PROTO_MAX_FRAME_DEFAULT + PROTO_HEADER_LEN)

/*
 * libFuzzer's own cap on an input's length (-max_len, by default 4096 or
 * the corpus's largest) is far below a frame's, so the frame limit itself
 * was never reached: unless -max_len is given, it is set to
 * FUZZ_PROTO_MAX_LEN. libFuzzer reads its flags after this call.
 */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char	 flag[32];
	static char	*args[256];
	int		 n = *argc;

	for (int i = 1; i < n; i++)
		if (strncmp((*argv)[i], "-max_len=", 9) == 0)
			return 0;
	if (n >= 254)
		return 0;
	snprintf(flag, sizeof(flag), "-max_len=%d", FUZZ_PROTO_MAX_LEN);
	args[0] = (*argv)[0];
	args[1] = flag;
	for (int i = 1; i < n; i++)
		args[i + 1] = (*argv)[i];
	args[n + 1] = NULL;
	*argc = n + 1;
	*argv = args;
	return 0;
}

/* Stops the run: a broken invariant is a bug the fuzzer must report. */
static void
fuzz_fail(void)
{
	__builtin_trap();
}

/* Encodes p, decodes the frame again and checks it encodes identically. */
static void
fuzz_reencode(const struct packet *p, enum proto_dir dir)
{
	msgpack_sbuffer	 a, b;
	struct packet	 q;
	uint32_t	 len;
	char		 err[PROTO_ERRLEN];
	int		 r;

	msgpack_sbuffer_init(&a);
	msgpack_sbuffer_init(&b);
	r = packet_encode(p, dir, &a);
	if (r == -EINVAL && p->type == PKT_ERROR && p->code == PERR__MAX)
		goto out;	/* an unknown ERROR code never encodes */
	if (r != 0)
		fuzz_fail();
	if (frame_header((const uint8_t *)a.data, a.size, UINT32_MAX,
	    &len) != 0 || len != a.size - PROTO_HEADER_LEN)
		fuzz_fail();
	if (packet_decode((const uint8_t *)a.data + PROTO_HEADER_LEN, len,
	    dir, &q, err) != 0)
		fuzz_fail();
	r = packet_encode(&q, dir, &b);
	packet_clear(&q);
	if (r != 0 || a.size != b.size || memcmp(a.data, b.data, a.size) != 0)
		fuzz_fail();
out:
	msgpack_sbuffer_destroy(&a);
	msgpack_sbuffer_destroy(&b);
}

/* Runs one input through framing, decoding and re-encoding. */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct packet	p;
	uint32_t	len;
	size_t		blen;
	char		err[PROTO_ERRLEN];
	int		dir, r;

	r = frame_header(data, size, PROTO_MAX_FRAME_DEFAULT, &len);
	if (r != 0 && r != -EAGAIN && r != -EMSGSIZE && r != -EBADMSG)
		fuzz_fail();
	if (size <= PROTO_HEADER_LEN)
		return (0);
	blen = size - PROTO_HEADER_LEN;
	if (r == 0 && len <= blen)
		blen = len;

	for (dir = PROTO_TO_BROKER; dir <= PROTO_FROM_BROKER; dir++) {
		err[0] = '\0';
		r = packet_decode(data + PROTO_HEADER_LEN, blen, dir, &p, err);
		if (r != 0) {
			/* -EBADMSG exactly for a malformed body, unless it
			   held too much to be walked at all. */
			if ((r != -EBADMSG && r != -EPROTO) ||
			    (r != (frame_check(data + PROTO_HEADER_LEN, blen,
			    NULL) != 0 ? -EBADMSG : -EPROTO) &&
			    strstr(err, "holds at most") == NULL) ||
			    err[0] == '\0' ||
			    memchr(err, '\0', PROTO_ERRLEN) == NULL ||
			    p.zone != NULL)
				fuzz_fail();
			continue;
		}
		fuzz_reencode(&p, dir);
		/* A decoded meta is checked or refused with a sentence. */
		if (p.has & PF_META) {
			err[0] = '\0';
			r = meta_check(p.meta, err);
			if (r != 0 && (r != -EINVAL || err[0] == '\0'))
				fuzz_fail();
		}
		packet_clear(&p);
	}
	return (0);
}
