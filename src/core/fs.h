/* SPDX-License-Identifier: Apache-2.0
 *
 * fs.h -- small filesystem helpers for durable file replacement.
 *
 * A file written to a temporary name, fsynced and renamed into place is durable only once the
 * directory holding the new name is fsynced too.
 */
#ifndef TR_FS_H
#define TR_FS_H

/* fsync directory dir.  0, or -1 with errno set. */
int tr_fsync_dir(const char *dir);
/* fsync the directory containing path ("." for a bare name).  0, or -1 with errno set. */
int tr_fsync_parent(const char *path);

/* mkdir -p with mode 0755: creates each missing directory of path and fsyncs its parent, so the
 * new entries survive a crash.  An existing directory is success.  Returns 0, or -1 with errno
 * set (ENAMETOOLONG past PATH_MAX). */
int tr_mkdir_p(const char *path);

/* Remove path and, if it is a directory, everything beneath it (symbolic links are removed, never
 * followed).  A missing path is success.  Returns 0, or -1 with errno set by the first failure;
 * it goes on past failures and removes what it can. */
int tr_rmtree(const char *path);

#endif
