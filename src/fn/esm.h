/* SPDX-License-Identifier: Apache-2.0
 *
 * esm.h -- event-source mappings: Lambda's Kinesis poller, pushed by the stream engine.
 *
 * An esm_t owns DATA/esm/ (LMDB: "map" = mapping configurations by UUID, "ckpt" = one checkpoint
 * per mapping and shard) and runs every enabled mapping: for each shard of the mapped stream it
 * reads records from the slog, filters them, batches them and invokes the function through the
 * functions engine (fn_invoke_wait), then checkpoints.  Semantics are AWS's
 * (https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html):
 *
 *   BatchSize (1-10000, default 100), MaximumBatchingWindowInSeconds (0-300), StartingPosition
 *   TRIM_HORIZON | LATEST | AT_TIMESTAMP (+ StartingPositionTimestamp), Enabled,
 *   ParallelizationFactor (1-10: up to N batches of one shard at once, records of one partition
 *   key stay in order), MaximumRetryAttempts (-1 = until the record expires, 0-10000),
 *   MaximumRecordAgeInSeconds (-1, 60-604800), BisectBatchOnFunctionError,
 *   FunctionResponseTypes ["ReportBatchItemFailures"], DestinationConfig.OnFailure.Destination
 *   (a Kinesis stream ARN here), TumblingWindowInSeconds (0-900), FilterCriteria.
 *
 * Invariants
 *   - Checkpoints are durable (LMDB commit) after the records they cover were processed, so
 *     after a crash processing resumes at the last checkpoint: at-least-once, never a gap.
 *   - Per shard, records reach the function in sequence order; with ParallelizationFactor N the
 *     shard's records are split into N lanes by a hash of the partition key, so order holds per
 *     key.  A shard's checkpoint is the lowest record not yet processed in any lane.
 *   - After a reshard a child shard starts only when all its parents are finished (read to
 *     their end and checkpointed), so a key's records are processed in order across shards.
 *   - A record is skipped only by policy: it does not match FilterCriteria (dropped, as AWS),
 *     or it exceeded MaximumRecordAgeInSeconds or MaximumRetryAttempts -- then it is reported
 *     to the OnFailure destination (AWS's on-failure record with the batch's shard and sequence
 *     range) before the checkpoint moves past it.  Without a destination it is logged.
 *   - Push, not poll: the stream engine's append hook wakes a shard's reader within the commit
 *     cycle that made records visible; a 1 s timer is only a fallback.
 *   - Bisection (BisectBatchOnFunctionError) splits a failed batch in halves, first half first,
 *     without consuming retries; each (sub)batch counts its own retries.  A partial batch
 *     response checkpoints up to the first failed item and retries from it (counts as a retry);
 *     with bisection the rest is split at that item instead: the item alone (its failed attempt
 *     counted), then the records after it as a new batch -- so a
 *     record the function names costs its retries, not a bisection (esm_run.c, process_batch).
 *   - Tumbling windows are aligned to multiples of the window since the epoch, by record
 *     arrival time; a batch never spans windows; the state returned by an invoke is passed to
 *     the next one of the window and checkpointed with it; once the window has ended (wall clock
 *     past its end + opts.window_grace_ms) a final invoke (isFinalInvokeForWindow) carries the
 *     window's remaining records, and its state is dropped.
 *
 * Thread rules: every function is thread-safe.  Mapping changes are durable when the call
 * returns; the pollers pick them up asynchronously (State goes Creating/Updating/Enabling/
 * Disabling -> Enabled/Disabled; Deleting -> gone).  Each shard of an enabled mapping has a
 * reader thread and ParallelizationFactor lane threads.
 *
 * Caveats
 *   - TumblingWindowInSeconds requires ParallelizationFactor 1 (state is per shard).  Fix: use
 *     one or the other per mapping.
 *   - A record is in a window by its arrival time, which the stream engine stamps when it
 *     commits the record; a commit that takes longer than opts.window_grace_ms could make a
 *     record of an ended window arrive after its final invoke: it then goes to the next window.
 *   - OnFailure destinations other than Kinesis streams (SQS, SNS, S3) are refused.
 *   - ParallelizationFactor is a maximum: a read that fits one batch and finds every lane idle
 *     goes to one lane as one batch (fewer, fuller invocations at moderate load); what is read
 *     while lanes are busy goes to each key's own lane as before.  Records read with a record
 *     that is being retried wait with it (and the later records of their keys wait for them), as
 *     with ParallelizationFactor 1; with MaximumRetryAttempts -1 a poison record can so stop
 *     more of the shard than its own lane.  Fix: a finite MaximumRetryAttempts or
 *     MaximumRecordAgeInSeconds (with an OnFailure destination).
 */
