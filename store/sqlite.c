/*
 * sqlite.c: the SQLite backend of store.h.
 *
 * One table, jobs, one row per detached job taken and not finished,
 * keyed by seq (the order jobs were taken, so that a scan gives them back
 * in that order) with a unique index on the 16-byte id. The database is in
 * WAL mode with synchronous=NORMAL: a commit appends to the -wal file,
 * which survives the broker's crash, and the store layer asks for the
 * fdatasync of the commits that must survive a power loss (sqlite_sync());
 * SQLite's checkpoints sync the rest. Readers such as a backup
 * (`sqlite3 FILE .backup COPY`) do not block the broker. The schema's
 * version is PRAGMA user_version and the file is marked as patchbay's by
 * PRAGMA application_id. One broker at a time: an flock(2) on the file,
 * which SQLite's own fcntl locks do not see.
 */
#include <sys/file.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"

/* PRAGMA application_id of a patchbay store: "pbjq". */
#define SQLITE_APP_ID	0x70626a71

enum {
	STMT_BEGIN,
	STMT_COMMIT,
	STMT_ROLLBACK,
	STMT_PUT,
	STMT_UPDATE,
	STMT_DEL,
	STMT_TOUCH,
	STMT__MAX
};

static const char *const sqlite_stmts[STMT__MAX] = {
	[STMT_BEGIN] = "BEGIN IMMEDIATE",
	[STMT_COMMIT] = "COMMIT",
	[STMT_ROLLBACK] = "ROLLBACK",
	[STMT_PUT] = "INSERT INTO jobs (seq, id, fn, payload, meta, uniq, "
	    "priority, attempts, max_attempts, retry_on_error, failures, "
	    "backoff_ms, timeout_ms, deadline, due, taken_at, dead, error) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, "
	    "?14, ?15, ?16, ?17, ?18)",
	[STMT_UPDATE] = "UPDATE jobs SET attempts = ?2, max_attempts = ?3, "
	    "failures = ?4, deadline = ?5, due = ?6, dead = ?7, error = ?8 "
	    "WHERE id = ?1",
	[STMT_DEL] = "DELETE FROM jobs WHERE id = ?1",
	[STMT_TOUCH] = "INSERT OR REPLACE INTO info (key, value) "
	    "VALUES ('written', ?1)",
};

static const char sqlite_schema[] =
	"CREATE TABLE jobs ("
	" seq INTEGER PRIMARY KEY,"	/* the order jobs were taken */
	" id BLOB NOT NULL UNIQUE,"
	" fn TEXT NOT NULL,"
	" payload BLOB NOT NULL,"
	" meta BLOB,"
	" uniq TEXT,"
	" priority INTEGER NOT NULL,"
	" attempts INTEGER NOT NULL,"
	" max_attempts INTEGER NOT NULL,"
	" retry_on_error INTEGER NOT NULL,"
	" failures INTEGER NOT NULL,"
	" backoff_ms INTEGER NOT NULL,"
	" timeout_ms INTEGER NOT NULL,"
	" deadline INTEGER NOT NULL,"	/* Unix ms; 0: no timeout */
	" due INTEGER NOT NULL,"	/* Unix ms; 0: not delayed */
	" taken_at INTEGER NOT NULL,"	/* Unix ms */
	" dead INTEGER NOT NULL,"
	" error TEXT);"
	/* A row to write when only writing proves the disk takes writes. */
	"CREATE TABLE info (key TEXT PRIMARY KEY, value);";

struct sqlite_store {
	sqlite3		*db;
	sqlite3_stmt	*stmt[STMT__MAX];
	int		 lock_fd;
	int64_t		 next_seq;
	char		 path[];
};

/*
 * Writes "store PATH: what: SQLite's message (the system's)" into err.
 */
static int
sqlite_fail(struct sqlite_store *s, const char *what, char *err)
{
	int	e = s->db != NULL ? sqlite3_system_errno(s->db) : 0;

	snprintf(err, STORE_ERRLEN, "store %s: %s: %s%s%s%s", s->path, what,
	    s->db != NULL ? sqlite3_errmsg(s->db) : "out of memory",
	    e != 0 ? " (" : "", e != 0 ? strerror(e) : "", e != 0 ? ")" : "");
	return -1;
}

/* Runs one statement with no result rows. */
static int
sqlite_exec(struct sqlite_store *s, const char *sql, char *err)
{
	if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return sqlite_fail(s, "cannot set it up", err);
	return 0;
}

