/*
 * shard_int.h -- private hooks of the shard log (shard.c), for unit and crash tests only.
 *
 * Storage I/O of a shard goes through a slog_io_t vtable so a test can inject short writes,
 * ENOSPC, failed fsyncs and so on (SQLite src/test6.c).  Every member behaves like the POSIX
 * call it is named after: it returns -1 and sets errno on failure.  Short transfers are legal
 * and are retried by the caller; EINTR is retried by the caller.
 *
 * Thread rules: slog__io_set_default affects shards opened afterwards and must not race with
 * slog_shard_open.  slog__shard_set_io swaps one shard's vtable; call it only while no other
 * thread uses the shard (between open and the first read, typically).  Fix: set it right
 * after slog_shard_open, before starting reader threads.
 */
#ifndef SLOG_SHARD_INT_H
#define SLOG_SHARD_INT_H

#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "log/shard.h"

typedef struct slog_io {
    int (*open)(const char *path, int flags, mode_t mode);
    int (*close)(int fd);
    ssize_t (*pread)(int fd, void *buf, size_t n, off_t off);
    ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
    int (*fdatasync)(int fd);     /* segment files */
    int (*fsync)(int fd);         /* the shard directory after creating or deleting files */
    int (*ftruncate)(int fd, off_t len);
    int (*fstat)(int fd, struct stat *st);
    int (*unlink)(const char *path);
    int (*rename)(const char *from, const char *to);
} slog_io_t;

/* The real thing: thin wrappers over the POSIX calls. */
extern const slog_io_t slog__io_posix;

/* I/O for shards opened from now on; NULL restores slog__io_posix.  Borrowed: must outlive
 * those shards. */
void slog__io_set_default(const slog_io_t *io);
/* I/O of one open shard from now on; NULL restores slog__io_posix. */
void slog__shard_set_io(slog_shard_t *sh, const slog_io_t *io);
/* Number of segment files the shard currently holds (active one included). */
size_t slog__shard_nsegs(slog_shard_t *sh);

#endif
