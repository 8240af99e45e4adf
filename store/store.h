/*
 * store.h: a durable home for the broker's detached jobs.
 *
 * The switchboard describes each change of a detached job as a struct
 * sb_stored (switchboard.h); the broker hands them here with wall-clock
 * times (Unix ms), and commits once per event loop turn. A store keeps,
 * for every job taken and not finished, the record of its last change,
 * and gives them back at start in the order they were taken.
 *
 * Behind this interface sits one backend (struct store_backend): SQLite in
 * WAL mode (sqlite.c) for now. Another (PostgreSQL, for brokers sharing
 * one queue) implements the same few calls; neither the switchboard nor
 * the broker changes.
 *
 * Failures: the calls that change jobs never fail on their own; what went
 * wrong is reported by store_commit(), for the batch since the previous
 * commit. The jobs PUT in a failed batch are lost (store_lost() lists
 * them: the broker never said ACCEPTED for them); their UPDATEs and DELs,
 * and those of every later batch, are kept in memory and written again
 * by store_retry() until a commit succeeds. Nothing committed is lost.
 */
#ifndef PATCHBAY_STORE_H
#define PATCHBAY_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/switchboard.h"

/* The schema version this build writes; a newer store is refused. */
#define STORE_SCHEMA_VERSION	1

/* Error sentences are at most this long, NUL included. */
#define STORE_ERRLEN		256

struct store;

/*
 * How a store is opened. Every commit reaches the kernel before
 * store_commit() returns: that survives the broker's crash. With fsync, a
 * commit that PUT jobs also reaches the disk (fdatasync) before it
 * returns, so that a power loss loses no job the broker said it took;
 * the UPDATEs and DELs of other commits reach it with the next such
 * commit or SQLite's checkpoint (a power loss may bring a finished job
 * back, to run again).
 */
struct store_options {
	bool	fsync;
};

/*
 * One backend's calls, on its own state. Each returns 0 or -1 with a
 * sentence in err (STORE_ERRLEN bytes); ops run between begin and commit.
 */
struct store_backend {
	const char	*name;
	int	(*open)(const char *path, const struct store_options *o,
		    void **state, char *err);
	/* Calls cb for each job, in the order they were taken; cb's non-zero
	   return stops it and is returned. */
	int	(*load)(void *state, int (*cb)(const struct sb_stored *, void *),
		    void *arg, char *err);
	int	(*begin)(void *state, char *err);
	int	(*put)(void *state, const struct sb_stored *job, char *err);
	int	(*update)(void *state, const struct sb_stored *job, char *err);
	int	(*del)(void *state, const uint8_t *id, char *err);
	/* A small write of its own (now: Unix ms), for store_retry() to
	   know that writes work again even with nothing to write. */
	int	(*touch)(void *state, uint64_t now, char *err);
	int	(*commit)(void *state, char *err);
	/* Makes what is committed durable on the disk (fdatasync). */
	int	(*sync)(void *state, char *err);
	void	(*rollback)(void *state);
	/* Jobs held now (for the log at start). */
	int64_t	(*count)(void *state);
	void	(*close)(void *state);
};

extern const struct store_backend	store_sqlite;

/*
 * Opens the store at path (created when missing, with its directory's
 * permissions for the file, 0600), with the SQLite backend. NULL with a
 * sentence naming the path and the reason in err: it cannot be opened or
 * created, is not a patchbay store, was written by a newer patchbayd
 * (schema version), or another broker has it open.
 */
struct store	*store_open(const char *path, const struct store_options *o,
		    char *err);

/* Closes the store (after a last store_commit()); NULL is a no-op. */
void	 store_close(struct store *st);

/*
 * Gives back every stored job, in the order they were taken, times in
 * Unix ms; stops at cb's first non-zero return and returns it. -1 with a
 * sentence in err when the store cannot be read.
 */
int	 store_load(struct store *st, int (*cb)(const struct sb_stored *, void *),
	    void *arg, char *err);

/* How many jobs the store holds (after store_load: for the log). */
int64_t	 store_count(struct store *st);

/*
 * One change of a stored job (op as the switchboard gave it, times in
 * Unix ms), in the batch the next store_commit() ends.
 */
void	 store_apply(struct store *st, enum sb_store_op op,
	    const struct sb_stored *job);

/* True when changes wait for store_commit(). */
bool	 store_dirty(const struct store *st);

/*
 * Ends the batch: 0 once every change since the last commit is committed
 * (and its PUTs on the disk: store_options), or -1 with the reason in
 * err: see store_lost()
 * and store_retry(). Does nothing and returns 0 when nothing changed, or
 * -1 at once while the store is failing (store_failing()).
 */
int	 store_commit(struct store *st, char *err);

/*
 * After a failed commit: the ids (PROTO_ID_LEN bytes each, *n of them)
 * of the jobs PUT in that batch, which the store does not hold. Valid
 * until the next call on st.
 */
const uint8_t	*store_lost(const struct store *st, size_t *n);

/* True from a failed commit until store_retry() succeeds. */
bool	 store_failing(const struct store *st);

/*
 * Writes again the UPDATEs and DELs kept since the failure, and a small
 * write of its own (now: Unix ms) so that an empty retry proves writes
 * work too. 0 when they are committed (the store works again), -1 with
 * the reason in err.
 */
int	 store_retry(struct store *st, uint64_t now, char *err);

#endif /* PATCHBAY_STORE_H */
