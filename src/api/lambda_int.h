/* SPDX-License-Identifier: Apache-2.0
 *
 * lambda_int.h -- private to src/api: what the Lambda adapter's two files share.  lambda.c
 * (functions, invocations, concurrency) and lambda_esm.c (event source mappings) are two kit
 * services (kit.h) of the same AWS API: one SigV4 service ("lambda"), one REST-JSON error shape
 * and one error map, declared here once.  Not API.
 */
#ifndef API_LAMBDA_INT_H
#define API_LAMBDA_INT_H

#include "api/kit.h"

/* Lambda's answers to engine codes (botocore's lambda service-2.json: the error shapes and their
 * httpStatusCode):
 *
 *     TR_ENOTFOUND    404 ResourceNotFoundException      TR_EEXISTS     409 ResourceConflictException
 *     TR_EINVAL       400 InvalidParameterValueException TR_ELIMIT      400 InvalidParameterValueException
 *     TR_EVALIDATION  400 ValidationException            TR_EINUSE      400 ResourceInUseException
 *     TR_ECONDITION   412 PreconditionFailedException (a RevisionId that is not the latest)
 *     TR_ETHROTTLED   429 TooManyRequestsException (lambda.c adds Reason and Retry-After)
 *     TR_ETOOBIG      413 RequestTooLargeException (lambda.c: CreateFunction / UpdateFunctionCode
 *                     answer 413 RequestEntityTooLargeException, as AWS's front end does)
 *     TR_ESERIALIZATION 400 InvalidRequestContentException
 *     TR_ECLOSED      503 ServiceException           other  500 ServiceException */
extern const api_errmap_t api__lambda_errors[];
/* The error types whose shape spells "Message" (the others: "message"). */
extern const char *const api__lambda_message_caps[];

/* What the two Lambda services declare alike (kit.h: api_service_t). */
#define API_LAMBDA_SERVICE_COMMON                                                                  \
    .name = "lambda", .label = "Lambda", .log = "lambda", .proto = API_PROTO_REST_JSON,            \
    .content_type = "application/json", API_ERRORS(api__lambda_errors),                            \
    .message_caps = api__lambda_message_caps, .verr_value_max = 200,                               \
    .member_style = API_MEMBER_CAMEL

/* A FunctionName must name a function of this account in this region, as on AWS: another
 * region's is "not reachable in this region" (404 ResourceNotFoundException), another account's
 * is 403 AccessDeniedException (Tributary has no resource policies that could allow it).
 * `action` is the IAM action ("InvokeFunction").  0 when ours, else API_FAIL (answered). */
int api__lambda_fn_owned(api_call_t *c, const char *given, const char *action);

/* Lambda's paged list response: 200 {"<member>": items, "NextMarker": next} (NextMarker only
 * when next is not NULL).  Consumes items and frees next.  Returns NET_DONE. */
int api__lambda_reply_list(api_call_t *c, const char *member, json_t *items, char *next,
                           int real_precision);

#endif
