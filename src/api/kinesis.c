/* SPDX-License-Identifier: Apache-2.0
 *
 * kinesis.c -- the Kinesis Data Streams adapter: JSON 1.1 in, slog engine calls, JSON out.
 *
 * Every operation is one row of k_ops[] (name, handler).  A handler validates its input the
 * way Kinesis does -- shape constraints answer ValidationException with AWS's "N validation
 * errors detected: ..." text, semantic problems InvalidArgumentException -- calls the engine,
 * and writes the response.  Engine codes become AWS error types in api_error() only.
 *
 * PutRecord / PutRecords (deferred: the engine acknowledges on its commit thread after the
 * fsync) live in kinesis_put.c, with their fast path; kinesis_int.h holds what both files use.
 *
 * Shard iterators are opaque to clients: base64 of {version, stream id, shard, position,
 * issued-at} plus a truncated HMAC-SHA256 under a per-data-dir key, so a forged or garbled
 * iterator is refused and a deleted-and-recreated stream never serves old data.
 */
#include <fcntl.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "api/kinesis_int.h"
#include "api/kit.h"
#include "core/fs.h"
#include "core/mem.h"
#include "core/digest.h"
#include "core/tlog.h"

#define K_JSON "application/x-amz-json-1.1"
#define K_MAX_GET_BYTES (10u * 1024 * 1024)

/* ---- input helpers ------------------------------------------------------------------------- */

int api__kinesis_name_char(char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_' || ch == '.' || ch == '-';
}

static int k_name_ok(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!api__kinesis_name_char(s[i])) return 0;
    return 1;
}

