/*
 * fs.h -- small filesystem helpers for durable file replacement.
 *
 * A file written to a temporary name, fsynced and renamed into place is durable only once the
 * directory holding the new name is fsynced too: tr_fsync_parent(path) does that last step.
 */
#ifndef TR_FS_H
#define TR_FS_H

/* fsync the directory containing path.  0, or -1 with errno set. */
int tr_fsync_parent(const char *path);

#endif