#ifndef FN_ESM_H
#define FN_ESM_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "fn/fn.h"
#include "log/slog.h"

#define ESM_UUID_LEN 36
#define ESM_MAX_ARN 300
#define ESM_MAX_FILTERS 5
#define ESM_MAX_PATTERN 4096

enum { ESM_TRIM_HORIZON = 0, ESM_LATEST = 1, ESM_AT_TIMESTAMP = 2 };

/* A mapping's configuration.  Input to esm_create (computed fields ignored), output of the
 * getters.  filter_criteria is owned (free with esm_config_free). */
typedef struct esm_config {
    char uuid[ESM_UUID_LEN + 1];
    char function_name[FN_MAX_NAME + 1];  /* in: FunctionName as given (name or ARN) */
    char function_arn[256];               /* out */
    char source_arn[ESM_MAX_ARN]; /* EventSourceArn: arn:aws:kinesis:<r>:<acct>:stream/<n> */
    uint32_t batch_size; /* 0 in: default 100 */
    uint32_t max_batching_window_s;
    int starting_position; /* ESM_* */
    int64_t starting_ts_ms; /* AT_TIMESTAMP */
    int enabled;
    uint32_t parallelization; /* 0 in: default 1 */
    int32_t max_retry; /* -1: infinite */
    int32_t max_record_age_s; /* -1: infinite */
    int bisect;
    int report_item_failures;
    char on_failure[ESM_MAX_ARN]; /* "" when none */
    uint32_t tumbling_window_s;
    char *filter_criteria; /* {"Filters":[{"Pattern":"..."}]} as JSON text; NULL */
    /* out */
    int64_t last_modified_ms;
    char state[16]; /* Creating Enabling Enabled Disabling Disabled
                                             Updating Deleting */
    char state_reason[64]; /* StateTransitionReason */
    char last_result[128]; /* LastProcessingResult */
} esm_config_t;

void esm_config_free(esm_config_t *c); /* frees filter_criteria; accepts NULL */
/* Defaults of AWS for every field (batch 100, parallelization 1, retries -1, age -1,
 * enabled). */
void esm_config_defaults(esm_config_t *c);

/* UpdateEventSourceMapping: a field applies when its has_* flag is set. */
typedef struct esm_update {
    int has_function, has_batch_size, has_window, has_enabled, has_parallelization, has_retry,
        has_age, has_bisect, has_response_types, has_destination, has_tumbling, has_filters;
    const char *function_name;
    uint32_t batch_size, max_batching_window_s, parallelization, tumbling_window_s;
    int enabled, bisect, report_item_failures;
    int32_t max_retry, max_record_age_s;
    const char *on_failure; /* "" removes it */
    const char *filter_criteria; /* NULL or "" removes them */
} esm_update_t;

typedef struct esm esm_t;

typedef struct esm_opts {
    const char *region; /* NULL: "us-east-1" */
    int64_t age_unit_ms; /* ms per second of MaximumRecordAgeInSeconds; 0: 1000
                                             (tests shrink it: 60 "seconds" at 10 ms = 0.6 s) */
    int64_t window_grace_ms; /* after a tumbling window's end; 0: 200 */
    int64_t retry_backoff_ms; /* first retry delay, doubled up to 1 s; 0: 20 */
    int no_sync; /* tests only */
} esm_opts_t;