static int k_digits_ok(const char *s, size_t n) {  /* 0|([1-9]\d{0,N}) */
    if (n == 0) return 0;
    if (s[0] == '0') return n == 1;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

static int k_arn_ok(const char *s, size_t n) {  /* arn:aws.*:kinesis:.*:\d{12}:stream/\S+ */
    (void)n;
    const char *k = strstr(s, ":kinesis:"), *st = k ? strstr(k + 8, ":stream/") : NULL;
    if (strncmp(s, "arn:aws", 7) || !st || st - (k + 8) < 13 || st[-13] != ':' || !st[8]) return 0;
    for (const char *d = st - 12; d < st; d++)
        if (*d < '0' || *d > '9') return 0;
    for (const char *x = st + 8; *x; x++)
        if (*x == ' ' || *x == '\t' || *x == '\n' || *x == '\r' || *x == '\f' || *x == '\v')
            return 0;
    return 1;
}

static const api_pattern_t k_pat_name = {"[a-zA-Z0-9_.-]+", k_name_ok};
const api_pattern_t api__kinesis_pat_digits = {"0|([1-9]\\d{0,38})", k_digits_ok};
static const api_pattern_t k_pat_arn = {"arn:aws.*:kinesis:.*:\\d{12}:stream/\\S+", k_arn_ok};
#define K_PAT_NONE NULL
#define K_PAT_NAME (&k_pat_name)
#define K_PAT_DIGITS (&api__kinesis_pat_digits)
#define K_PAT_ARN (&k_pat_arn)

/* A StreamARN must name a stream of this account in this region, as on AWS: another account's
 * stream is AccessDeniedException (Tributary has no resource policies that could allow it),
 * another region's is not reachable from this endpoint (ResourceNotFoundException).  0 when
 * ours, else -1 with the error answered. */
static int k_arn_owned(api_call_t *c, const char *arn) {
    char region[64], account[32];
    api_arn_fields(arn, region, account);
    switch (api_arn_owner(c->ctx, arn)) {
    case API_ARN_OTHER_REGION:
        return api_fail(c, 400, "ResourceNotFoundException",
                        "Stream %s under account %s not found: StreamARN %s is outside this "
                        "endpoint's partition and region (aws, %s); call that region's endpoint",
                        strstr(arn, ":stream/") + 8, account, arn, c->ctx->region);
    case API_ARN_OTHER_ACCOUNT:
        return api_fail(c, 400, "AccessDeniedException",
                        "User: arn:aws:iam::%s:root is not authorized to perform: kinesis:%s on "
                        "resource: %s because no resource-based policy allows the kinesis:%s "
                        "action (this server's streams are in account %s)",
                        API_ACCOUNT_ID, c->op->name, arn, c->op->name, API_ACCOUNT_ID);
    default: return 0;
    }
}

/* Resolve StreamName / StreamARN into k_name(c); ValidationException / InvalidArgument. */
int api__kinesis_stream(api_call_t *c, int required) {
    const char *name = NULL, *arn = NULL;
    if (api_get_str(c, c->in, "StreamName", API_OPT, 1, 128, K_PAT_NAME, &name, NULL))
        return API_FAIL;
    if (api_get_str(c, c->in, "StreamARN", API_OPT, 1, 2048, K_PAT_ARN, &arn, NULL))
        return API_FAIL;
    if (c->n_verr) return 0;  /* reported with the others */
    const char *from_arn = NULL;
    if (arn) {
        if (k_arn_owned(c, arn)) return API_FAIL;
        from_arn = strstr(arn, ":stream/") + 8;
        if (strlen(from_arn) > SLOG_MAX_STREAM_NAME)
            return api_fail(c, 400, "InvalidArgumentException",
                            "StreamARN %s names no valid stream", arn);
    }
    if (name && from_arn && strcmp(name, from_arn))
        return api_fail(
            c, 400, "InvalidArgumentException",
            "StreamARN %s and StreamName %s refer to different streams; pass one of them", arn,
            name);
    if (!name && !from_arn) {
        if (!required) return 0;
        return api_fail(c, 400, "InvalidArgumentException",
                        "Either StreamName or StreamARN should be provided.");
    }
    snprintf(k_name(c), SLOG_MAX_STREAM_NAME + 1, "%s", name ? name : from_arn);
    return 0;
}

/* "shardId-000000000003" -> 3; also accepts plain digits.  -1 when malformed. */
static long long k_shard_index(const char *s) {
    const char *p = s;
    if (!strncmp(p, "shardId-", 8)) p += 8;
    if (!*p || strlen(p) > 12) return -1;
    long long v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

/* ---- output helpers ------------------------------------------------------------------------ */

static void k_put_ts(tr_buf *b, int64_t ms) {
    tr_buf_printf(b, "%lld.%03lld", (long long)(ms / 1000), (long long)(ms % 1000));
}

static void k_put_arn(api_call_t *c, tr_buf *b, const char *name) {
    tr_buf_printf(b, "\"arn:aws:kinesis:%s:%s:stream/%s\"", c->ctx->region, API_ACCOUNT_ID, name);
}

void api__kinesis_put_shard_id(tr_buf *b, uint32_t idx) {
    tr_buf_printf(b, "\"shardId-%012u\"", idx);
}

static void k_put_hash(tr_buf *b, slog_hash_t h) {
    char t[40];
    slog_hash_format(h, t);
    tr_buf_printf(b, "\"%s\"", t);
}

void api__kinesis_put_seq(tr_buf *b, uint32_t shard, uint64_t counter) {
    char t[SLOG_SEQ_STRLEN + 1];
    slog_seq_format(shard, counter, t);
    tr_buf_printf(b, "\"%s\"", t);
}

static void k_put_shard(tr_buf *b, const slog_shard_info_t *s) {
    tr_buf_puts(b, "{\"ShardId\":");
    api__kinesis_put_shard_id(b, s->index);
    if (s->parent != SLOG_NO_SHARD) {
        tr_buf_puts(b, ",\"ParentShardId\":");
        api__kinesis_put_shard_id(b, s->parent);
    }
    if (s->adjacent_parent != SLOG_NO_SHARD) {
        tr_buf_puts(b, ",\"AdjacentParentShardId\":");
        api__kinesis_put_shard_id(b, s->adjacent_parent);
    }
    tr_buf_puts(b, ",\"HashKeyRange\":{\"StartingHashKey\":");
    k_put_hash(b, s->hash_start);
    tr_buf_puts(b, ",\"EndingHashKey\":");
    k_put_hash(b, s->hash_end);
    tr_buf_puts(b, "},\"SequenceNumberRange\":{\"StartingSequenceNumber\":");
    api__kinesis_put_seq(b, s->index, s->seq_start);
    if (s->closed) {
        tr_buf_puts(b, ",\"EndingSequenceNumber\":");
        api__kinesis_put_seq(b, s->index,
                             s->seq_end > s->seq_start ? s->seq_end - 1 : s->seq_start);
    }
    tr_buf_puts(b, "}}");
}

static const char *k_mode_name(int mode) {
    return mode == SLOG_MODE_ON_DEMAND ? "ON_DEMAND" : "PROVISIONED";
}

static int k_describe(api_call_t *c, slog_stream_info_t *info) {
    tr_err err;
    tr_err_clear(&err);
    int rc = slog_stream_describe(c->ctx->slog, k_name(c), info, &err);
    if (rc) return api_error(c, rc, &err);
    return 0;
}

/* ---- control plane ------------------------------------------------------------------------- */

static int k_parse_tags(api_call_t *c, json_t *obj, slog_tag_t **tags, size_t *n) {
    *tags = NULL;
    *n = 0;
    if (!obj || json_is_null(obj)) return 0;
    if (!json_is_object(obj))
        return api_fail(c, 400, "SerializationException",
                        "Tags must be a JSON object of key to value");
    size_t cnt = json_object_size(obj);
    if (cnt < 1 || cnt > 200) {
        char v[32];
        snprintf(v, sizeof v, "%zu", cnt);
        api_verr(c, "tags", v, "Member must have length %s",
                 cnt < 1 ? "greater than or equal to 1" : "less than or equal to 200");
        return 0;
    }
    *tags = tr_xcalloc(cnt, sizeof **tags);
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val) {
        if (!json_is_string(val)) {
            free(*tags);
            *tags = NULL;
            return api_fail(c, 400, "SerializationException", "Tag %s must have a string value",
                            key);
        }
        (*tags)[*n].key = (char *)key;
        (*tags)[*n].value = (char *)json_string_value(val);
        (*n)++;
    }
    return 0;
}

static int k_create_stream(api_call_t *c) {
    const char *name;
    long long shards = 0;
    int has_shards;
    if (api_get_str(c, c->in, "StreamName", API_REQ, 1, 128, K_PAT_NAME, &name, NULL))
        return API_FAIL;
    if (api_get_int(c, c->in, "ShardCount", API_OPT, 1, 100000, &shards, &has_shards))
        return API_FAIL;
    int mode = SLOG_MODE_PROVISIONED;
    json_t *md = json_object_get(c->in, "StreamModeDetails");
    if (md && !json_is_null(md)) {
        const char *m;
        if (!json_is_object(md))
            return api_fail(c, 400, "SerializationException",
                            "StreamModeDetails must be an object");
        if (api_get_str(c, md, "StreamMode", API_REQ, 0, 64, K_PAT_NONE, &m, NULL)) return API_FAIL;
        if (m && !strcmp(m, "ON_DEMAND")) mode = SLOG_MODE_ON_DEMAND;
        else if (m && strcmp(m, "PROVISIONED"))
            api_verr(c, "streamModeDetails.streamMode", m,
                     "Member must satisfy enum value set: [PROVISIONED, ON_DEMAND]");
    }
    slog_tag_t *tags;
    size_t n_tags;
    if (k_parse_tags(c, json_object_get(c->in, "Tags"), &tags, &n_tags)) return API_FAIL;
    if (api_verr_flush(c)) {
        free(tags);
        return API_FAIL;
    }
    if (mode == SLOG_MODE_PROVISIONED && !has_shards) {
        free(tags);
        return api_fail(c, 400, "InvalidArgumentException",
                        "ShardCount is required for a stream in PROVISIONED mode; pass ShardCount "
                        "or StreamModeDetails={StreamMode=ON_DEMAND}");
    }
    tr_err err;
    tr_err_clear(&err);
    int rc = slog_stream_create(c->ctx->slog, name,
                                mode == SLOG_MODE_ON_DEMAND ? 0 : (uint32_t)shards, mode, tags,
                                n_tags, &err);
    free(tags);
    if (rc) return api_error(c, rc, &err);
    tr_info("kinesis", "created stream %s (%s, %lld shards)", name, k_mode_name(mode),
            mode == SLOG_MODE_ON_DEMAND ? 0 : shards);
    return 0;
}

static int k_delete_stream(api_call_t *c) {
    if (api__kinesis_stream(c, 1)) return API_FAIL;
    json_t *e = json_object_get(c->in, "EnforceConsumerDeletion");
    if (e && !json_is_boolean(e) && !json_is_null(e))
        return api_fail(c, 400, "SerializationException",
                        "EnforceConsumerDeletion must be a boolean");
    if (api_verr_flush(c)) return API_FAIL;
    tr_err err;
    tr_err_clear(&err);
    int rc = slog_stream_delete(c->ctx->slog, k_name(c), &err);
    if (rc) return api_error(c, rc, &err);
    tr_info("kinesis", "deleted stream %s", k_name(c));
    return 0;
}

static int k_describe_stream(api_call_t *c) {
    long long limit = 100;
    int has_limit;
    const char *start;
    if (api__kinesis_stream(c, 1)) return API_FAIL;
    if (api_get_int(c, c->in, "Limit", API_OPT, 1, 10000, &limit, &has_limit)) return API_FAIL;
    if (api_get_str(c, c->in, "ExclusiveStartShardId", API_OPT, 1, 128, K_PAT_NAME, &start, NULL))
        return API_FAIL;
    if (api_verr_flush(c)) return API_FAIL;
    long long after = -1;
    if (start) after = k_shard_index(start);
    slog_stream_info_t info;
    if (k_describe(c, &info)) return API_FAIL;
    tr_buf *b = c->out;
    tr_buf_puts(b, "{\"StreamDescription\":{\"StreamName\":");
    tr_buf_json_str(b, info.name, strlen(info.name));
    tr_buf_puts(b, ",\"StreamARN\":");
    k_put_arn(c, b, info.name);
    tr_buf_printf(b, ",\"StreamStatus\":\"ACTIVE\",\"StreamModeDetails\":{\"StreamMode\":\"%s\"}",
                  k_mode_name(info.mode));
    tr_buf_puts(b, ",\"Shards\":[");
    long long emitted = 0;
    int more = 0;
    for (uint32_t i = 0; i < info.n_shards; i++) {
        if ((long long)info.shards[i].index <= after) continue;
        if (emitted == limit) {
            more = 1;
            break;
        }
        if (emitted) tr_buf_puts(b, ",");
        k_put_shard(b, &info.shards[i]);
        emitted++;
    }
    tr_buf_printf(b, "],\"HasMoreShards\":%s,\"RetentionPeriodHours\":%u,", more ? "true" : "false",
                  info.retention_hours);
    tr_buf_puts(b, "\"StreamCreationTimestamp\":");
    k_put_ts(b, info.created_ms);
    tr_buf_puts(
        b, ",\"EnhancedMonitoring\":[{\"ShardLevelMetrics\":[]}],\"EncryptionType\":\"NONE\"}}");
    slog_stream_info_free(&info);
    return 0;
}

static int k_describe_stream_summary(api_call_t *c) {
    if (api__kinesis_stream(c, 1)) return API_FAIL;
    if (api_verr_flush(c)) return API_FAIL;
    slog_stream_info_t info;
    if (k_describe(c, &info)) return API_FAIL;
    tr_buf *b = c->out;
    tr_buf_puts(b, "{\"StreamDescriptionSummary\":{\"StreamName\":");
    tr_buf_json_str(b, info.name, strlen(info.name));
    tr_buf_puts(b, ",\"StreamARN\":");
    k_put_arn(c, b, info.name);
    tr_buf_printf(b, ",\"StreamStatus\":\"ACTIVE\",\"StreamModeDetails\":{\"StreamMode\":\"%s\"}",
                  k_mode_name(info.mode));
    tr_buf_printf(b, ",\"RetentionPeriodHours\":%u,\"StreamCreationTimestamp\":",
                  info.retention_hours);
    k_put_ts(b, info.created_ms);
    tr_buf_printf(b,
                  ",\"EnhancedMonitoring\":[{\"ShardLevelMetrics\":[]}],\"EncryptionType\":"
                  "\"NONE\",\"OpenShardCount\":%u,\"ConsumerCount\":0}}",
                  info.open_shards);
    slog_stream_info_free(&info);
    return 0;
}

/* NextToken for ListStreams: base64 of the last name returned. */
static int k_list_streams(api_call_t *c) {
    long long limit = 100;
    int has_limit;
    const char *start, *token;
    if (api_get_int(c, c->in, "Limit", API_OPT, 1, 10000, &limit, &has_limit)) return API_FAIL;
    if (api_get_str(c, c->in, "ExclusiveStartStreamName", API_OPT, 1, 128, K_PAT_NAME, &start,
                    NULL))
        return API_FAIL;
    if (api_get_str(c, c->in, "NextToken", API_OPT, 1, 1048576, K_PAT_NONE, &token, NULL))
        return API_FAIL;
    if (api_verr_flush(c)) return API_FAIL;
    char after[SLOG_MAX_STREAM_NAME + 1] = "";
    if (token) {
        uint8_t dec[256];
        size_t tl = strlen(token);
        long n = tl < 300 ? tr_base64_decode(token, tl, dec) : -1;
        if (n <= 4 || n > SLOG_MAX_STREAM_NAME + 4 || memcmp(dec, "LS1:", 4))
            return api_fail(c, 400, "InvalidArgumentException",
                            "NextToken is not one this server issued; pass the NextToken of the "
                            "previous ListStreams response unchanged");
        memcpy(after, dec + 4, (size_t)n - 4);
        after[n - 4] = 0;
    } else if (start) {
        snprintf(after, sizeof after, "%s", start);
    }
    char **names = NULL;
    size_t n = 0;
    int more = 0;
    tr_err err;
    tr_err_clear(&err);
    int rc = slog_stream_list(c->ctx->slog, after[0] ? after : NULL, (size_t)limit, &names, &n,
                              &more, &err);
    if (rc) return api_error(c, rc, &err);
    tr_buf *b = c->out;
    tr_buf_puts(b, "{\"StreamNames\":[");
    for (size_t i = 0; i < n; i++) {
        if (i) tr_buf_puts(b, ",");
        tr_buf_json_str(b, names[i], strlen(names[i]));
    }
    tr_buf_printf(b, "],\"HasMoreStreams\":%s,\"StreamSummaries\":[", more ? "true" : "false");
    size_t emitted = 0;
    for (size_t i = 0; i < n; i++) {
        slog_stream_info_t info;
        if (slog_stream_describe(c->ctx->slog, names[i], &info, NULL))
            continue;  /* deleted meanwhile */
        if (emitted++) tr_buf_puts(b, ",");
        tr_buf_puts(b, "{\"StreamName\":");
        tr_buf_json_str(b, info.name, strlen(info.name));
        tr_buf_puts(b, ",\"StreamARN\":");
        k_put_arn(c, b, info.name);
        tr_buf_printf(b,
                      ",\"StreamStatus\":\"ACTIVE\",\"StreamModeDetails\":{\"StreamMode\":\"%s\"},"
                      "\"StreamCreationTimestamp\":",
                      k_mode_name(info.mode));
        k_put_ts(b, info.created_ms);
        tr_buf_puts(b, "}");
        slog_stream_info_free(&info);
    }
    tr_buf_puts(b, "]");
    if (more && n) {
        tr_buf tok = TR_BUF_INIT;
        tr_buf_puts(&tok, "LS1:");
        tr_buf_puts(&tok, names[n - 1]);
        tr_buf_puts(b, ",\"NextToken\":\"");
        tr_buf_base64(b, tok.data, tok.len);
        tr_buf_puts(b, "\"");
        tr_buf_free(&tok);
    }
    tr_buf_puts(b, "}");
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return 0;
}

/* ListShards NextToken: "LH1:" + stream id, last shard index, filter type, filter value,
 * issued-at -- all the state needed to continue, as AWS's token holds. */
enum { F_NONE, F_AFTER, F_AT_TRIM, F_FROM_TRIM, F_AT_LATEST, F_AT_TS, F_FROM_TS };

static int k_filter_type(const char *s) {
    static const char *names[] = {
        "",          "AFTER_SHARD_ID", "AT_TRIM_HORIZON", "FROM_TRIM_HORIZON",
        "AT_LATEST", "AT_TIMESTAMP",   "FROM_TIMESTAMP"};
    for (int i = 1; i < 7; i++)
        if (!strcmp(s, names[i])) return i;
    return -1;
}

static int k_shard_passes(const slog_stream_info_t *info, const slog_shard_info_t *s, int ftype,
                          long long after, int64_t ts) {
    if ((long long)s->index <= after) return 0;
    switch (ftype) {
    case F_AT_TRIM: {
        /* open at the trim horizon: no retained parent */
        for (uint32_t i = 0; i < info->n_shards; i++)
            if (info->shards[i].index == s->parent || info->shards[i].index == s->adjacent_parent)
                return 0;
        return 1;
    }
    case F_AT_LATEST: return !s->closed;
    case F_AT_TS: return s->created_ms <= ts && (!s->closed || s->closed_ms > ts);
    case F_FROM_TS: return !s->closed || s->closed_ms > ts;
    default: return 1;  /* NONE, AFTER (handled by `after`), FROM_TRIM */
    }
}

static int k_list_shards(api_call_t *c) {
    long long max = 1000;
    int has_max = 0, has_ts = 0, has_fts = 0;  /* set only when the member is read */
    const char *token, *start;
    int64_t created_ts = 0, fts = 0;
    if (api_get_str(c, c->in, "NextToken", API_OPT, 1, 1048576, K_PAT_NONE, &token, NULL))
        return API_FAIL;
    if (api_get_str(c, c->in, "ExclusiveStartShardId", API_OPT, 1, 128, K_PAT_NAME, &start, NULL))
        return API_FAIL;
    if (api_get_int(c, c->in, "MaxResults", API_OPT, 1, 10000, &max, &has_max)) return API_FAIL;
    if (api_get_epoch(c, c->in, "StreamCreationTimestamp", &created_ts, &has_ts)) return API_FAIL;
    int ftype = F_NONE;
    const char *fshard = NULL;
    json_t *f = json_object_get(c->in, "ShardFilter");
    if (f && !json_is_null(f)) {
        const char *t;
        if (!json_is_object(f))
            return api_fail(c, 400, "SerializationException", "ShardFilter must be an object");
        if (api_get_str(c, f, "Type", API_REQ, 1, 64, K_PAT_NONE, &t, NULL)) return API_FAIL;
        if (api_get_str(c, f, "ShardId", API_OPT, 1, 128, K_PAT_NAME, &fshard, NULL))
            return API_FAIL;
        if (api_get_epoch(c, f, "Timestamp", &fts, &has_fts)) return API_FAIL;
        if (t) {
            ftype = k_filter_type(t);
            if (ftype < 0)
                api_verr(c, "shardFilter.type", t,
                         "Member must satisfy enum value set: [AFTER_SHARD_ID, AT_TRIM_HORIZON, "
                         "FROM_TRIM_HORIZON, AT_LATEST, AT_TIMESTAMP, FROM_TIMESTAMP]");
        }
    }
    if (token) {
        /* NextToken stands alone: AWS refuses it together with StreamName. */
        if (json_object_get(c->in, "StreamName") ||
            json_object_get(c->in, "ExclusiveStartShardId") ||
            json_object_get(c->in, "StreamCreationTimestamp") || (f && !json_is_null(f)))
            return api_fail(c, 400, "InvalidArgumentException",
                            "NextToken and StreamName cannot be provided together.");
    } else if (api__kinesis_stream(c, 1)) {
        return API_FAIL;
    }
    if (api_verr_flush(c)) return API_FAIL;

    long long after = -1;
    uint64_t want_id = 0;
    if (token) {
        uint8_t dec[256];
        size_t tl = strlen(token);
        long n = tl < 300 ? tr_base64_decode(token, tl, dec) : -1;
        long long issued = 0;
        char name[SLOG_MAX_STREAM_NAME + 1];
        unsigned long long id;
        int ft;
        long long fv;
        if (n <= 4 || memcmp(dec, "LH1:", 4))
            return api_fail(
                c, 400, "InvalidArgumentException",
                "Invalid NextToken; pass the NextToken of the previous ListShards response unchanged");
        dec[n] = 0;
        if (sscanf((char *)dec + 4, "%llu:%lld:%d:%lld:%lld:%128s", &id, &after, &ft, &fv, &issued,
                   name) != 6)
            return api_fail(
                c, 400, "InvalidArgumentException",
                "Invalid NextToken; pass the NextToken of the previous ListShards response unchanged");
        if (c->ctx->now_ms() - issued > 300000)
            return api_fail(c, 400, "ExpiredNextTokenException",
                            "The timestamp of the NextToken is older than 300 seconds; list again "
                            "from the start");
        want_id = id;
        ftype = ft;
        fts = fv;
        snprintf(k_name(c), SLOG_MAX_STREAM_NAME + 1, "%s", name);
    }
    if (ftype == F_AFTER) {
        if (!fshard && !token)
            return api_fail(c, 400, "InvalidArgumentException",
                            "ShardFilter of type AFTER_SHARD_ID requires ShardId");
        if (fshard) after = k_shard_index(fshard);
    }
    if ((ftype == F_AT_TS || ftype == F_FROM_TS) && !has_fts && !token)
        return api_fail(c, 400, "InvalidArgumentException",
                        "ShardFilter of type %s requires Timestamp",
                        ftype == F_AT_TS ? "AT_TIMESTAMP" : "FROM_TIMESTAMP");
    if (start && !token) {
        long long s = k_shard_index(start);
        if (s > after) after = s;
    }
    slog_stream_info_t info;
    if (k_describe(c, &info)) return API_FAIL;
    if (token && info.id != want_id) {
        slog_stream_info_free(&info);
        return api_fail(c, 400, "ResourceNotFoundException",
                        "Stream %s under account %s was deleted since the NextToken was issued",
                        k_name(c), API_ACCOUNT_ID);
    }
    if (has_ts && created_ts / 1000 != info.created_ms / 1000) {
        slog_stream_info_free(&info);
        return api_fail(
            c, 400, "ResourceNotFoundException",
            "Stream %s under account %s with the given StreamCreationTimestamp not found.",
            k_name(c), API_ACCOUNT_ID);
    }
    if (ftype == F_FROM_TRIM || ftype == F_AT_TRIM) {
        /* nothing else: retention already dropped expired shards from the list */
    }
    tr_buf *b = c->out;
    tr_buf_puts(b, "{\"Shards\":[");
    long long emitted = 0, last = -1;
    int more = 0;
    for (uint32_t i = 0; i < info.n_shards; i++) {
        const slog_shard_info_t *s = &info.shards[i];
        if (!k_shard_passes(&info, s, ftype, after, fts)) continue;
        if (emitted == max) {
            more = 1;
            break;
        }
        if (emitted) tr_buf_puts(b, ",");
        k_put_shard(b, s);
        last = s->index;
        emitted++;
    }
    tr_buf_puts(b, "]");
    if (more) {
        char tok[400];
        int tn = snprintf(tok, sizeof tok, "LH1:%llu:%lld:%d:%lld:%lld:%s",
                          (unsigned long long)info.id, last, ftype, (long long)fts,
                          c->ctx->now_ms(), info.name);
        tr_buf_puts(b, ",\"NextToken\":\"");
        tr_buf_base64(b, tok, (size_t)tn);
        tr_buf_puts(b, "\"");
    }
    tr_buf_puts(b, "}");
    slog_stream_info_free(&info);
    return 0;
}

static int k_retention(api_call_t *c, int increase) {
    long long hours = 0;
    int has = 0;
    if (api__kinesis_stream(c, 1)) return API_FAIL;
    if (api_get_int(c, c->in, "RetentionPeriodHours", API_REQ, 1, 8760, &hours, &has))
        return API_FAIL;
    if (api_verr_flush(c)) return API_FAIL;
    tr_err err;
    tr_err_clear(&err);
    int rc = slog_stream_set_retention(c->ctx->slog, k_name(c), (uint32_t)hours, increase, &err);
    if (rc) return api_error(c, rc, &err);
    return 0;
}
static int k_increase_retention(api_call_t *c) { return k_retention(c, 1); }
static int k_decrease_retention(api_call_t *c) { return k_retention(c, 0); }

static int k_add_tags(api_call_t *c) {
    if (api__kinesis_stream(c, 1)) return API_FAIL;
    json_t *t = json_object_get(c->in, "Tags");
    if (!t || json_is_null(t)) api_verr(c, "tags", NULL, "Member must not be null");
    slog_tag_t *tags = NULL;
    size_t n = 0;
    if (t && !json_is_null(t) && k_parse_tags(c, t, &tags, &n)) return API_FAIL;
    for (size_t i = 0; i < n; i++) {
        size_t kl = strlen(tags[i].key), vl = strlen(tags[i].value);
        if (kl < 1 || kl > 128)
            api_verr(
                c, "tags", tags[i].key,
                "Map keys must satisfy constraint: [Member must have length less than or equal to 128, Member must have length greater than or equal to 1]");
        if (vl > 256)
            api_verr(
                c, "tags", tags[i].value,
                "Map value must satisfy constraint: [Member must have length less than or equal to 256]");
    }
    if (api_verr_flush(c)) {
        free(tags);
        return API_FAIL;
    }
    tr_err err;
    tr_err_clear(&err);
    int rc = slog_stream_tags_add(c->ctx->slog, k_name(c), tags, n, &err);
    free(tags);
    if (rc) return api_error(c, rc, &err);
    return 0;
}

static int k_remove_tags(api_call_t *c) {
    if (api__kinesis_stream(c, 1)) return API_FAIL;
    json_t *keys = json_object_get(c->in, "TagKeys");
    if (!keys || json_is_null(keys)) api_verr(c, "tagKeys", NULL, "Member must not be null");
    else if (!json_is_array(keys))
        return api_fail(c, 400, "SerializationException", "TagKeys must be a list of strings");
    size_t n = keys && json_is_array(keys) ? json_array_size(keys) : 0;
    if (keys && json_is_array(keys) && (n < 1 || n > 50)) {
        char v[32];
        snprintf(v, sizeof v, "%zu", n);
        api_verr(c, "tagKeys", v, "Member must have length %s",
                 n < 1 ? "greater than or equal to 1" : "less than or equal to 50");
    }
    if (api_verr_flush(c)) return API_FAIL;
    char **arr = tr_xcalloc(n ? n : 1, sizeof *arr);
    for (size_t i = 0; i < n; i++) {
        json_t *k = json_array_get(keys, i);
        if (!json_is_string(k)) {
            free(arr);
            return api_fail(c, 400, "SerializationException", "TagKeys must be a list of strings");
        }
        arr[i] = (char *)json_string_value(k);
    }
    tr_err err;
    tr_err_clear(&err);
    int rc = slog_stream_tags_remove(c->ctx->slog, k_name(c), arr, n, &err);
    free(arr);
    if (rc) return api_error(c, rc, &err);
    return 0;
}

static int k_list_tags(api_call_t *c) {
    long long limit = 50;
    int has_limit;
    const char *start;
    if (api__kinesis_stream(c, 1)) return API_FAIL;
    if (api_get_str(c, c->in, "ExclusiveStartTagKey", API_OPT, 1, 128, K_PAT_NONE, &start, NULL))
        return API_FAIL;
    if (api_get_int(c, c->in, "Limit", API_OPT, 1, 50, &limit, &has_limit)) return API_FAIL;
    if (api_verr_flush(c)) return API_FAIL;
    slog_stream_info_t info;
    if (k_describe(c, &info)) return API_FAIL;
    tr_buf *b = c->out;
    tr_buf_puts(b, "{\"Tags\":[");
    long long emitted = 0;
    int more = 0;
    for (size_t i = 0; i < info.n_tags; i++) {
        if (start && strcmp(info.tags[i].key, start) <= 0) continue;
        if (emitted == limit) {
            more = 1;
            break;
        }
        if (emitted++) tr_buf_puts(b, ",");
        tr_buf_puts(b, "{\"Key\":");
        tr_buf_json_str(b, info.tags[i].key, strlen(info.tags[i].key));
        tr_buf_puts(b, ",\"Value\":");
        tr_buf_json_str(b, info.tags[i].value, strlen(info.tags[i].value));
        tr_buf_puts(b, "}");
    }
    tr_buf_printf(b, "],\"HasMoreTags\":%s}", more ? "true" : "false");
    slog_stream_info_free(&info);
    return 0;
}

/* ---- resharding ---------------------------------------------------------------------------- */

/* 1 if the stream has shard `id`; else answers ResourceNotFoundException and returns -1. */
static int k_shard_exists(api_call_t *c, const char *id) {
    slog_stream_info_t info;
    if (k_describe(c, &info)) return API_FAIL;
    long long idx = k_shard_index(id);
    int found = 0;
    for (uint32_t i = 0; idx >= 0 && i < info.n_shards; i++)
        if (info.shards[i].index == idx) found = 1;
    slog_stream_info_free(&info);
    if (found) return 1;
    return api_fail(c, 400, "ResourceNotFoundException",
                    "Could not find shard %s in stream %s under account %s.", id, k_name(c),
                    API_ACCOUNT_ID);
}

static int k_split_shard(api_call_t *c) {
    const char *shard, *key;
    if (api__kinesis_stream(c, 1)) return API_FAIL;
    if (api_get_str(c, c->in, "ShardToSplit", API_REQ, 1, 128, K_PAT_NAME, &shard, NULL))
        return API_FAIL;
    if (api_get_str(c, c->in, "NewStartingHashKey", API_REQ, 1, 128, K_PAT_DIGITS, &key, NULL))
        return API_FAIL;
    if (api_verr_flush(c)) return API_FAIL;
    long long idx = k_shard_index(shard);
    slog_hash_t h;
    if (slog_hash_parse(key, &h))
        return api_fail(c, 400, "InvalidArgumentException",
                        "NewStartingHashKey %s is not in [0, 2^128-1]", key);
    if (k_shard_exists(c, shard) <= 0) return API_FAIL;
    tr_err err;
    tr_err_clear(&err);
    int rc = slog_shard_split(c->ctx->slog, k_name(c), (uint32_t)idx, h, &err);
    if (rc) return api_error(c, rc, &err);
    tr_info("kinesis", "split %s of stream %s at %s", shard, k_name(c), key);
    return 0;
}

static int k_merge_shards(api_call_t *c) {
    const char *a, *b;
    if (api__kinesis_stream(c, 1)) return API_FAIL;
    if (api_get_str(c, c->in, "ShardToMerge", API_REQ, 1, 128, K_PAT_NAME, &a, NULL))
        return API_FAIL;
    if (api_get_str(c, c->in, "AdjacentShardToMerge", API_REQ, 1, 128, K_PAT_NAME, &b, NULL))
        return API_FAIL;
    if (api_verr_flush(c)) return API_FAIL;
    long long ia = k_shard_index(a), ib = k_shard_index(b);
    if (k_shard_exists(c, a) <= 0 || k_shard_exists(c, b) <= 0) return API_FAIL;
    tr_err err;
    tr_err_clear(&err);
    int rc = slog_shard_merge(c->ctx->slog, k_name(c), (uint32_t)ia, (uint32_t)ib, &err);
    if (rc) return api_error(c, rc, &err);
    tr_info("kinesis", "merged %s and %s of stream %s", a, b, k_name(c));
    return 0;
}

static int k_update_shard_count(api_call_t *c) {
    long long target;
    int has;
    const char *scaling;
    if (api__kinesis_stream(c, 1)) return API_FAIL;
    if (api_get_int(c, c->in, "TargetShardCount", API_REQ, 1, 100000, &target, &has))
        return API_FAIL;
    if (api_get_str(c, c->in, "ScalingType", API_REQ, 1, 64, K_PAT_NONE, &scaling, NULL))
        return API_FAIL;
    if (scaling && strcmp(scaling, "UNIFORM_SCALING"))
        api_verr(c, "scalingType", scaling,
                 "Member must satisfy enum value set: [UNIFORM_SCALING]");
    if (api_verr_flush(c)) return API_FAIL;
    uint32_t old = 0;
    tr_err err;
    tr_err_clear(&err);
    int rc = slog_stream_scale(c->ctx->slog, k_name(c), (uint32_t)target, &old, &err);
    if (rc) return api_error(c, rc, &err);
    tr_buf *b = c->out;
    tr_buf_puts(b, "{\"StreamName\":");
    tr_buf_json_str(b, k_name(c), strlen(k_name(c)));
    tr_buf_printf(b, ",\"CurrentShardCount\":%u,\"TargetShardCount\":%lld,\"StreamARN\":", old,
                  target);
    k_put_arn(c, b, k_name(c));
    tr_buf_puts(b, "}");
    tr_info("kinesis", "scaled stream %s from %u to %lld shards", k_name(c), old, target);
    return 0;
}

static int k_describe_limits(api_call_t *c) {
    uint32_t limit, open, od_limit, od;
    slog_limits(c->ctx->slog, &limit, &open, &od_limit, &od);
    tr_buf_printf(c->out,
                  "{\"ShardLimit\":%u,\"OpenShardCount\":%u,\"OnDemandStreamCount\":%u,"
                  "\"OnDemandStreamCountLimit\":%u}",
                  limit, open, od, od_limit);
    return 0;
}

/* ---- data plane: iterators and reads ------------------------------------------------------- */

#define K_ITER_RAW 41

static void k_iter_encode(api_ctx_t *ctx, uint64_t id, uint32_t shard, uint64_t pos, int64_t now,
                          tr_buf *b) {
    uint8_t raw[K_ITER_RAW];
    raw[0] = 1;
    memcpy(raw + 1, &id, 8);
    memcpy(raw + 9, &shard, 4);
    memcpy(raw + 13, &pos, 8);
    memcpy(raw + 21, &now, 8);
    uint8_t mac[32];
    tr_hmac_sha256(ctx->kinesis->iter_key, 32, raw, 29, mac);
    memcpy(raw + 29, mac, 12);
    tr_buf_append(b, "\"", 1);
    tr_buf_base64(b, raw, sizeof raw);
    tr_buf_append(b, "\"", 1);
}

static int k_iter_decode(api_call_t *c, const char *s, size_t n, uint64_t *id, uint32_t *shard,
                         uint64_t *pos, int64_t *issued) {
    uint8_t raw[64];
    if (n != 56 || tr_base64_decode(s, n, raw) != K_ITER_RAW || raw[0] != 1)
        return api_fail(c, 400, "InvalidArgumentException",
                        "Invalid ShardIterator: it was not issued by this server or was altered; "
                        "get a new one with GetShardIterator");
    uint8_t mac[32];
    tr_hmac_sha256(c->ctx->kinesis->iter_key, 32, raw, 29, mac);
    if (CRYPTO_memcmp(mac, raw + 29, 12))
        return api_fail(c, 400, "InvalidArgumentException",
                        "Invalid ShardIterator: it was not issued by this server or was altered; "
                        "get a new one with GetShardIterator");
    memcpy(id, raw + 1, 8);
    memcpy(shard, raw + 9, 4);
    memcpy(pos, raw + 13, 8);
    memcpy(issued, raw + 21, 8);
    return 0;
}

static int k_find_shard(api_call_t *c, slog_stream_info_t *info, const char *shard_id,
                        slog_shard_info_t **out) {
    long long idx = k_shard_index(shard_id);
    for (uint32_t i = 0; idx >= 0 && i < info->n_shards; i++)
        if (info->shards[i].index == idx) {
            *out = &info->shards[i];
            return 0;
        }
    return api_fail(c, 400, "ResourceNotFoundException",
                    "Shard %s in stream %s under account %s does not exist", shard_id, info->name,
                    API_ACCOUNT_ID);
}

static int k_get_shard_iterator(api_call_t *c) {
    const char *shard_id, *type, *seq;
    int64_t ts = 0;
    int has_ts;
    if (api__kinesis_stream(c, 1)) return API_FAIL;
    if (api_get_str(c, c->in, "ShardId", API_REQ, 1, 128, K_PAT_NAME, &shard_id, NULL))
        return API_FAIL;
    if (api_get_str(c, c->in, "ShardIteratorType", API_REQ, 1, 64, K_PAT_NONE, &type, NULL))
        return API_FAIL;
    if (api_get_str(c, c->in, "StartingSequenceNumber", API_OPT, 0, 128, K_PAT_DIGITS, &seq, NULL))
        return API_FAIL;
    if (api_get_epoch(c, c->in, "Timestamp", &ts, &has_ts)) return API_FAIL;
    enum { T_AT, T_AFTER, T_TRIM, T_LATEST, T_TS } t = T_TRIM;
    if (type) {
        if (!strcmp(type, "AT_SEQUENCE_NUMBER")) t = T_AT;
        else if (!strcmp(type, "AFTER_SEQUENCE_NUMBER")) t = T_AFTER;
        else if (!strcmp(type, "TRIM_HORIZON")) t = T_TRIM;
        else if (!strcmp(type, "LATEST")) t = T_LATEST;
        else if (!strcmp(type, "AT_TIMESTAMP")) t = T_TS;
        else
            api_verr(c, "shardIteratorType", type,
                     "Member must satisfy enum value set: [AFTER_SEQUENCE_NUMBER, LATEST, "
                     "AT_TIMESTAMP, TRIM_HORIZON, AT_SEQUENCE_NUMBER]");
    }
    if (api_verr_flush(c)) return API_FAIL;
    slog_stream_info_t info;
    if (k_describe(c, &info)) return API_FAIL;
    slog_shard_info_t *sh = NULL;
    if (k_find_shard(c, &info, shard_id, &sh)) {
        slog_stream_info_free(&info);
        return API_FAIL;
    }
    uint64_t begin = 0, end = 0, at = 0, pos = 0;
    tr_err err;
    tr_err_clear(&err);
    int rc = slog_position(c->ctx->slog, info.id, sh->index, has_ts ? ts : 0, &begin, &end, &at,
                           &err);
    if (rc) {
        slog_stream_info_free(&info);
        return api_error(c, rc, &err);
    }
    int bad = 0;
    switch (t) {
    case T_TRIM:
    case T_LATEST:
        if (seq || has_ts) {
            bad = api_fail(c, 400, "InvalidArgumentException",
                           "Request specified %s for a %s iterator; only AT_SEQUENCE_NUMBER / "
                           "AFTER_SEQUENCE_NUMBER take StartingSequenceNumber and AT_TIMESTAMP "
                           "takes Timestamp",
                           seq ? "StartingSequenceNumber" : "Timestamp", type);
            break;
        }
        pos = t == T_TRIM ? begin : end;
        break;
    case T_TS:
        if (!has_ts) {
            bad = api_fail(c, 400, "InvalidArgumentException",
                           "Must specify timestampInMillis parameter for iterator of type "
                           "AT_TIMESTAMP. Current request has no timestamp parameter.");
            break;
        }
        if (ts > c->ctx->now_ms()) {
            bad = api_fail(c, 400, "InvalidArgumentException",
                           "The timestampInMillis parameter cannot be greater than the "
                           "currentTimestampInMillis. timestampInMillis: %lld, "
                           "currentTimestampInMillis: %lld",
                           (long long)ts, c->ctx->now_ms());
            break;
        }
        pos = at;
        break;
    case T_AT:
    case T_AFTER: {
        uint32_t s_shard;
        uint64_t counter;
        if (!seq) {
            bad = api_fail(c, 400, "InvalidArgumentException",
                           "Must specify StartingSequenceNumber for %s iterator type", type);
            break;
        }
        if (slog_seq_parse(seq, &s_shard, &counter)) {
            bad = api_fail(c, 400, "InvalidArgumentException",
                           "StartingSequenceNumber %s used in GetShardIterator on shard %s in "
                           "stream %s under account %s is invalid.",
                           seq, shard_id, info.name, API_ACCOUNT_ID);
            break;
        }
        if (s_shard != sh->index) {
            bad = api_fail(c, 400, "InvalidArgumentException",
                           "Invalid StartingSequenceNumber. It encodes shardId-%012u, while it was "
                           "used in a call to a shard with shardId-%012u",
                           s_shard, sh->index);
            break;
        }
        pos = t == T_AT ? counter : counter + 1;
        if (pos > end) {
            bad = api_fail(c, 400, "InvalidArgumentException",
                           "StartingSequenceNumber %s used in GetShardIterator on shard %s in "
                           "stream %s under account %s is invalid because it did not come from "
                           "this stream.",
                           seq, shard_id, info.name, API_ACCOUNT_ID);
            break;
        }
        if (pos < begin) pos = begin;
        break;
    }
    }
    if (!bad) {
        tr_buf_puts(c->out, "{\"ShardIterator\":");
        k_iter_encode(c->ctx, info.id, sh->index, pos, c->ctx->now_ms(), c->out);
        tr_buf_puts(c->out, "}");
    }
    slog_stream_info_free(&info);
    return bad;
}

static int k_get_records(api_call_t *c) {
    const char *it;
    size_t it_len;
    long long limit = 10000;
    int has_limit;
    if (api_get_str(c, c->in, "ShardIterator", API_REQ, 1, 512, K_PAT_NONE, &it, &it_len))
        return API_FAIL;
    if (api_get_int(c, c->in, "Limit", API_OPT, 1, 10000, &limit, &has_limit)) return API_FAIL;
    const char *arn = NULL;  /* optional; the iterator names the stream */
    if (api_get_str(c, c->in, "StreamARN", API_OPT, 1, 2048, K_PAT_ARN, &arn, NULL))
        return API_FAIL;
    if (api_verr_flush(c)) return API_FAIL;
    if (arn && k_arn_owned(c, arn)) return API_FAIL;
    uint64_t id = 0, pos = 0;
    uint32_t shard = 0;
    int64_t issued = 0;
    if (k_iter_decode(c, it, it_len, &id, &shard, &pos, &issued)) return API_FAIL;
    long long now = c->ctx->now_ms();
    if (now - issued > c->ctx->kinesis->iter_ttl_ms)
        return api_fail(c, 400, "ExpiredIteratorException",
                        "Iterator expired. The iterator was created at time %lld while right now "
                        "it is %lld which is further in the future than the tolerated delay of "
                        "%d milliseconds.",
                        (long long)issued, now, (int)c->ctx->kinesis->iter_ttl_ms);
    slog_read_t rd;
    memset(&rd, 0, sizeof rd);
    uint64_t closed_end = UINT64_MAX;
    int64_t last_arrival = -1;
    tr_err err;
    tr_err_clear(&err);
    int rc = slog_read(c->ctx->slog, id, shard, pos, (size_t)limit, K_MAX_GET_BYTES, &rd,
                       &closed_end, &last_arrival, &err);
    if (rc) {
        slog_read_free(&rd);
        if (rc == TR_ENOTFOUND)
            return api_fail(c, 400, "ResourceNotFoundException",
                            "Shard shardId-%012u in the iterator's stream under account %s does "
                            "not exist (the stream was deleted)",
                            shard, API_ACCOUNT_ID);
        return api_error(c, rc, &err);
    }
    tr_buf *b = c->out;
    size_t est = 64;
    for (size_t i = 0; i < rd.n; i++)
        est += 120 + rd.recs[i].pk_len * 6 + rd.recs[i].data_len * 4 / 3;
    est += 1024 + 64 * (size_t)32;  /* iterator, child shards */
    /* The response (up to ~13 MB) lives until a client that may read slowly has taken it:
     * charged to the in-flight budget like request bodies, refused as throttling past it. */
    if (net_req_charge(c->req, est)) {
        slog_read_free(&rd);
        return api_fail(c, 400, "ProvisionedThroughputExceededException",
                        "Rate exceeded for Shard - shardId-%012u: the server is over its in-flight "
                        "memory budget (--max-inflight-mb); retry with backoff",
                        shard);
    }
    tr_buf_reserve(b, est);
    tr_buf_puts(b, "{\"Records\":[");
    for (size_t i = 0; i < rd.n; i++) {
        const slog_rec_t *r = &rd.recs[i];
        if (i) tr_buf_append(b, ",", 1);
        tr_buf_puts(b, "{\"SequenceNumber\":");
        api__kinesis_put_seq(b, shard, r->seq);
        tr_buf_puts(b, ",\"ApproximateArrivalTimestamp\":");
        k_put_ts(b, r->arrival_ms);
        tr_buf_puts(b, ",\"Data\":\"");
        tr_buf_base64(b, r->data, r->data_len);
        tr_buf_puts(b, "\",\"PartitionKey\":");
        tr_buf_json_str(b, r->pk, r->pk_len);
        tr_buf_puts(b, "}");
    }
    tr_buf_puts(b, "]");
    uint64_t next = rd.next_seq;
    long long behind = 0;
    if (rd.n && last_arrival >= 0) {
        int64_t newest_read = rd.recs[rd.n - 1].arrival_ms;
        behind = last_arrival > newest_read ? last_arrival - newest_read : 0;
    }
    if (closed_end != UINT64_MAX && next >= closed_end) {
        /* End of a closed shard: no next iterator; name the children. */
        slog_stream_info_t info;
        tr_buf_puts(b, ",\"ChildShards\":[");
        if (slog_stream_describe_id(c->ctx->slog, id, &info, NULL) == 0) {
            int emitted = 0;
            for (uint32_t i = 0; i < info.n_shards; i++) {
                slog_shard_info_t *s = &info.shards[i];
                if (s->parent != shard && s->adjacent_parent != shard) continue;
                if (emitted++) tr_buf_puts(b, ",");
                tr_buf_puts(b, "{\"ShardId\":");
                api__kinesis_put_shard_id(b, s->index);
                tr_buf_puts(b, ",\"ParentShards\":[");
                api__kinesis_put_shard_id(b, s->parent);
                if (s->adjacent_parent != SLOG_NO_SHARD) {
                    tr_buf_puts(b, ",");
                    api__kinesis_put_shard_id(b, s->adjacent_parent);
                }
                tr_buf_puts(b, "],\"HashKeyRange\":{\"StartingHashKey\":");
                k_put_hash(b, s->hash_start);
                tr_buf_puts(b, ",\"EndingHashKey\":");
                k_put_hash(b, s->hash_end);
                tr_buf_puts(b, "}}");
            }
            slog_stream_info_free(&info);
        }
        tr_buf_printf(b, "],\"MillisBehindLatest\":0}");
    } else {
        tr_buf_puts(b, ",\"NextShardIterator\":");
        k_iter_encode(c->ctx, id, shard, next, now, b);
        tr_buf_printf(b, ",\"MillisBehindLatest\":%lld}", behind);
    }
    slog_read_free(&rd);
    return 0;
}

/* ---- iterator key ---------------------------------------------------------------------------- */

/* Load or create the iterator MAC key in dir/iterator.key. */
static int k_iter_key_load(const char *dir, uint8_t key[32], tr_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/iterator.key", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, key, 32);
        close(fd);
        if (n == 32) return 0;
        tr_warn("api", "%s is damaged; making a new one (old shard iterators become invalid)",
                path);
    }
    if (RAND_bytes(key, 32) != 1)
        return tr_err_set(err, TR_EINTERNAL, "no randomness for the iterator key");
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return tr_err_set(err, TR_EIO,
                          "cannot write %s: %m; check the data directory's permissions", tmp);
    if (write(fd, key, 32) != 32 || fsync(fd) != 0) {
        close(fd);
        return tr_err_set(err, TR_EIO, "cannot write %s: %m", tmp);
    }
    close(fd);
    if (rename(tmp, path) != 0) return tr_err_set(err, TR_EIO, "cannot rename %s: %m", tmp);
    if (tr_fsync_parent(path) != 0)
        return tr_err_set(err, TR_EIO, "cannot sync the directory of %s: %m", path);
    return 0;
}

