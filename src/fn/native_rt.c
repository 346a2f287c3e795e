/* SPDX-License-Identifier: Apache-2.0
 *
 * native_rt.c -- the native runtime as a plug-in of the functions engine (fn.h's fn_runtime_t).
 *
 * Separate from native.c so that a program (or a unit test) can drive the supervisor without
 * linking the engine.  Each engine invocation becomes one supervisor job whose tag is the fn_inv_t:
 * logs go to fn_inv_log, the outcome to fn_inv_complete, and the engine's cancel (deadline)
 * kills the job's host.
 */
#include "fn/native.h"

static void rt_log(void *tag, const char *text, size_t len) { fn_inv_log(tag, text, len); }

static void rt_done(void *tag, const char *function_error, const char *error_message,
                    const uint8_t *payload, size_t len) {
    fn_inv_complete(tag, function_error, error_message, payload, len);
}

static int rt_invoke(void *arg, fn_inv_t *inv, const fn_inv_info_t *info, tr_err *err) {
    return fn_native_submit(arg, info, rt_log, rt_done, inv, err);
}

static void rt_cancel(void *arg, fn_inv_t *inv) { fn_native_cancel(arg, inv); }

static void rt_release(void *arg, const char *function_name) {
    fn_native_release(arg, function_name);
}

static void rt_shutdown(void *arg) { (void)arg; /* main destroys the fn_native_t after fn_close */ }

static const fn_runtime_t native_runtime = {
    .name = FN_NATIVE_RUNTIME,
    .invoke = rt_invoke,
    .cancel = rt_cancel,
    .release = rt_release,
    .shutdown = rt_shutdown,
};

const fn_runtime_t *fn_native_runtime(void) { return &native_runtime; }