/* Reads one integer a statement returns; -1 with err on failure. */
static int
sqlite_int(struct sqlite_store *s, const char *sql, int64_t *ret, char *err)
{
	sqlite3_stmt	*st;
	int		 r;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return sqlite_fail(s, "cannot read it", err);
	r = sqlite3_step(st);
	*ret = r == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	if (r != SQLITE_ROW && r != SQLITE_DONE)
		return sqlite_fail(s, "cannot read it", err);
	return 0;
}

/* Checks the file is a patchbay store this build reads; makes a new one. */
static int
sqlite_schema_check(struct sqlite_store *s, char *err)
{
	int64_t	 app, version, tables;
	char	 sql[64];

	if (sqlite_int(s, "PRAGMA application_id", &app, err) != 0 ||
	    sqlite_int(s, "PRAGMA user_version", &version, err) != 0 ||
	    sqlite_int(s, "SELECT count(*) FROM sqlite_master", &tables,
	    err) != 0)
		return -1;
	if (app == 0 && version == 0 && tables == 0) {
		snprintf(sql, sizeof(sql), "PRAGMA application_id = %d; "
		    "PRAGMA user_version = %d;", SQLITE_APP_ID,
		    STORE_SCHEMA_VERSION);
		if (sqlite_exec(s, "BEGIN", err) != 0)
			return -1;
		if (sqlite_exec(s, sqlite_schema, err) != 0 ||
		    sqlite_exec(s, sql, err) != 0 ||
		    sqlite_exec(s, "COMMIT", err) != 0) {
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
		return 0;
	}
	if (app != SQLITE_APP_ID) {
		snprintf(err, STORE_ERRLEN, "store %s: not a patchbay store "
		    "(an SQLite database with other contents)", s->path);
		return -1;
	}
	if (version > STORE_SCHEMA_VERSION) {
		snprintf(err, STORE_ERRLEN, "store %s: schema version %" PRId64
		    " was written by a newer patchbayd (this one reads up to "
		    "version %d)", s->path, version, STORE_SCHEMA_VERSION);
		return -1;
	}
	if (version < 1) {
		snprintf(err, STORE_ERRLEN, "store %s: schema version %" PRId64
		    " is not one patchbayd wrote", s->path, version);
		return -1;
	}
	return 0;
}

static void	sqlite_close(void *state);

/* Opens or creates the store at path. */
static int
sqlite_open(const char *path, const struct store_options *o, void **state,
    char *err)
{
	struct sqlite_store	*s;
	size_t			 len = strlen(path);

	*state = NULL;
	if ((s = calloc(1, sizeof(*s) + len + 1)) == NULL) {
		snprintf(err, STORE_ERRLEN, "store %s: out of memory", path);
		return -1;
	}
	memcpy(s->path, path, len + 1);
	s->lock_fd = -1;
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		sqlite_fail(s, "cannot open", err);
		goto fail;
	}
	sqlite3_extended_result_codes(s->db, 1);
	/* The file exists now: one broker per store. */
	if ((s->lock_fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, STORE_ERRLEN, "store %s: cannot open: %s", path,
		    strerror(errno));
		goto fail;
	}
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) == -1) {
		snprintf(err, STORE_ERRLEN, "store %s: %s", path,
		    errno == EWOULDBLOCK ? "another patchbayd has it open" :
		    strerror(errno));
		goto fail;
	}
	/* The first read tells a file that is no database at all. */
	if (sqlite_schema_check(s, err) != 0)
		goto fail;
	(void)o;
	if (sqlite_exec(s, "PRAGMA journal_mode = WAL", err) != 0 ||
	    sqlite_exec(s, "PRAGMA synchronous = NORMAL", err) != 0)
		goto fail;
	if (sqlite_int(s, "SELECT coalesce(max(seq), 0) FROM jobs",
	    &s->next_seq, err) != 0)
		goto fail;
	s->next_seq++;
	for (int i = 0; i < STMT__MAX; i++)
		if (sqlite3_prepare_v3(s->db, sqlite_stmts[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &s->stmt[i], NULL) !=
		    SQLITE_OK) {
			sqlite_fail(s, "cannot prepare its statements", err);
			goto fail;
		}
	*state = s;
	return 0;

fail:
	sqlite_close(s);
	return -1;
}

/* Closes the database, then drops the lock. */
static void
sqlite_close(void *state)
{
	struct sqlite_store	*s = state;

	if (s == NULL)
		return;
	for (int i = 0; i < STMT__MAX; i++)
		sqlite3_finalize(s->stmt[i]);
	sqlite3_close(s->db);
	if (s->lock_fd != -1)
		close(s->lock_fd);
	free(s);
}