int api_kinesis_init(api_kinesis_t *k, const char *data_dir, long long iter_ttl_ms, tr_err *err) {
    memset(k, 0, sizeof *k);
    k->iter_ttl_ms = iter_ttl_ms;
    return k_iter_key_load(data_dir, k->iter_key, err);
}

/* ---- the operation table ------------------------------------------------------------------- */

/* Kinesis's answers to engine codes (kit.h: api_error). */
static const api_errmap_t k_errors[] = {
    {TR_ENOTFOUND, 400, "ResourceNotFoundException", NULL, NULL},
    {TR_EEXISTS, 400, "ResourceInUseException", NULL, NULL},
    {TR_EINUSE, 400, "ResourceInUseException", NULL, NULL},
    {TR_ELIMIT, 400, "LimitExceededException", NULL, NULL},
    {TR_ETHROTTLED, 400, "ProvisionedThroughputExceededException", NULL, NULL},
    {TR_EINVAL, 400, "InvalidArgumentException", NULL, NULL},
    {TR_ETOOBIG, 400, "InvalidArgumentException", NULL, NULL},
    {TR_EVALIDATION, 400, "ValidationException", NULL, NULL},
    {TR_EEXPIRED, 400, "ExpiredIteratorException", NULL, NULL},
    {TR_ESERIALIZATION, 400, "SerializationException", NULL, NULL},
    {TR_EUNKNOWN_OP, 400, "UnknownOperationException", NULL, NULL},
    {0, 500, "InternalFailure", NULL, NULL},
};

