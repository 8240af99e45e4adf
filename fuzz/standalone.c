/*
 * standalone.c: main() for a fuzz target built without libFuzzer (gcc,
 * the test suite, valgrind).
 *
 * Usage: TARGET [-n MUTATIONS] [-s SEED] [-t SECONDS] [-m MAX_LEN]
 *               [-o FILE] PATH...
 *
 * Every file given, and every file in every directory given, is run once
 * (the corpus and the regression inputs). Then MUTATIONS inputs (default
 * 0) are made from them with a small deterministic mutator (bit flips,
 * byte sets, interesting values, inserts, deletes, copies within the
 * input and splices with another), seeded by SEED, and run, stopping
 * early after SECONDS if given. With -o, each mutated input is written to
 * FILE before it runs, so that a crash leaves it behind. The exit status
 * is 0; a failed check in the target traps (SIGILL) or is reported by the
 * sanitizers.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* One input of the corpus. */
struct sa_input {
	uint8_t	*data;
	size_t	 len;
};

static struct sa_input	*inputs;
static size_t		 ninputs, cap_inputs;
static uint64_t		 rng = 0x2545f4914f6cdd1dULL;
static FILE		*out;		/* our messages (stderr may be taken) */
static const char	*save_path;	/* -o */

/* A random number (xorshift64*). */
static uint64_t
sa_random(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 2685821657736338717ULL;
}