/* Steps a prepared statement that returns no row, and resets it. */
static int
sqlite_step(struct sqlite_store *s, int which, const char *what, char *err)
{
	sqlite3_stmt	*st = s->stmt[which];
	int		 r;

	r = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (r != SQLITE_DONE)
		return sqlite_fail(s, what, err);
	return 0;
}

static int
sqlite_begin(void *state, char *err)
{
	return sqlite_step(state, STMT_BEGIN, "cannot begin a transaction",
	    err);
}

static int
sqlite_commit(void *state, char *err)
{
	return sqlite_step(state, STMT_COMMIT, "cannot commit", err);
}

/*
 * fdatasync of the -wal file, through SQLite's own file object (public VFS
 * methods): what is committed in it is then on the disk.
 */
static int
sqlite_sync(void *state, char *err)
{
	struct sqlite_store	*s = state;
	sqlite3_file		*wal = NULL;

	if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_JOURNAL_POINTER,
	    &wal) != SQLITE_OK || wal == NULL || wal->pMethods == NULL) {
		snprintf(err, STORE_ERRLEN, "store %s: cannot sync: no "
		    "write-ahead log", s->path);
		return -1;
	}
	if (wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL) != SQLITE_OK)
		return sqlite_fail(s, "cannot sync", err);
	return 0;
}

/* Rolls back what is open (SQLite may have done so after an error). */
static void
sqlite_rollback(void *state)
{
	struct sqlite_store	*s = state;
	char			 err[STORE_ERRLEN];

	if (!sqlite3_get_autocommit(s->db))
		(void)sqlite_step(s, STMT_ROLLBACK, "rollback", err);
}

/* Binds a text or blob of len bytes, or NULL when len is 0 and nullable. */
static void
sqlite_bind_bytes(sqlite3_stmt *st, int i, const void *p, uint32_t len,
    bool text)
{
	if (text)
		sqlite3_bind_text(st, i, p, (int)len, SQLITE_STATIC);
	else
		sqlite3_bind_blob(st, i, len > 0 ? p : "", (int)len,
		    SQLITE_STATIC);
}

static int
sqlite_put(void *state, const struct sb_stored *j, char *err)
{
	struct sqlite_store	*s = state;
	sqlite3_stmt		*st = s->stmt[STMT_PUT];

	sqlite3_bind_int64(st, 1, s->next_seq++);
	sqlite_bind_bytes(st, 2, j->id, PROTO_ID_LEN, false);
	sqlite_bind_bytes(st, 3, j->fn, j->fn_len, true);
	sqlite_bind_bytes(st, 4, j->payload, j->payload_len, false);
	if (j->meta_len > 0)
		sqlite_bind_bytes(st, 5, j->meta, j->meta_len, false);
	if (j->unique_len > 0)
		sqlite_bind_bytes(st, 6, j->unique, j->unique_len, true);
	sqlite3_bind_int(st, 7, j->priority);
	sqlite3_bind_int64(st, 8, j->attempts);
	sqlite3_bind_int64(st, 9, j->max_attempts);
	sqlite3_bind_int64(st, 10, j->retry_on_error);
	sqlite3_bind_int64(st, 11, j->failures);
	sqlite3_bind_int64(st, 12, (int64_t)j->backoff_ms);
	sqlite3_bind_int64(st, 13, (int64_t)j->timeout_ms);
	sqlite3_bind_int64(st, 14, (int64_t)j->deadline);
	sqlite3_bind_int64(st, 15, (int64_t)j->due);
	sqlite3_bind_int64(st, 16, (int64_t)j->taken_at);
	sqlite3_bind_int(st, 17, j->dead);
	if (j->error != NULL)
		sqlite3_bind_text(st, 18, j->error, -1, SQLITE_STATIC);
	return sqlite_step(s, STMT_PUT, "cannot store a job", err);
}

static int
sqlite_update(void *state, const struct sb_stored *j, char *err)
{
	struct sqlite_store	*s = state;
	sqlite3_stmt		*st = s->stmt[STMT_UPDATE];

	sqlite_bind_bytes(st, 1, j->id, PROTO_ID_LEN, false);
	sqlite3_bind_int64(st, 2, j->attempts);
	sqlite3_bind_int64(st, 3, j->max_attempts);
	sqlite3_bind_int64(st, 4, j->failures);
	sqlite3_bind_int64(st, 5, (int64_t)j->deadline);
	sqlite3_bind_int64(st, 6, (int64_t)j->due);
	sqlite3_bind_int(st, 7, j->dead);
	if (j->error != NULL)
		sqlite3_bind_text(st, 8, j->error, -1, SQLITE_STATIC);
	return sqlite_step(s, STMT_UPDATE, "cannot update a job", err);
}

