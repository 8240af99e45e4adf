/*
 * strv.c: NULL-terminated vectors of malloc'ed strings, and word splitting.
 *
 * Commands in the config file, argv vectors for spawned processes and
 * environments are all such vectors; strv_split() turns a command line
 * written in the config file or a `--exec` option into one, with the small
 * quoting rules of a shell but no expansion of any kind.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/util.h"

/* Frees a NULL-terminated vector of strings. */
void
strv_free(char **v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

/* Counts the strings of a NULL-terminated vector. */
size_t
strv_len(char *const *v)
{
	size_t	n = 0;

	while (v != NULL && v[n] != NULL)
		n++;
	return n;
}

/* Copies a NULL-terminated vector; NULL on ENOMEM. */
char **
strv_dup(char *const *v)
{
	size_t	  n = strv_len(v);
	char	**copy;

	if ((copy = calloc(n + 1, sizeof(*copy))) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if ((copy[i] = strdup(v[i])) == NULL) {
			strv_free(copy);
			return NULL;
		}
	}
	return copy;
}

/* True when two NULL-terminated vectors hold the same strings. */
bool
strv_equal(char *const *a, char *const *b)
{
	size_t	n = strv_len(a);

	if (n != strv_len(b))
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

/* Room for one more element in a growing array; see util.h. */
int
array_grow(void *v, size_t *cap, size_t n, size_t size)
{
	void	**pv = v, *nv;
	size_t	  ncap = *cap > 0 ? *cap * 2 : 64;

	if (n < *cap)
		return 0;
	if ((nv = reallocarray(*pv, ncap, size)) == NULL)
		return -ENOMEM;
	*pv = nv;
	*cap = ncap;
	return 0;
}

/* Appends a copy of s to *v (NULL-terminated); 0 or -ENOMEM. */
int
strv_push(char ***v, size_t *n, const char *s)
{
	char	**nv;
	char	 *copy;

	if ((copy = strdup(s)) == NULL)
		return -ENOMEM;
	if ((nv = realloc(*v, (*n + 2) * sizeof(*nv))) == NULL) {
		free(copy);
		return -ENOMEM;
	}
	nv[(*n)++] = copy;
	nv[*n] = NULL;
	*v = nv;
	return 0;
}

/*
 * Copies one word starting at *sp into word (room for all of s), ending at
 * a blank or the end, and advances *sp. Returns the word's length, or -1
 * with err set for an unterminated quote.
 */
static long
strv_word(const char **sp, char *word, char *err)
{
	const char	*s = *sp, *end;
	size_t		 len = 0;

	while (*s != '\0' && *s != ' ' && *s != '\t') {
		if (*s == '\'') {
			if ((end = strchr(s + 1, '\'')) == NULL) {
				snprintf(err, UTIL_ERRLEN,
				    "unterminated single quote");
				return -1;
			}
			memcpy(word + len, s + 1, (size_t)(end - s - 1));
			len += (size_t)(end - s - 1);
			s = end + 1;
		} else if (*s == '"') {
			for (s++; *s != '"'; ) {
				if (*s == '\0') {
					snprintf(err, UTIL_ERRLEN,
					    "unterminated double quote");
					return -1;
				}
				if (*s == '\\' && (s[1] == '"' || s[1] == '\\'))
					s++;
				word[len++] = *s++;
			}
			s++;
		} else
			word[len++] = *s++;
	}
	word[len] = '\0';
	*sp = s;
	return (long)len;
}

/* Splits s into words with '...' and "..." quoting; see util.h. */
int
strv_split(const char *s, char ***ret, char *err)
{
	char	**words;
	size_t	  nwords = 0;
	char	 *word;
	int	  error = 0;

	if ((word = malloc(strlen(s) + 1)) == NULL)
		return -ENOMEM;
	if ((words = calloc(1, sizeof(*words))) == NULL) {
		free(word);
		return -ENOMEM;
	}
	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (*s == '\0')
			break;
		if (strv_word(&s, word, err) < 0) {
			error = -EINVAL;
			break;
		}
		if ((error = strv_push(&words, &nwords, word)) != 0)
			break;
	}
	free(word);
	if (error != 0) {
		strv_free(words);
		return error;
	}
	*ret = words;
	return 0;
}