/* Reads a whole file into the corpus. */
static void
sa_load_file(const char *path)
{
	FILE	*f = fopen(path, "rb");
	uint8_t	*buf = NULL, *nbuf;
	size_t	 len = 0, cap = 0, n;

	if (f == NULL) {
		fprintf(out, "standalone: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	for (;;) {
		if (cap - len < 4096) {
			cap = cap == 0 ? 8192 : cap * 2;
			if ((nbuf = realloc(buf, cap)) == NULL)
				exit(2);
			buf = nbuf;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	fclose(f);
	if (ninputs == cap_inputs) {
		cap_inputs = cap_inputs == 0 ? 64 : cap_inputs * 2;
		inputs = realloc(inputs, cap_inputs * sizeof(*inputs));
		if (inputs == NULL)
			exit(2);
	}
	inputs[ninputs].data = buf;
	inputs[ninputs].len = len;
	ninputs++;
}

/* Loads a file, or every regular file of a directory (sorted). */
static void
sa_load(const char *path)
{
	struct dirent	**names;
	struct stat	  st;
	char		  full[4096];
	int		  n;

	if (stat(path, &st) != 0) {
		fprintf(out, "standalone: %s: %s\n", path, strerror(errno));
		exit(2);
	}
	if (!S_ISDIR(st.st_mode)) {
		sa_load_file(path);
		return;
	}
	if ((n = scandir(path, &names, NULL, alphasort)) < 0)
		exit(2);
	for (int i = 0; i < n; i++) {
		snprintf(full, sizeof(full), "%s/%s", path, names[i]->d_name);
		if (names[i]->d_name[0] != '.' && stat(full, &st) == 0 &&
		    S_ISREG(st.st_mode))
			sa_load_file(full);
		free(names[i]);
	}
	free(names);
}

/* Writes the input about to run, so that a crash leaves it behind. */
static void
sa_save(const uint8_t *data, size_t len)
{
	FILE	*f;

	if (save_path == NULL || (f = fopen(save_path, "wb")) == NULL)
		return;
	if (len > 0 && fwrite(data, 1, len, f) != len)
		fprintf(out, "standalone: cannot save the input\n");
	fclose(f);
}

/* Applies one random change to buf (len bytes, room for max). */
static size_t
sa_mutate_once(uint8_t *buf, size_t len, size_t max)
{
	static const uint8_t	interesting[] = { 0x00, 0x01, 0x7f, 0x80,
				    0xff, 0xc0, 0xc1, 0xc4, 0xd9, 0xdc, 0xde,
				    0x90, 0x80, 0xa0, 0x10, 0x40 };
	size_t			pos, n, from;
	const struct sa_input	*o;

	switch (sa_random() % 8) {
	case 0:		/* flip a bit */
		if (len > 0)
			buf[sa_random() % len] ^= (uint8_t)(1u <<
			    (sa_random() % 8));
		return len;
	case 1:		/* set a byte */
		if (len > 0)
			buf[sa_random() % len] = (uint8_t)sa_random();
		return len;
	case 2:		/* an interesting value */
		if (len > 0)
			buf[sa_random() % len] = interesting[sa_random() %
			    sizeof(interesting)];
		return len;
	case 3:		/* insert random bytes */
		n = 1 + sa_random() % 8;
		if (len + n > max)
			return len;
		pos = sa_random() % (len + 1);
		memmove(buf + pos + n, buf + pos, len - pos);
		for (size_t i = 0; i < n; i++)
			buf[pos + i] = (uint8_t)sa_random();
		return len + n;
	case 4:		/* delete a range */
		if (len < 2)
			return len;
		pos = sa_random() % len;
		n = 1 + sa_random() % (len - pos);
		memmove(buf + pos, buf + pos + n, len - pos - n);
		return len - n;
	case 5:		/* copy a range over another place */
		if (len < 2)
			return len;
		from = sa_random() % len;
		pos = sa_random() % len;
		n = 1 + sa_random() % (len - (from > pos ? from : pos));
		memmove(buf + pos, buf + from, n);
		return len;
	case 6:		/* splice: another input's tail from here */
		o = &inputs[sa_random() % ninputs];
		if (o->len == 0)
			return len;
		pos = len > 0 ? sa_random() % len : 0;
		from = sa_random() % o->len;
		n = o->len - from;
		if (pos + n > max)
			n = max - pos;
		memcpy(buf + pos, o->data + from, n);
		return pos + n > len ? pos + n : len;
	default:	/* duplicate a range in place (repeat an op) */
		if (len == 0)
			return len;
		from = sa_random() % len;
		n = 1 + sa_random() % (len - from);
		if (n > 64)
			n = 64;
		if (len + n > max)
			return len;
		memmove(buf + from + n, buf + from, len - from);
		return len + n;
	}
}

/* Runs the corpus, then the mutations. */
int
main(int argc, char **argv)
{
	unsigned long	 mutations = 0, done = 0;
	unsigned long	 seconds = 0;
	size_t		 max = 4096, len;
	uint8_t		*buf;
	time_t		 start = time(NULL);
	int		 c;

	out = stdout;
	while ((c = getopt(argc, argv, "n:s:t:m:o:")) != -1) {
		switch (c) {
		case 'n':
			mutations = strtoul(optarg, NULL, 10);
			break;
		case 's':
			rng ^= strtoull(optarg, NULL, 10) * 0x9e3779b97f4a7c15ULL;
			if (rng == 0)
				rng = 1;
			break;
		case 't':
			seconds = strtoul(optarg, NULL, 10);
			break;
		case 'm':
			max = strtoul(optarg, NULL, 10);
			break;
		case 'o':
			save_path = optarg;
			break;
		default:
			fprintf(out, "usage: %s [-n MUTATIONS] [-s SEED] "
			    "[-t SECONDS] [-m MAX_LEN] [-o FILE] PATH...\n",
			    argv[0]);
			return 2;
		}
	}
	for (int i = optind; i < argc; i++)
		sa_load(argv[i]);
	if (ninputs == 0) {
		fprintf(out, "standalone: no input\n");
		return 2;
	}
	for (size_t i = 0; i < ninputs; i++)
		LLVMFuzzerTestOneInput(inputs[i].data, inputs[i].len);
	for (size_t i = 0; i < ninputs; i++)
		if (inputs[i].len > max)
			max = inputs[i].len;
	if ((buf = malloc(max)) == NULL)
		return 2;
	for (done = 0; done < mutations; done++) {
		const struct sa_input *in = &inputs[sa_random() % ninputs];
		unsigned n = 1 + (unsigned)(sa_random() % 8);

		if (seconds > 0 && (done & 63) == 0 &&
		    (unsigned long)(time(NULL) - start) >= seconds)
			break;
		len = in->len;
		memcpy(buf, in->data, len);
		while (n-- > 0)
			len = sa_mutate_once(buf, len, max);
		sa_save(buf, len);
		LLVMFuzzerTestOneInput(buf, len);
	}
	if (save_path != NULL)
		unlink(save_path);
	fprintf(out, "standalone: %zu corpus inputs and %lu mutations run "
	    "in %ld s\n", ninputs, done, (long)(time(NULL) - start));
	free(buf);
	for (size_t i = 0; i < ninputs; i++)
		free(inputs[i].data);
	free(inputs);
	return 0;
}