/* PutRecord(s) try the fast scanner first (.fast); it bails to .fn on anything unusual. */
static const api_op_t k_ops[] = {
    {.name = "AddTagsToStream", .fn = k_add_tags},
    {.name = "CreateStream", .fn = k_create_stream},
    {.name = "DecreaseStreamRetentionPeriod", .fn = k_decrease_retention},
    {.name = "DeleteStream", .fn = k_delete_stream},
    {.name = "DescribeLimits", .fn = k_describe_limits},
    {.name = "DescribeStream", .fn = k_describe_stream},
    {.name = "DescribeStreamSummary", .fn = k_describe_stream_summary},
    {.name = "GetRecords", .fn = k_get_records},
    {.name = "GetShardIterator", .fn = k_get_shard_iterator},
    {.name = "IncreaseStreamRetentionPeriod", .fn = k_increase_retention},
    {.name = "ListShards", .fn = k_list_shards},
    {.name = "ListStreams", .fn = k_list_streams},
    {.name = "ListTagsForStream", .fn = k_list_tags},
    {.name = "MergeShards", .fn = k_merge_shards},
    {.name = "PutRecord", .fn = api__kinesis_put_record, .fast = api__kinesis_put_record_fast},
    {.name = "PutRecords", .fn = api__kinesis_put_records, .fast = api__kinesis_put_records_fast},
    {.name = "RemoveTagsFromStream", .fn = k_remove_tags},
    {.name = "SplitShard", .fn = k_split_shard},
    {.name = "UpdateShardCount", .fn = k_update_shard_count},
};

const api_service_t api_kinesis_service = {
    .name = "kinesis",
    .label = "Kinesis",
    .log = "kinesis",
    .proto = API_PROTO_JSON11,
    .target_prefix = "Kinesis_20131202.",
    .content_type = K_JSON,
    API_OPS(k_ops),
    API_ERRORS(k_errors),
    .verr_value_max = 200,
    .member_style = API_MEMBER_CAMEL,
};