/* Open DATA/esm (created if missing) and load the mappings; nothing runs until esm_start.
 * lg and fn must outlive the esm.  TR_EIO / TR_ECORRUPT with the path in the message. */
int esm_open(const char *data_dir, slog_t *lg, fn_t *fn, const esm_opts_t *opts, esm_t **out,
             tr_err *err);
/* Install the append hook and start the pollers of enabled mappings (after fn_start). */
int esm_start(esm_t *e, tr_err *err);
/* Stop every poller (an invocation in flight is waited for), flush checkpoints, remove the
 * hook, close LMDB.  Call before fn_close and slog_close.  Accepts NULL. */
void esm_close(esm_t *e);

/* ---- control plane (synchronous, durable) --------------------------------------------------- */

/* Validate and store a mapping; *out gets it (State "Creating").  TR_EINVAL (parameter out of
 * range, unknown or foreign stream, bad FilterCriteria, ... -- the message says which),
 * TR_ENOTFOUND (function), TR_EEXISTS (this function already maps this stream). */
int esm_create(esm_t *e, const esm_config_t *in, esm_config_t *out, tr_err *err);
/* TR_ENOTFOUND. */
int esm_get(esm_t *e, const char *uuid, esm_config_t *out, tr_err *err);
/* Mappings in UUID order after marker, optionally only of one function (name or ARN) and/or
 * one source ARN; *out is an array to free with esm_config_free each, then free(); *next a
 * malloc'd marker or NULL. */
int esm_list(esm_t *e, const char *function_name, const char *source_arn, const char *marker,
             size_t max, esm_config_t **out, size_t *n, char **next, tr_err *err);
/* TR_ENOTFOUND, TR_EINVAL, TR_EINUSE (being created, updated or deleted). */
int esm_update(esm_t *e, const char *uuid, const esm_update_t *upd, esm_config_t *out, tr_err *err);
/* Delete (State "Deleting" in *out; gone once its pollers stopped).  TR_ENOTFOUND, TR_EINUSE. */
int esm_delete(esm_t *e, const char *uuid, esm_config_t *out, tr_err *err);

/* ---- metrics ---------------------------------------------------------------------------------- */

typedef struct esm_stats {
    char uuid[ESM_UUID_LEN + 1];
    char function_name[FN_MAX_NAME + 1];
    int64_t iterator_age_ms; /* age of the last record of the last batch invoked */
    uint64_t invocations, errors, records_in, records_filtered, records_discarded;
    uint32_t shards_active;
} esm_stats_t;

/* Snapshot of every mapping's counters; *out malloc'd. */
int esm_stats_list(esm_t *e, esm_stats_t **out, size_t *n);
/* Prometheus text: tributary_esm_iterator_age_milliseconds{uuid,function_name} and counters. */
void esm_metrics_prometheus(esm_t *e, tr_buf *out);

/* ---- filters (esm_filter.c; exposed for tests) ------------------------------------------------ */

typedef struct esm_filter esm_filter_t;
/* Compile FilterCriteria JSON ({"Filters":[{"Pattern":"<json>"}, ...]}).  *out NULL when there
 * are no filters.  TR_EINVAL with the reason (AWS's event-pattern grammar: exact values, null,
 * "", prefix, suffix, equals-ignore-case, anything-but, numeric, exists, cidr, wildcard). */
int esm_filter_compile(const char *criteria_json, esm_filter_t **out, tr_err *err);
void esm_filter_free(esm_filter_t *f);
/* Whether a Kinesis record passes (any filter matches).  data need not be JSON (then only
 * metadata patterns can match). */
int esm_filter_match(const esm_filter_t *f, const char *pk, size_t pk_len, const char *seq,
                     int64_t arrival_ms, const uint8_t *data, size_t data_len);

#endif