/* Writes one small row: whether the file takes writes again. */
static int
sqlite_touch(void *state, uint64_t now, char *err)
{
	struct sqlite_store	*s = state;

	sqlite3_bind_int64(s->stmt[STMT_TOUCH], 1, (int64_t)now);
	return sqlite_step(s, STMT_TOUCH, "cannot write", err);
}

static int
sqlite_del(void *state, const uint8_t *id, char *err)
{
	struct sqlite_store	*s = state;

	sqlite_bind_bytes(s->stmt[STMT_DEL], 1, id, PROTO_ID_LEN, false);
	return sqlite_step(s, STMT_DEL, "cannot delete a job", err);
}

/* A column's bytes and length; "" for NULL. */
static const void *
sqlite_col(sqlite3_stmt *st, int i, uint32_t *len, bool text)
{
	const void	*p = text ? (const void *)sqlite3_column_text(st, i) :
			    sqlite3_column_blob(st, i);

	*len = (uint32_t)sqlite3_column_bytes(st, i);
	return p != NULL ? p : "";
}

/* Calls cb for every row, in seq order. */
static int
sqlite_load(void *state, int (*cb)(const struct sb_stored *, void *),
    void *arg, char *err)
{
	static const char	 sql[] = "SELECT id, fn, payload, meta, uniq, "
	    "priority, attempts, max_attempts, retry_on_error, failures, "
	    "backoff_ms, timeout_ms, deadline, due, taken_at, dead, error "
	    "FROM jobs ORDER BY seq";
	struct sqlite_store	*s = state;
	struct sb_stored	 j;
	sqlite3_stmt		*st;
	uint32_t		 idlen;
	int			 r, ret = 0;

	if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK)
		return sqlite_fail(s, "cannot read its jobs", err);
	while ((r = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&j, 0, sizeof(j));
		j.id = sqlite_col(st, 0, &idlen, false);
		j.fn = sqlite_col(st, 1, &j.fn_len, true);
		j.payload = sqlite_col(st, 2, &j.payload_len, false);
		j.meta = sqlite_col(st, 3, &j.meta_len, false);
		j.unique = sqlite_col(st, 4, &j.unique_len, true);
		if (idlen != PROTO_ID_LEN) {
			snprintf(err, STORE_ERRLEN, "store %s: a job's id is "
			    "%u bytes long, not %d", s->path, idlen,
			    PROTO_ID_LEN);
			ret = -1;
			break;
		}
		j.priority = sqlite3_column_int(st, 5);
		j.attempts = (uint32_t)sqlite3_column_int64(st, 6);
		j.max_attempts = (uint32_t)sqlite3_column_int64(st, 7);
		j.retry_on_error = (uint32_t)sqlite3_column_int64(st, 8);
		j.failures = (uint32_t)sqlite3_column_int64(st, 9);
		j.backoff_ms = (uint64_t)sqlite3_column_int64(st, 10);
		j.timeout_ms = (uint64_t)sqlite3_column_int64(st, 11);
		j.deadline = (uint64_t)sqlite3_column_int64(st, 12);
		j.due = (uint64_t)sqlite3_column_int64(st, 13);
		j.taken_at = (uint64_t)sqlite3_column_int64(st, 14);
		j.dead = sqlite3_column_int(st, 15) != 0;
		j.error = (const char *)sqlite3_column_text(st, 16);
		if ((ret = cb(&j, arg)) != 0)
			break;
	}
	if (ret == 0 && r != SQLITE_DONE)
		ret = sqlite_fail(s, "cannot read its jobs", err);
	sqlite3_finalize(st);
	return ret;
}

static int64_t
sqlite_count(void *state)
{
	int64_t	n = 0;
	char	err[STORE_ERRLEN];

	if (sqlite_int(state, "SELECT count(*) FROM jobs", &n, err) != 0)
		return -1;
	return n;
}

const struct store_backend store_sqlite = {
	.name = "sqlite",
	.open = sqlite_open,
	.load = sqlite_load,
	.begin = sqlite_begin,
	.put = sqlite_put,
	.update = sqlite_update,
	.del = sqlite_del,
	.touch = sqlite_touch,
	.commit = sqlite_commit,
	.sync = sqlite_sync,
	.rollback = sqlite_rollback,
	.count = sqlite_count,
	.close = sqlite_close,
};
