/* SPDX-License-Identifier: Apache-2.0
 *
 * sandbox.h -- least privilege for function processes (provided bootstraps, native hosts).
 *
 * A function runs as the server's user, so without a fence it could read the server's
 * credentials file, other functions' code and the LMDB files, and write anywhere the server can.
 * Where the kernel has Landlock (Linux >= 5.13, enabled), each function process is confined
 * before it runs any user code:
 *
 *   read + execute      its package (LAMBDA_TASK_ROOT), /usr /bin /sbin /lib* /opt, /etc but its
 *                       secrets (shadow, gshadow, sudoers*, ssh/, ssl/ but certs/, security/,
 *                       credstore*), --lambda-read-dir directories
 *   read only           /proc /sys (the kernel's Landlock also bars ptrace and /proc/PID/environ,
 *                       fd/, mem of processes outside the sandbox: the server's)
 *   read + write        /dev/null zero full random urandom (not disks, loop devices, kmsg, shm:
 *                       a root server's functions would own them; not terminals: a function
 *                       runs in a session of its own, without a controlling terminal, so it
 *                       can neither write to the server's nor push input into it)
 *   everything          its own scratch directory (DATA/fn-tmp/tributary-fn-XXXXXX, fresh, 0700,
 *                       removed when the process ends; its /tmp where namespaces allow, see
 *                       fn_sandbox_tmp_plan, else $TMPDIR), --lambda-write-dir directories
 *   nothing             the rest: the data directory (credentials, LMDB, other functions' code,
 *                       logs) -- also where it lies beneath a readable directory of the lists
 *                       above, e.g. --data /opt/tributary/data (fn_sandbox_set_private); not
 *                       beneath a --lambda-write-dir, which is given whole (warned at start) --, home
 *                       directories, the server's /tmp, /var, /run (but /run/systemd/resolve,
 *                       for DNS)
 *
 * plus no_new_privs (no set-uid escalation), an empty capability bounding set and no
 * capabilities (a server running as root starts functions without root's powers), and, with
 * Landlock ABI >= 6, no signals to processes outside the sandbox.  The network is not restricted:
 * a function reaches its Runtime API and the server's port like any local client (and needs
 * credentials to be served there).
 *
 * Where Landlock is absent, functions run unconfined (only the environment, descriptor and
 * capability hygiene apply); fn_sandbox_abi() says so and the server logs it once at start.
 *
 * Use: the parent makes a scratch dir (fn_sandbox_scratch_new), a ruleset (fn_sandbox_ruleset) and
 * a /tmp plan (fn_sandbox_tmp_plan) before fork; the child calls fn_sandbox_tmp_apply then
 * fn_sandbox_enter (async-signal-safe: system calls only) before exec or, in the native host,
 * before loading user code (the ruleset fd and the plan can be passed to another process).  The
 * parent removes the scratch dir when the process is gone (fn_sandbox_scratch_free).
 *
 * Thread rules: fn_sandbox_set_dirs, fn_sandbox_set_private and fn_sandbox_set_scratch_root
 * before any function starts
 * (main.c at start-up); the rest may be called from any thread.
 */
#ifndef FN_SANDBOX_H
#define FN_SANDBOX_H

#include <stddef.h>

#include "core/err.h"

/* The Landlock ABI version this kernel offers (>= 1), or 0 when functions run unconfined; then
 * *why (if not NULL) gets a static sentence saying why.  Probed once, cached. */
int fn_sandbox_abi(const char **why);

/* Extra directories every function may read (and execute) / read and write.  The arrays are
 * copied.  Returns 0, TR_EINVAL for a relative path (message in err). */
int fn_sandbox_set_dirs(const char *const *read_dirs, size_t n_read, const char *const *write_dirs,
                        size_t n_write, tr_err *err);

/* The directory no function may reach: the data directory (resolved with realpath here).  Rules
 * for directories that contain it (/opt, a --lambda-read-dir, ...) are split around it.  Call it
 * after fn_sandbox_set_dirs: a --lambda-*-dir inside it is refused.  Returns 0, TR_EIO (cannot
 * resolve dir) or TR_EINVAL (a --lambda-*-dir inside it); err says which. */
int fn_sandbox_set_private(const char *dir, tr_err *err);

/* A Landlock ruleset for a function whose package is code_dir and scratch dir is scratch (both
 * absolute).  On success returns 0 with *fd the ruleset (close-on-exec, owned by the caller), or
 * *fd = -1 when the kernel has no Landlock (run unconfined).  Fails with TR_EIO and err naming the
 * path when code_dir or scratch cannot be opened (do not start the function). */
int fn_sandbox_ruleset(const char *code_dir, const char *scratch, int *fd, tr_err *err);

/* In the function's process: no_new_privs, drop every capability, then (ruleset_fd >= 0)
 * landlock_restrict_self.  Async-signal-safe.  Returns 0 or -errno of the call that failed. */
int fn_sandbox_enter(int ruleset_fd);

/* A private /tmp (Linux mount namespace; a user namespace too when not root): the function sees
 * its scratch directory as /tmp, and under it only the directories it needs that live in the
 * server's /tmp (its package -- when the data directory is there -- and --lambda-*-dir ones),
 * bound at their own paths; the server's /tmp (and a data directory in it) is out of sight.
 *
 * fn_sandbox_tmp_plan (parent, before fork): creates those directories' mount points inside
 * scratch and returns the plan in *plan (malloc'd text the caller frees), or *plan = NULL when
 * /tmp is shared on purpose (a --lambda-*-dir is /tmp itself) or scratch is not set.  Returns 0
 * or TR_EIO (a mount point could not be made; err says which).
 *
 * fn_sandbox_tmp_apply (child, before fn_sandbox_enter; async-signal-safe): builds it.  Returns 0
 * (then $TMPDIR should be /tmp) or -errno: namespaces are not allowed here (e.g. unprivileged user
 * namespaces disabled), and the function keeps the server's /tmp -- still fenced by Landlock --
 * with $TMPDIR its scratch directory. */
int fn_sandbox_tmp_plan(const char *code_dir, const char *scratch, char **plan, tr_err *err);
int fn_sandbox_tmp_apply(const char *plan);

/* Where scratch directories go: dir (absolute; main.c gives DATA/fn-tmp, so they count on the
 * data disk and a crash leaves nothing in the system's /tmp).  Creates it (0700) and removes what
 * a previous run left in it -- call it once at start-up, before any function runs, with the data
 * directory locked.  Without it they go to $TMPDIR or /tmp.  Returns 0 or TR_EINVAL / TR_EIO. */
int fn_sandbox_set_scratch_root(const char *dir, tr_err *err);

/* A fresh scratch directory for one function process: "<root>/tributary-fn-XXXXXX" (root as set
 * above, else $TMPDIR or /tmp), mode 0700, written to out (cap >= 64).  Returns 0 or a negative
 * TR_E* code with err set. */
int fn_sandbox_scratch_new(char *out, size_t cap, tr_err *err);

/* Remove a scratch directory and everything in it (symbolic links are removed, never
 * followed).  NULL or "" is a no-op. */
void fn_sandbox_scratch_free(const char *dir);

#endif
