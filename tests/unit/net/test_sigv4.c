/* SPDX-License-Identifier: Apache-2.0
 *
 * test_sigv4.c -- net/sigv4 against the published AWS Signature Version 4 test suite (2015
 * edition: AKIDEXAMPLE, 20150830T123600Z, us-east-1, service "service"), the IAM and S3
 * documentation examples, and the verification error paths.
 *
 * Each suite vector checks the canonical request, the string to sign and the Authorization text,
 * then that sigv4_verify accepts the signed request and rejects it when one signature byte, a
 * signed header value, the body hash or the secret changes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/sigv4.h"

#define AKID "AKIDEXAMPLE"
#define SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define AMZ_DATE "20150830T123600Z"
#define SCOPE "20150830/us-east-1/service/aws4_request"
#define T0_MS 1440938160000LL /* 2015-08-30T12:36:00Z */
#define EMPTY_SHA "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define HOST "example.amazonaws.com"
#define UNRESERVED "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#define STS_PREFIX "AWS4-HMAC-SHA256\n" AMZ_DATE "\n" SCOPE "\n"
#define AUTHZ_PREFIX "AWS4-HMAC-SHA256 Credential=" AKID "/" SCOPE ", SignedHeaders="
#define CREQ_TAIL_VANILLA "host:" HOST "\nx-amz-date:" AMZ_DATE "\n\nhost;x-amz-date\n" EMPTY_SHA
#define TOKEN                                                                                      \
    "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRX"       \
    "mxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy"     \
    "0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lI"     \
    "ZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="

#define MAX_H 12

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                    */
/* ------------------------------------------------------------------------------------------ */

typedef struct keyring {
    const char *akid;
    const char *secret;
    int calls;
} keyring_t;

static int lookup(void *arg, const char *access_key, char *secret, size_t cap) {
    keyring_t *k = arg;
    k->calls++;
    if (strcmp(access_key, k->akid) != 0) return TR_EAUTH_KEY;
    snprintf(secret, cap, "%s", k->secret);
    return 0;
}

static void sha_hex(const char *s, char out[65]) {
    uint8_t h[32];
    unsigned int n = 0;
    EVP_Digest(s, strlen(s), h, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", h[i]);
}

/* A mutable request: headers copied so a test can add or change one. */
typedef struct treq {
    sigv4_req_t r;
    sigv4_header_t h[MAX_H];
    char authz[512];
} treq_t;

static void treq_init(treq_t *t, const char *method, const char *path, const char *query,
                      const sigv4_header_t *h, size_t n, const char *payload, long long now_ms) {
    memset(t, 0, sizeof *t);
    assert_true(n < MAX_H);
    memcpy(t->h, h, n * sizeof *h);
    t->r.method = method;
    t->r.path = path;
    t->r.query = query;
    t->r.headers = t->h;
    t->r.n_headers = n;
    t->r.payload_sha256 = payload;
    t->r.now_ms = now_ms;
}

static void treq_add(treq_t *t, const char *name, const char *value) {
    assert_true(t->r.n_headers < MAX_H);
    t->h[t->r.n_headers].name = name;
    t->h[t->r.n_headers].value = value;
    t->r.n_headers++;
}

static void treq_set(treq_t *t, const char *name, const char *value) {
    for (size_t i = 0; i < t->r.n_headers; i++) {
        if (strcasecmp(t->h[i].name, name) == 0) {
            t->h[i].value = value;
            return;
        }
    }
    treq_add(t, name, value);
}

static void treq_auth(treq_t *t, const char *authz) {
    snprintf(t->authz, sizeof t->authz, "%s", authz);
    treq_set(t, "Authorization", t->authz);
}

/* Struct copy that keeps the copy's header table and Authorization text its own. */
static void treq_copy(treq_t *d, const treq_t *s) {
    *d = *s;
    d->r.headers = d->h;
    for (size_t i = 0; i < d->r.n_headers; i++)
        if (d->h[i].value == s->authz) d->h[i].value = d->authz;
}

static int verify(const treq_t *t, keyring_t *k, sigv4_result_t *res, tr_err *err) {
    tr_err_clear(err);
    return sigv4_verify(&t->r, lookup, k, res, err);
}

#define assert_msg_contains(err, s)                                                                \
    do {                                                                                           \
        if (!strstr((err)->msg, (s))) fail_msg("message \"%s\" lacks \"%s\"", (err)->msg, (s));    \
    } while (0)

/* ------------------------------------------------------------------------------------------ */
/* The AWS SigV4 test suite                                                                   */
/* ------------------------------------------------------------------------------------------ */

typedef struct vec {
    const char *name;
    const char *method, *path, *query;
    sigv4_header_t h[8];
    size_t nh;
    const char *body_sha; /* NULL: empty body */
    const char *signed_headers;
    const char *creq;
    const char *sts_hash; /* last line of the .sts */
    const char *sig;      /* Signature= of the .authz */
} vec_t;

#define H_VANILLA                                                                                  \
    {"Host", HOST}, { "X-Amz-Date", AMZ_DATE }
#define SH_VANILLA "host;x-amz-date"
#define STS_VANILLA "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
#define SIG_VANILLA "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
#define GET_ROOT(name, path)                                                                       \
    {name,        "GET",       path,                                                               \
     NULL,        {H_VANILLA}, 2,                                                                  \
     NULL,        SH_VANILLA,  "GET\n/\n\n" CREQ_TAIL_VANILLA,                                     \
     STS_VANILLA, SIG_VANILLA}

static const vec_t VECTORS[] = {
    GET_ROOT("get-vanilla", "/"),
    GET_ROOT("get-vanilla-query", "/"),
    GET_ROOT("get-relative (normalize-path)", "/example/.."),
    GET_ROOT("get-relative-relative (normalize-path)", "/example1/example2/../.."),
    GET_ROOT("get-slash (normalize-path)", "//"),
    GET_ROOT("get-slash-dot-slash (normalize-path)", "/./"),
    {"get-slashes (normalize-path)",
     "GET",
     "//example//",
     NULL,
     {H_VANILLA},
     2,
     NULL,
     SH_VANILLA,
     "GET\n/example/\n\n" CREQ_TAIL_VANILLA,
     "cb96b4ac96d501f7c5c15bc6d67b3035061cfced4af6585ad927f7e6c985c015",
     "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84"},
    {"get-slash-pointless-dot (normalize-path)",
     "GET",
     "/./example",
     NULL,
     {H_VANILLA},
     2,
     NULL,
     SH_VANILLA,
     "GET\n/example\n\n" CREQ_TAIL_VANILLA,
     "214d50c111a8edc4819da6a636336472c916b5240f51e9a51b5c3305180cf702",
     "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5"},
    {"get-space (normalize)",
     "GET",
     "/example space/",
     NULL,
     {H_VANILLA},
     2,
     NULL,
     SH_VANILLA,
     "GET\n/example%20space/\n\n" CREQ_TAIL_VANILLA,
     "63ee75631ed7234ae61b5f736dfc7754cdccfedbff4b5128a915706ee9390d86",
     "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"},
    {"get-utf8",
     "GET",
     "/\xe1\x88\xb4",
     NULL,
     {H_VANILLA},
     2,
     NULL,
     SH_VANILLA,
     "GET\n/%E1%88%B4\n\n" CREQ_TAIL_VANILLA,
     "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
     "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
    {"get-unreserved",
     "GET",
     "/" UNRESERVED,
     NULL,
     {H_VANILLA},
     2,
     NULL,
     SH_VANILLA,
     "GET\n/" UNRESERVED "\n\n" CREQ_TAIL_VANILLA,
     "6a968768eefaa713e2a6b16b589a8ea192661f098f37349f4e2c0082757446f9",
     "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
    {"get-vanilla-query-order-key-case",
     "GET",
     "/",
     "Param2=value2&Param1=value1",
     {H_VANILLA},
     2,
     NULL,
     SH_VANILLA,
     "GET\n/\nParam1=value1&Param2=value2\n" CREQ_TAIL_VANILLA,
     "816cd5b414d056048ba4f7c5386d6e0533120fb1fcfa93762cf0fc39e2cf19e0",
     "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
    {"get-vanilla-query-order-key",
     "GET",
     "/",
     "Param1=value2&Param1=Value1",
     {H_VANILLA},
     2,
     NULL,
     SH_VANILLA,
     "GET\n/\nParam1=Value1&Param1=value2\n" CREQ_TAIL_VANILLA,
     "704b4cef673542d84cdff252633f065e8daeba5f168b77116f8b1bcaf3d38f89",
     "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1"},
    {"get-vanilla-query-order-value",
     "GET",
     "/",
     "Param1=value2&Param1=value1",
     {H_VANILLA},
     2,
     NULL,
     SH_VANILLA,
     "GET\n/\nParam1=value1&Param1=value2\n" CREQ_TAIL_VANILLA,
     "c968629d70850097a2d8781c9bf7edcb988b04cac14cca9be4acc3595f884606",
     "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"},
    {"get-vanilla-query-unreserved",
     "GET",
     "/",
     UNRESERVED "=" UNRESERVED,
     {H_VANILLA},
     2,
     NULL,
     SH_VANILLA,
     "GET\n/\n" UNRESERVED "=" UNRESERVED "\n" CREQ_TAIL_VANILLA,
     "c30d4703d9f799439be92736156d47ccfb2d879ddf56f5befa6d1d6aab979177",
     "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
    {"get-vanilla-utf8-query",
     "GET",
     "/",
     "\xe1\x88\xb4=bar",
     {H_VANILLA},
     2,
     NULL,
     SH_VANILLA,
     "GET\n/\n%E1%88%B4=bar\n" CREQ_TAIL_VANILLA,
     "eb30c5bed55734080471a834cc727ae56beb50e5f39d1bff6d0d38cb192a7073",
     "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
    {"get-vanilla-empty-query-key",
     "GET",
     "/",
     "Param1=value1",
     {H_VANILLA},
     2,
     NULL,
     SH_VANILLA,
     "GET\n/\nParam1=value1\n" CREQ_TAIL_VANILLA,
     "1e24db194ed7d0eec2de28d7369675a243488e08526e8c1c73571282f7c517ab",
     "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"},
    {"get-header-key-duplicate",
     "GET",
     "/",
     NULL,
     {{"Host", HOST},
      {"My-Header1", "value2"},
      {"My-Header1", "value2"},
      {"My-Header1", "value1"},
      {"X-Amz-Date", AMZ_DATE}},
     5,
     NULL,
     "host;my-header1;x-amz-date",
     "GET\n/\n\nhost:" HOST "\nmy-header1:value2,value2,value1\nx-amz-date:" AMZ_DATE
     "\n\nhost;my-header1;x-amz-date\n" EMPTY_SHA,
     "dc7f04a3abfde8d472b0ab1a418b741b7c67174dad1551b4117b15527fbe966c",
     "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
    {"get-header-value-order",
     "GET",
     "/",
     NULL,
     {{"Host", HOST},
      {"My-Header1", "value4"},
      {"My-Header1", "value1"},
      {"My-Header1", "value3"},
      {"My-Header1", "value2"},
      {"X-Amz-Date", AMZ_DATE}},
     6,
     NULL,
     "host;my-header1;x-amz-date",
     "GET\n/\n\nhost:" HOST "\nmy-header1:value4,value1,value3,value2\nx-amz-date:" AMZ_DATE
     "\n\nhost;my-header1;x-amz-date\n" EMPTY_SHA,
     "31ce73cd3f3d9f66977ad3dd957dc47af14df92fcd8509f59b349e9137c58b86",
     "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"},
    {"get-header-value-trim",
     "GET",
     "/",
     NULL,
     {{"Host", HOST},
      {"My-Header1", " value1 "},
      {"My-Header2", " \"a   b   c\" "},
      {"X-Amz-Date", AMZ_DATE}},
     4,
     NULL,
     "host;my-header1;my-header2;x-amz-date",
     "GET\n/\n\nhost:" HOST "\nmy-header1:value1\nmy-header2:\"a b c\"\nx-amz-date:" AMZ_DATE
     "\n\nhost;my-header1;my-header2;x-amz-date\n" EMPTY_SHA,
     "a726db9b0df21c14f559d0a978e563112acb1b9e05476f0a6a1c7d68f28605c7",
     "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
    {"get-header-value-multiline",
     "GET",
     "/",
     NULL,
     {{"Host", HOST},
      {"My-Header1", "value1\r\n  value2\r\n     value3"},
      {"X-Amz-Date", AMZ_DATE}},
     3,
     NULL,
     "host;my-header1;x-amz-date",
     "GET\n/\n\nhost:" HOST "\nmy-header1:value1,value2,value3\nx-amz-date:" AMZ_DATE
     "\n\nhost;my-header1;x-amz-date\n" EMPTY_SHA,
     "b7b6cbfd8a0430b78891e986784da2630c8a135a8595cec25b26ea94f926ee55",
     "ba17b383a53190154eb5fa66a1b836cc297cc0a3d70a5d00705980573d8ff790"},
    {"post-vanilla",
     "POST",
     "/",
     NULL,
     {H_VANILLA},
     2,
     NULL,
     SH_VANILLA,
     "POST\n/\n\n" CREQ_TAIL_VANILLA,
     "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
    {"post-vanilla-query",
     "POST",
     "/",
     "Param1=value1",
     {H_VANILLA},
     2,
     NULL,
     SH_VANILLA,
     "POST\n/\nParam1=value1\n" CREQ_TAIL_VANILLA,
     "9d659678c1756bb3113e2ce898845a0a79dbbc57b740555917687f1b3340fbbd",
     "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
    {"post-header-key-case",
     "POST",
     "/",
     NULL,
     {H_VANILLA},
     2,
     NULL,
     SH_VANILLA,
     "POST\n/\n\n" CREQ_TAIL_VANILLA,
     "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
    {"post-header-key-case (upper-case names)",
     "POST",
     "/",
     NULL,
     {{"HOST", HOST}, {"X-AMZ-DATE", AMZ_DATE}},
     2,
     NULL,
     SH_VANILLA,
     "POST\n/\n\n" CREQ_TAIL_VANILLA,
     "553f88c9e4d10fc9e109e2aeb65f030801b70c2f6468faca261d401ae622fc87",
     "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
    {"post-header-key-sort",
     "POST",
     "/",
     NULL,
     {{"Host", HOST}, {"My-Header1", "value1"}, {"X-Amz-Date", AMZ_DATE}},
     3,
     NULL,
     "host;my-header1;x-amz-date",
     "POST\n/\n\nhost:" HOST "\nmy-header1:value1\nx-amz-date:" AMZ_DATE
     "\n\nhost;my-header1;x-amz-date\n" EMPTY_SHA,
     "9368318c2967cf6de74404b30c65a91e8f6253e0a8659d6d5319f1a812f87d65",
     "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"},
    {"post-header-value-case",
     "POST",
     "/",
     NULL,
     {{"Host", HOST}, {"My-Header1", "VALUE1"}, {"X-Amz-Date", AMZ_DATE}},
     3,
     NULL,
     "host;my-header1;x-amz-date",
     "POST\n/\n\nhost:" HOST "\nmy-header1:VALUE1\nx-amz-date:" AMZ_DATE
     "\n\nhost;my-header1;x-amz-date\n" EMPTY_SHA,
     "d51ced243e649e3de6ef63afbbdcbca03131a21a7103a1583706a64618606a93",
     "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
    {"post-x-www-form-urlencoded",
     "POST",
     "/",
     NULL,
     {{"Content-Type", "application/x-www-form-urlencoded"},
      {"Host", HOST},
      {"X-Amz-Date", AMZ_DATE}},
     3,
     "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e", /* "Param1=value1" */
     "content-type;host;x-amz-date",
     "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\nhost:" HOST
     "\nx-amz-date:" AMZ_DATE "\n\ncontent-type;host;x-amz-date\n"
     "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
     "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
     "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
    {"post-x-www-form-urlencoded-parameters",
     "POST",
     "/",
     NULL,
     {{"Content-Type", "application/x-www-form-urlencoded; charset=utf8"},
      {"Host", HOST},
      {"X-Amz-Date", AMZ_DATE}},
     3,
     "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
     "content-type;host;x-amz-date",
     "POST\n/\n\ncontent-type:application/x-www-form-urlencoded; charset=utf8\nhost:" HOST
     "\nx-amz-date:" AMZ_DATE "\n\ncontent-type;host;x-amz-date\n"
     "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e",
     "2e1cf7ed91881a30569e46552437e4156c823447bf1781b921b5d486c568dd1c",
     "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"},
    {"post-sts-header-before",
     "POST",
     "/",
     NULL,
     {{"Host", HOST}, {"X-Amz-Date", AMZ_DATE}, {"X-Amz-Security-Token", TOKEN}},
     3,
     NULL,
     "host;x-amz-date;x-amz-security-token",
     "POST\n/\n\nhost:" HOST "\nx-amz-date:" AMZ_DATE "\nx-amz-security-token:" TOKEN
     "\n\nhost;x-amz-date;x-amz-security-token\n" EMPTY_SHA,
     "c237e1b440d4c63c32ca95b5b99481081cb7b13c7e40434868e71567c1a882f6",
     "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"},
};

static void test_vector(void **state) {
    const vec_t *v = *state;
    const char *payload = v->body_sha ? v->body_sha : EMPTY_SHA;
    treq_t t;
    treq_init(&t, v->method, v->path, v->query, v->h, v->nh, payload, T0_MS);

    /* .creq */
    char *creq = sigv4_canonical_request(&t.r, v->signed_headers, payload, "service");
    assert_non_null(creq);
    assert_string_equal(creq, v->creq);

    /* .sts */
    char want[512];
    snprintf(want, sizeof want, STS_PREFIX "%s", v->sts_hash);
    char *sts = sigv4_string_to_sign(AMZ_DATE, SCOPE, creq);
    assert_non_null(sts);
    assert_string_equal(sts, want);
    free(sts);
    free(creq);

    /* .authz */
    snprintf(want, sizeof want, AUTHZ_PREFIX "%s, Signature=%s", v->signed_headers, v->sig);
    char *authz = sigv4_sign(&t.r, AKID, SECRET, "us-east-1", "service", AMZ_DATE);
    assert_non_null(authz);
    assert_string_equal(authz, want);
    free(authz);

    /* Verification accepts the signed request ... */
    keyring_t k = {AKID, SECRET, 0};
    sigv4_result_t res;
    tr_err err;
    treq_auth(&t, want);
    assert_int_equal(verify(&t, &k, &res, &err), 0);
    assert_string_equal(res.access_key, AKID);
    assert_string_equal(res.region, "us-east-1");
    assert_string_equal(res.service, "service");
    assert_string_equal(res.date, "20150830");
    assert_string_equal(res.amz_date, AMZ_DATE);
    assert_string_equal(res.signature, v->sig);

    /* ... also with an unsigned header added on the way (a proxy's User-Agent) ... */
    treq_t u;
    treq_copy(&u, &t);
    treq_add(&u, "User-Agent", "curl/8");
    assert_int_equal(verify(&u, &k, &res, &err), 0);

    /* ... and refuses one changed signature byte, */
    treq_t x;
    treq_copy(&x, &t);
    char bad[512];
    snprintf(bad, sizeof bad, "%s", t.authz);
    char *last = bad + strlen(bad) - 1;
    *last = *last == '0' ? '1' : '0';
    treq_auth(&x, bad);
    assert_int_equal(verify(&x, &k, NULL, &err), TR_EAUTH_SIG);
    assert_int_equal(err.code, TR_EAUTH_SIG);
    assert_msg_contains(&err, "The request signature we calculated does not match the signature "
                              "you provided. Check your AWS Secret Access Key and signing method.");

    /* a changed signed header value, */
    treq_copy(&x, &t);
    treq_set(&x, "host", "example.amazonaws.co");
    assert_int_equal(verify(&x, &k, NULL, &err), TR_EAUTH_SIG);

    /* a changed body, */
    char other[65];
    sha_hex("tampered body", other);
    treq_copy(&x, &t);
    x.r.payload_sha256 = other;
    assert_int_equal(verify(&x, &k, NULL, &err), TR_EAUTH_SIG);

    /* and a different secret (the signing-key cache must not hide it). */
    keyring_t k2 = {AKID, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEz", 0};
    assert_int_equal(verify(&t, &k2, NULL, &err), TR_EAUTH_SIG);
    assert_int_equal(verify(&t, &k, NULL, &err), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Signing key and documentation examples                                                     */
/* ------------------------------------------------------------------------------------------ */

static void key_hex(const char *secret, const char *date, const char *region, const char *service,
                    char out[65]) {
    uint8_t key[32];
    sigv4_signing_key(secret, date, region, service, key);
    for (int i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", key[i]);
}

static void test_signing_key_docs(void **state) {
    (void)state;
    char hex[65];
    key_hex(SECRET, "20150830", "us-east-1", "iam", hex);
    assert_string_equal(hex, "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
    key_hex(SECRET, "20120215", "us-east-1", "iam", hex);
    assert_string_equal(hex, "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d");
}

/* The key derivation against OpenSSL's own HMAC(), including a secret longer than the SHA-256
 * block (the HMAC key-hashing path). */
static void ref_key(const char *secret, const char *date, const char *region, const char *service,
                    uint8_t out[32]) {
    char k[300];
    snprintf(k, sizeof k, "AWS4%s", secret);
    uint8_t a[32], b[32];
    unsigned int n;
    HMAC(EVP_sha256(), k, (int)strlen(k), (const uint8_t *)date, strlen(date), a, &n);
    HMAC(EVP_sha256(), a, 32, (const uint8_t *)region, strlen(region), b, &n);
    HMAC(EVP_sha256(), b, 32, (const uint8_t *)service, strlen(service), a, &n);
    HMAC(EVP_sha256(), a, 32, (const uint8_t *)"aws4_request", 12, out, &n);
}

static void test_signing_key_matches_openssl_hmac(void **state) {
    (void)state;
    const char *secrets[] = {"", "x", SECRET,
                             "0123456789012345678901234567890123456789012345678901234567890",
                             "01234567890123456789012345678901234567890123456789"
                             "01234567890123456789012345678901234567890123456789"
                             "0123456789"};
    for (size_t i = 0; i < sizeof secrets / sizeof secrets[0]; i++) {
        uint8_t a[32], b[32];
        sigv4_signing_key(secrets[i], "20240229", "eu-west-3", "kinesis", a);
        ref_key(secrets[i], "20240229", "eu-west-3", "kinesis", b);
        assert_memory_equal(a, b, 32);
    }
}

/* IAM ListUsers, the worked example of the AWS signing guide. */
static void test_iam_docs_example(void **state) {
    (void)state;
    const sigv4_header_t h[] = {
        {"Host", "iam.amazonaws.com"},
        {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
        {"X-Amz-Date", AMZ_DATE}};
    treq_t t;
    treq_init(&t, "GET", "/", "Action=ListUsers&Version=2010-05-08", h, 3, EMPTY_SHA, T0_MS);
    char *creq = sigv4_canonical_request(&t.r, "content-type;host;x-amz-date", EMPTY_SHA, "iam");
    assert_string_equal(creq, "GET\n/\nAction=ListUsers&Version=2010-05-08\n"
                              "content-type:application/x-www-form-urlencoded; charset=utf-8\n"
                              "host:iam.amazonaws.com\nx-amz-date:" AMZ_DATE "\n\n"
                              "content-type;host;x-amz-date\n" EMPTY_SHA);
    char *sts = sigv4_string_to_sign(AMZ_DATE, "20150830/us-east-1/iam/aws4_request", creq);
    assert_string_equal(sts, "AWS4-HMAC-SHA256\n" AMZ_DATE "\n20150830/us-east-1/iam/aws4_request\n"
                             "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59");
    const char *want = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/"
                       "aws4_request, SignedHeaders=content-type;host;x-amz-date, "
                       "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7";
    char *authz = sigv4_sign(&t.r, AKID, SECRET, "us-east-1", "iam", AMZ_DATE);
    assert_string_equal(authz, want);
    keyring_t k = {AKID, SECRET, 0};
    sigv4_result_t res;
    tr_err err;
    treq_auth(&t, want);
    assert_int_equal(verify(&t, &k, &res, &err), 0);
    assert_string_equal(res.service, "iam");
    free(creq);
    free(sts);
    free(authz);
}

/* ------------------------------------------------------------------------------------------ */
/* Presigned URLs: the S3 documentation example                                               */
/* ------------------------------------------------------------------------------------------ */

#define S3_AKID "AKIAIOSFODNN7EXAMPLE"
#define S3_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define S3_T0_MS 1369353600000LL /* 2013-05-24T00:00:00Z */
#define S3_Q_UNSIGNED                                                                              \
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-" \
    "1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders="   \
    "host"
#define S3_SIG "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
#define S3_Q S3_Q_UNSIGNED "&X-Amz-Signature=" S3_SIG

static const sigv4_header_t S3_H[] = {{"Host", "examplebucket.s3.amazonaws.com"}};

static void test_presigned_s3_docs_example(void **state) {
    (void)state;
    treq_t t;
    treq_init(&t, "GET", "/test.txt", S3_Q, S3_H, 1, NULL, S3_T0_MS + 3600 * 1000);

    char *creq = sigv4_canonical_request(&t.r, "host", "UNSIGNED-PAYLOAD", "s3");
    assert_string_equal(creq, "GET\n/test.txt\n" S3_Q_UNSIGNED
                              "\nhost:examplebucket.s3.amazonaws.com\n\nhost\nUNSIGNED-PAYLOAD");
    char *sts = sigv4_string_to_sign("20130524T000000Z", "20130524/us-east-1/s3/aws4_request",
                                     creq);
    assert_string_equal(sts, "AWS4-HMAC-SHA256\n20130524T000000Z\n"
                             "20130524/us-east-1/s3/aws4_request\n"
                             "3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04");
    free(creq);
    free(sts);

    keyring_t k = {S3_AKID, S3_SECRET, 0};
    sigv4_result_t res;
    tr_err err;
    assert_int_equal(verify(&t, &k, &res, &err), 0);
    assert_string_equal(res.access_key, S3_AKID);
    assert_string_equal(res.region, "us-east-1");
    assert_string_equal(res.service, "s3");
    assert_string_equal(res.date, "20130524");
    assert_string_equal(res.amz_date, "20130524T000000Z");
    assert_string_equal(res.signature, S3_SIG);

    /* The body does not matter to a presigned S3 URL. */
    treq_t x;
    treq_copy(&x, &t);
    x.r.payload_sha256 = EMPTY_SHA;
    assert_int_equal(verify(&x, &k, NULL, &err), 0);

    /* Validity: [date - 15 min, date + X-Amz-Expires]. */
    x.r.now_ms = S3_T0_MS + 86400 * 1000LL;
    assert_int_equal(verify(&x, &k, NULL, &err), 0);
    x.r.now_ms = S3_T0_MS + 86401 * 1000LL;
    assert_int_equal(verify(&x, &k, NULL, &err), TR_EAUTH_EXPIRED);
    assert_msg_contains(&err, "Request has expired");
    x.r.now_ms = S3_T0_MS - 900 * 1000LL;
    assert_int_equal(verify(&x, &k, NULL, &err), 0);
    x.r.now_ms = S3_T0_MS - 901 * 1000LL;
    assert_int_equal(verify(&x, &k, NULL, &err), TR_EAUTH_EXPIRED);
    assert_msg_contains(&err, "Signature not yet current");

    /* Tampering: signature byte, path, host, an added parameter, the secret. */
    treq_copy(&x, &t);
    x.r.query = S3_Q_UNSIGNED "&X-Amz-Signature="
                              "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d405";
    assert_int_equal(verify(&x, &k, NULL, &err), TR_EAUTH_SIG);
    assert_msg_contains(&err, "The request signature we calculated does not match the signature "
                              "you provided. Check your key and signing method.");
    x.r.query = S3_Q;
    x.r.path = "/test.txu";
    assert_int_equal(verify(&x, &k, NULL, &err), TR_EAUTH_SIG);
    x.r.path = "/test.txt";
    treq_set(&x, "host", "otherbucket.s3.amazonaws.com");
    assert_int_equal(verify(&x, &k, NULL, &err), TR_EAUTH_SIG);
    treq_set(&x, "host", "examplebucket.s3.amazonaws.com");
    x.r.query = S3_Q "&versionId=3";
    assert_int_equal(verify(&x, &k, NULL, &err), TR_EAUTH_SIG);
    x.r.query = S3_Q;
    keyring_t k2 = {S3_AKID, S3_SECRET "x", 0};
    assert_int_equal(verify(&x, &k2, NULL, &err), TR_EAUTH_SIG);
    assert_int_equal(verify(&x, &k, NULL, &err), 0);

    /* Parameter order in the URL does not matter. */
    x.r.query = "X-Amz-Signature=" S3_SIG "&X-Amz-SignedHeaders=host&X-Amz-Expires=86400"
                "&X-Amz-Date=20130524T000000Z&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2F"
                "us-east-1%2Fs3%2Faws4_request&X-Amz-Algorithm=AWS4-HMAC-SHA256";
    assert_int_equal(verify(&x, &k, NULL, &err), 0);
}

static void test_presigned_malformed(void **state) {
    (void)state;
    keyring_t k = {S3_AKID, S3_SECRET, 0};
    tr_err err;
    treq_t t;
    treq_init(&t, "GET", "/test.txt", NULL, S3_H, 1, NULL, S3_T0_MS);

    t.r.query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524"
                "%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400"
                "&X-Amz-Signature=" S3_SIG;
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_SIG);
    assert_msg_contains(&err, "Query-string authentication version 4 requires");

    t.r.query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524"
                "%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=604801"
                "&X-Amz-SignedHeaders=host&X-Amz-Signature=" S3_SIG;
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_SIG);
    assert_msg_contains(&err, "X-Amz-Expires must be less than a week (in seconds) that is 604800");

    t.r.query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524"
                "%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=1h"
                "&X-Amz-SignedHeaders=host&X-Amz-Signature=" S3_SIG;
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_SIG);
    assert_msg_contains(&err, "X-Amz-Expires should be a number");

    t.r.query = "X-Amz-Algorithm=AWS4-HMAC-SHA1&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524"
                "%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=60"
                "&X-Amz-SignedHeaders=host&X-Amz-Signature=" S3_SIG;
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_SIG);
    assert_msg_contains(&err, "X-Amz-Algorithm only supports");

    t.r.query = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524"
                "%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=2013-05-24&X-Amz-Expires=60"
                "&X-Amz-SignedHeaders=host&X-Amz-Signature=" S3_SIG;
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_SIG);
    assert_msg_contains(&err, "X-Amz-Date must be in the ISO8601 Long Format");

    /* Both mechanisms at once. */
    t.r.query = S3_Q;
    treq_set(&t, "Authorization", AUTHZ_PREFIX SH_VANILLA ", Signature=" SIG_VANILLA);
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_SIG);
    assert_msg_contains(&err, "Only one auth mechanism allowed");
}

/* A presigned URL for a non-s3 service signs the body hash when the caller knows it. */
static void test_presigned_roundtrip_other_service(void **state) {
    (void)state;
    const sigv4_header_t h[] = {{"Host", "sts.amazonaws.com"}};
    treq_t t;
    treq_init(&t, "GET", "/", NULL, h, 1, EMPTY_SHA, T0_MS);
    char q[1024];
    const char *unsigned_q = "Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-"
                             "HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20150830%2Fus-east-1%2F"
                             "sts%2Faws4_request&X-Amz-Date=20150830T123600Z&X-Amz-Expires=60&X-"
                             "Amz-SignedHeaders=host";
    t.r.query = unsigned_q;
    char *creq = sigv4_canonical_request(&t.r, "host", EMPTY_SHA, "sts");
    char *sts = sigv4_string_to_sign(AMZ_DATE, "20150830/us-east-1/sts/aws4_request", creq);
    uint8_t key[32], mac[32];
    unsigned int n;
    sigv4_signing_key(SECRET, "20150830", "us-east-1", "sts", key);
    HMAC(EVP_sha256(), key, 32, (const uint8_t *)sts, strlen(sts), mac, &n);
    int o = snprintf(q, sizeof q, "%s&X-Amz-Signature=", unsigned_q);
    for (int i = 0; i < 32; i++) o += snprintf(q + o, sizeof q - (size_t)o, "%02x", mac[i]);
    t.r.query = q;
    keyring_t k = {AKID, SECRET, 0};
    tr_err err;
    assert_int_equal(verify(&t, &k, NULL, &err), 0);
    t.r.now_ms = T0_MS + 61000;
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_EXPIRED);
    free(creq);
    free(sts);
}

/* ------------------------------------------------------------------------------------------ */
/* Header form: clock, keys, malformed input                                                  */
/* ------------------------------------------------------------------------------------------ */

static const sigv4_header_t VANILLA_H[] = {{"Host", HOST}, {"X-Amz-Date", AMZ_DATE}};
#define VANILLA_AUTHZ AUTHZ_PREFIX SH_VANILLA ", Signature=" SIG_VANILLA

static void vanilla(treq_t *t, long long now_ms) {
    treq_init(t, "GET", "/", NULL, VANILLA_H, 2, EMPTY_SHA, now_ms);
    treq_auth(t, VANILLA_AUTHZ);
}

static void test_clock_skew(void **state) {
    (void)state;
    keyring_t k = {AKID, SECRET, 0};
    tr_err err;
    treq_t t;
    vanilla(&t, T0_MS + 900 * 1000LL);
    assert_int_equal(verify(&t, &k, NULL, &err), 0);
    vanilla(&t, T0_MS - 900 * 1000LL);
    assert_int_equal(verify(&t, &k, NULL, &err), 0);

    vanilla(&t, T0_MS + 20 * 60 * 1000LL); /* now 12:56:00 */
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_EXPIRED);
    assert_int_equal(err.code, TR_EAUTH_EXPIRED);
    assert_string_equal(err.msg, "Signature expired: 20150830T123600Z is now earlier than "
                                 "20150830T124100Z (20150830T125600Z - 15 min.)");

    vanilla(&t, T0_MS - 16 * 60 * 1000LL); /* now 12:20:00 */
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_EXPIRED);
    assert_string_equal(err.msg, "Signature not yet current: 20150830T123600Z is still later than "
                                 "20150830T123500Z (20150830T122000Z + 15 min.)");
}

static void test_date_header(void **state) {
    (void)state;
    /* No X-Amz-Date: the Date header (IMF-fixdate) gives the request time. */
    const sigv4_header_t h[] = {{"Date", "Sun, 30 Aug 2015 12:36:00 GMT"}, {"Host", HOST}};
    treq_t t;
    treq_init(&t, "GET", "/", NULL, h, 2, EMPTY_SHA, T0_MS + 60000);
    char *creq = sigv4_canonical_request(&t.r, "date;host", EMPTY_SHA, "service");
    assert_string_equal(creq, "GET\n/\n\ndate:Sun, 30 Aug 2015 12:36:00 GMT\nhost:" HOST
                              "\n\ndate;host\n" EMPTY_SHA);
    char *sts = sigv4_string_to_sign(AMZ_DATE, SCOPE, creq);
    uint8_t key[32], mac[32];
    unsigned int n;
    ref_key(SECRET, "20150830", "us-east-1", "service", key);
    HMAC(EVP_sha256(), key, 32, (const uint8_t *)sts, strlen(sts), mac, &n);
    char authz[512];
    int o = snprintf(authz, sizeof authz, AUTHZ_PREFIX "date;host, Signature=");
    for (int i = 0; i < 32; i++) o += snprintf(authz + o, sizeof authz - (size_t)o, "%02x", mac[i]);
    treq_auth(&t, authz);
    keyring_t k = {AKID, SECRET, 0};
    sigv4_result_t res;
    tr_err err;
    assert_int_equal(verify(&t, &k, &res, &err), 0);
    assert_string_equal(res.amz_date, AMZ_DATE);

    t.r.now_ms = T0_MS + 16 * 60 * 1000LL;
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_EXPIRED);

    t.r.now_ms = T0_MS;
    treq_set(&t, "Date", "Sun, 30 Aug 2015 12:36:01 GMT");
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_SIG);
    treq_set(&t, "Date", "yesterday");
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_SIG);
    assert_msg_contains(&err, "Date must be in ISO-8601 'basic format'");
    free(creq);
    free(sts);
}

/* The header-phase subset: everything but the signature, with the same errors. */
static void test_check_headers(void **state) {
    (void)state;
    keyring_t k = {AKID, SECRET, 0};
    sigv4_result_t res;
    tr_err err;
    treq_t t;
    vanilla(&t, T0_MS);
    treq_auth(&t, AUTHZ_PREFIX SH_VANILLA ", Signature=" EMPTY_SHA);  /* wrong signature */
    t.r.payload_sha256 = "not a hash: ignored before the body";
    tr_err_clear(&err);
    assert_int_equal(sigv4_check_headers(&t.r, lookup, &k, &res, &err), 0);
    assert_string_equal(res.access_key, AKID);
    assert_string_equal(res.region, "us-east-1");
    assert_string_equal(res.service, "service");
    assert_string_equal(res.signature, "");
    t.r.payload_sha256 = EMPTY_SHA;
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_SIG);   /* the full check sees it */

    vanilla(&t, T0_MS + 20 * 60 * 1000LL);
    assert_int_equal(sigv4_check_headers(&t.r, lookup, &k, NULL, &err), TR_EAUTH_EXPIRED);
    vanilla(&t, T0_MS);
    keyring_t other = {"AKIDOTHER", SECRET, 0};
    assert_int_equal(sigv4_check_headers(&t.r, lookup, &other, NULL, &err), TR_EAUTH_KEY);
    treq_init(&t, "GET", "/", NULL, VANILLA_H, 2, EMPTY_SHA, T0_MS);
    assert_int_equal(sigv4_check_headers(&t.r, lookup, &k, NULL, &err), TR_EAUTH_MISSING);
    vanilla(&t, T0_MS);
    treq_add(&t, "x-amz-content-sha256", "zz");
    assert_int_equal(sigv4_check_headers(&t.r, lookup, &k, NULL, &err), TR_EAUTH_SIG);
    assert_msg_contains(&err, "must be a valid SHA256");
}

static void test_unknown_key(void **state) {
    (void)state;
    keyring_t k = {"AKIDOTHER", SECRET, 0};
    tr_err err;
    treq_t t;
    vanilla(&t, T0_MS);
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_KEY);
    assert_int_equal(err.code, TR_EAUTH_KEY);
    assert_string_equal(err.msg, "The security token included in the request is invalid.");
    assert_int_equal(k.calls, 1);

    treq_auth(&t, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/s3/aws4_request, "
                  "SignedHeaders=host;x-amz-date, Signature=" SIG_VANILLA);
    treq_add(&t, "x-amz-content-sha256", EMPTY_SHA);
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_KEY);
    assert_string_equal(err.msg,
                        "The AWS Access Key Id you provided does not exist in our records.");
}

static void test_missing_auth(void **state) {
    (void)state;
    keyring_t k = {AKID, SECRET, 0};
    sigv4_result_t res;
    tr_err err;
    treq_t t;
    treq_init(&t, "GET", "/", "Param1=value1", VANILLA_H, 2, EMPTY_SHA, T0_MS);
    assert_int_equal(verify(&t, &k, &res, &err), TR_EAUTH_MISSING);
    assert_int_equal(err.code, TR_EAUTH_MISSING);
    assert_msg_contains(&err, "Missing Authentication Token");
    assert_string_equal(res.access_key, "");
    assert_int_equal(k.calls, 0);

    treq_add(&t, "Authorization", "   ");
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_MISSING);

    /* Bad arguments. */
    assert_int_equal(sigv4_verify(NULL, lookup, &k, NULL, &err), TR_EINVAL);
    assert_int_equal(sigv4_verify(&t.r, NULL, &k, NULL, &err), TR_EINVAL);
}

static void expect_malformed(const char *authz, const char *msg_part) {
    keyring_t k = {AKID, SECRET, 0};
    tr_err err;
    treq_t t;
    vanilla(&t, T0_MS);
    treq_auth(&t, authz);
    int rc = verify(&t, &k, NULL, &err);
    if (rc != TR_EAUTH_SIG) fail_msg("%s: rc %d (%s)", authz, rc, err.msg);
    assert_int_equal(err.code, TR_EAUTH_SIG);
    assert_msg_contains(&err, msg_part);
}

static void test_malformed_authorization(void **state) {
    (void)state;
    expect_malformed("AWS4-HMAC-SHA256 SignedHeaders=host;x-amz-date, Signature=" SIG_VANILLA,
                     "Authorization header requires 'Credential' parameter.");
    expect_malformed("AWS4-HMAC-SHA256 Credential=" AKID "/" SCOPE,
                     "Authorization header requires 'Signature' parameter. Authorization header "
                     "requires 'SignedHeaders' parameter.");
    expect_malformed("AWS4-HMAC-SHA256 Credential=" AKID "/" SCOPE
                     ", SignedHeaders=host;x-amz-date, Signature",
                     "'Signature' not a valid key=value pair (missing equal-sign) in "
                     "Authorization header");
    expect_malformed("AWS4-HMAC-SHA512 Credential=" AKID "/" SCOPE
                     ", SignedHeaders=host;x-amz-date, Signature=" SIG_VANILLA,
                     "Unsupported Authorization Type");
    expect_malformed("Basic dXNlcjpwYXNz", "Unsupported Authorization Type");
    expect_malformed("AWS4-HMAC-SHA256 Credential=" AKID
                     "/20150830/us-east-1/aws4_request, SignedHeaders=host;x-amz-date, "
                     "Signature=" SIG_VANILLA,
                     "the Credential is mal-formed");
    expect_malformed("AWS4-HMAC-SHA256 Credential=" AKID
                     "/20150830/us-east-1/service/aws5_request, SignedHeaders=host;x-amz-date, "
                     "Signature=" SIG_VANILLA,
                     "Credential should be scoped with a valid terminator: 'aws4_request', not "
                     "'aws5_request'.");
    expect_malformed("AWS4-HMAC-SHA256 Credential=" AKID
                     "/20150829/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, "
                     "Signature=" SIG_VANILLA,
                     "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                     "date from HTTP: '20150829' != '20150830', from '20150830T123600Z'.");
    expect_malformed(AUTHZ_PREFIX "x-amz-date, Signature=" SIG_VANILLA,
                     "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.");
    expect_malformed(AUTHZ_PREFIX "host;my-header1;x-amz-date, Signature=" SIG_VANILLA,
                     "Header 'my-header1' is listed in SignedHeaders but is not in the request");
    expect_malformed(AUTHZ_PREFIX SH_VANILLA ", Signature=5fa00fa3",
                     "The request signature we calculated does not match");
    expect_malformed(AUTHZ_PREFIX SH_VANILLA ", Signature=zz" SIG_VANILLA,
                     "The request signature we calculated does not match");

    /* Date problems. */
    keyring_t k = {AKID, SECRET, 0};
    tr_err err;
    treq_t t;
    vanilla(&t, T0_MS);
    treq_set(&t, "X-Amz-Date", "2015-08-30T12:36:00Z");
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_SIG);
    assert_msg_contains(&err,
                        "Date must be in ISO-8601 'basic format'. Got '2015-08-30T12:36:00Z'");
    treq_set(&t, "X-Amz-Date", "20150231T123600Z");
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_SIG);

    const sigv4_header_t nodate[] = {{"Host", HOST}};
    treq_init(&t, "GET", "/", NULL, nodate, 1, EMPTY_SHA, T0_MS);
    treq_auth(&t, VANILLA_AUTHZ);
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_SIG);
    assert_msg_contains(&err, "Authorization header requires existence of either a 'X-Amz-Date' "
                              "or a 'Date' header.");
}

static void test_authorization_spacing(void **state) {
    (void)state;
    const char *forms[] = {
        VANILLA_AUTHZ,
        "AWS4-HMAC-SHA256 Credential=" AKID "/" SCOPE ",SignedHeaders=" SH_VANILLA
        ",Signature=" SIG_VANILLA,
        "AWS4-HMAC-SHA256   Credential=" AKID "/" SCOPE " ,  SignedHeaders=" SH_VANILLA
        " ,\tSignature=" SIG_VANILLA "  ",
        "AWS4-HMAC-SHA256 Signature=" SIG_VANILLA ", Credential=" AKID "/" SCOPE
        ", SignedHeaders=" SH_VANILLA,
        "AWS4-HMAC-SHA256 Credential=" AKID "/" SCOPE " SignedHeaders=" SH_VANILLA
        " Signature=" SIG_VANILLA,
    };
    keyring_t k = {AKID, SECRET, 0};
    tr_err err;
    treq_t t;
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        vanilla(&t, T0_MS);
        treq_auth(&t, forms[i]);
        int rc = verify(&t, &k, NULL, &err);
        if (rc) fail_msg("form %zu: rc %d: %s", i, rc, err.msg);
    }
    /* Header names arrive in any case. */
    const sigv4_header_t h[] = {{"host", HOST}, {"x-amz-date", AMZ_DATE}};
    treq_init(&t, "GET", "/", NULL, h, 2, EMPTY_SHA, T0_MS);
    treq_add(&t, "AUTHORIZATION", VANILLA_AUTHZ);
    assert_int_equal(verify(&t, &k, NULL, &err), 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Payload hash rules                                                                         */
/* ------------------------------------------------------------------------------------------ */

static void test_payload_hash_rules(void **state) {
    (void)state;
    keyring_t k = {AKID, SECRET, 0};
    tr_err err;
    treq_t t;
    char body[65], other[65];
    sha_hex("{\"StreamName\":\"orders\"}", body);
    sha_hex("{\"StreamName\":\"ordersX\"}", other);

    /* Non-s3 with the header: it is what was signed, and it must match the body. */
    const sigv4_header_t h[] = {{"Host", "kinesis.us-east-1.amazonaws.com"},
                                {"X-Amz-Date", AMZ_DATE},
                                {"X-Amz-Target", "Kinesis_20131202.DescribeStream"},
                                {"Content-Type", "application/x-amz-json-1.1"},
                                {"X-Amz-Content-Sha256", body}};
    treq_init(&t, "POST", "/", NULL, h, 5, body, T0_MS);
    char *a = sigv4_sign(&t.r, AKID, SECRET, "us-east-1", "kinesis", AMZ_DATE);
    assert_non_null(a);
    treq_auth(&t, a);
    free(a);
    assert_int_equal(verify(&t, &k, NULL, &err), 0);
    t.r.payload_sha256 = NULL; /* body not hashed by the caller (streaming): header trusted */
    assert_int_equal(verify(&t, &k, NULL, &err), 0);
    t.r.payload_sha256 = other;
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_SIG);
    assert_msg_contains(&err, "The provided 'x-amz-content-sha256' header does not match what was "
                              "computed.");

    /* UNSIGNED-PAYLOAD is an s3 feature. */
    const sigv4_header_t hu[] = {{"Host", "kinesis.us-east-1.amazonaws.com"},
                                 {"X-Amz-Date", AMZ_DATE},
                                 {"X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD"}};
    treq_init(&t, "POST", "/", NULL, hu, 3, body, T0_MS);
    a = sigv4_sign(&t.r, AKID, SECRET, "us-east-1", "kinesis", AMZ_DATE);
    treq_auth(&t, a);
    free(a);
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_SIG);
    assert_msg_contains(&err, "only accepted by s3");

    /* Garbage in the header. */
    const sigv4_header_t hg[] = {{"Host", "kinesis.us-east-1.amazonaws.com"},
                                 {"X-Amz-Date", AMZ_DATE},
                                 {"X-Amz-Content-Sha256", "abc"}};
    treq_init(&t, "POST", "/", NULL, hg, 3, body, T0_MS);
    a = sigv4_sign(&t.r, AKID, SECRET, "us-east-1", "kinesis", AMZ_DATE);
    treq_auth(&t, a);
    free(a);
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_SIG);
    assert_msg_contains(&err, "must be a valid SHA256");

    /* Neither the header nor a computed hash. */
    vanilla(&t, T0_MS);
    t.r.payload_sha256 = NULL;
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_SIG);
    assert_msg_contains(&err, "Missing required header for this request: x-amz-content-sha256");
}

/* ------------------------------------------------------------------------------------------ */
/* Client signing round trips                                                                 */
/* ------------------------------------------------------------------------------------------ */

static void test_sign_roundtrip_s3(void **state) {
    (void)state;
    keyring_t k = {"AKIAROUNDTRIP", "s3cr3t/with+chars", 0};
    tr_err err;
    sigv4_result_t res;
    char body[65];
    sha_hex("hello, object", body);
    const sigv4_header_t h[] = {{"Host", "127.0.0.1:4566"},
                                {"X-Amz-Date", "20240229T235959Z"},
                                {"X-Amz-Content-Sha256", body},
                                {"Content-Type", "text/plain"},
                                {"X-Amz-Meta-Colour", "  dark   blue "},
                                {"Content-Length", "13"}};
    treq_t t;
    treq_init(&t, "PUT", "/bucket/my%20key/%E2%82%AC+%21.txt", "uploadId=a%2Bb%3D&partNumber=2", h,
              6, body, 1709251199000LL);
    char *a = sigv4_sign(&t.r, k.akid, k.secret, "eu-central-1", "s3", "20240229T235959Z");
    assert_non_null(a);
    assert_non_null(strstr(a, "Credential=AKIAROUNDTRIP/20240229/eu-central-1/s3/aws4_request, "
                              "SignedHeaders=content-length;content-type;host;x-amz-content-sha256;"
                              "x-amz-date;x-amz-meta-colour, Signature="));
    treq_auth(&t, a);
    free(a);
    assert_int_equal(verify(&t, &k, &res, &err), 0);
    assert_string_equal(res.service, "s3");
    assert_string_equal(res.region, "eu-central-1");

    /* s3 does not normalise: "/bucket/./key" is another object. */
    treq_t x;
    treq_copy(&x, &t);
    x.r.path = "/bucket/./my%20key/%E2%82%AC+%21.txt";
    assert_int_equal(verify(&x, &k, NULL, &err), TR_EAUTH_SIG);

    /* An x-amz-* header the signature does not cover is refused. */
    treq_copy(&x, &t);
    treq_add(&x, "X-Amz-Acl", "public-read");
    assert_int_equal(verify(&x, &k, NULL, &err), TR_EAUTH_SIG);
    assert_msg_contains(&err, "There were headers present in the request which were not signed: "
                              "X-Amz-Acl");

    /* UNSIGNED-PAYLOAD. */
    const sigv4_header_t hu[] = {{"Host", "127.0.0.1:4566"},
                                 {"X-Amz-Date", "20240229T235959Z"},
                                 {"X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD"}};
    treq_init(&t, "GET", "/bucket/key", "list-type=2&prefix=a%2Fb", hu, 3, NULL, 1709251199000LL);
    a = sigv4_sign(&t.r, k.akid, k.secret, "eu-central-1", "s3", "20240229T235959Z");
    treq_auth(&t, a);
    free(a);
    assert_int_equal(verify(&t, &k, NULL, &err), 0);
}

static void test_sign_roundtrip_normalised_path(void **state) {
    (void)state;
    keyring_t k = {AKID, SECRET, 0};
    tr_err err;
    const sigv4_header_t h[] = {{"Host", "lambda.us-east-1.amazonaws.com"},
                                {"X-Amz-Date", AMZ_DATE}};
    treq_t t;
    treq_init(&t, "POST", "/2015-03-31/functions/./f/../my%20fn//invocations",
              "Qualifier=%24LATEST", h, 2, EMPTY_SHA, T0_MS);
    char *creq = sigv4_canonical_request(&t.r, "host;x-amz-date", EMPTY_SHA, "lambda");
    assert_non_null(strstr(creq, "\n/2015-03-31/functions/my%2520fn/invocations\n"
                                 "Qualifier=%24LATEST\n"));
    free(creq);
    char *a = sigv4_sign(&t.r, AKID, SECRET, "us-east-1", "lambda", AMZ_DATE);
    treq_auth(&t, a);
    free(a);
    assert_int_equal(verify(&t, &k, NULL, &err), 0);
    /* The same resource spelt another way signs the same. */
    t.r.path = "/2015-03-31/functions/my%20fn/invocations";
    assert_int_equal(verify(&t, &k, NULL, &err), 0);
    t.r.path = "/2015-03-31/functions/my%20fn2/invocations";
    assert_int_equal(verify(&t, &k, NULL, &err), TR_EAUTH_SIG);
}

/* HTTP/2 clients (the JS SDK's NodeHttp2Handler) sign the ":authority" pseudo-header instead of
 * host; the HTTP layer presents :authority as "host".  Vector signed by an independent
 * implementation (tests/helpers/kinesis.py, sigv4_authorization). */
static void test_authority_pseudo_header(void **state) {
    (void)state;
    keyring_t k = {AKID, SECRET, 0};
    tr_err err;
    const char *body_sha = "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
    const sigv4_header_t h[] = {{"host", "127.0.0.1:4566"},
                                {"content-type", "application/x-amz-json-1.1"},
                                {"x-amz-date", AMZ_DATE},
                                {"x-amz-target", "Kinesis_20131202.ListStreams"}};
    treq_t t;
    treq_init(&t, "POST", "/", "", h, 4, body_sha, T0_MS);
    treq_auth(&t, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/kinesis/"
                  "aws4_request, SignedHeaders=:authority;content-type;x-amz-date;x-amz-target, "
                  "Signature=faf106cc2f8137f323c41219288036a393748ff34a34059ebcdff7c1a81077ab");
    assert_int_equal(verify(&t, &k, NULL, &err), 0);
    /* The value signed is the authority's: another host fails. */
    treq_t x;
    treq_copy(&x, &t);
    treq_set(&x, "host", "127.0.0.1:4567");
    assert_int_equal(verify(&x, &k, NULL, &err), TR_EAUTH_SIG);
    /* No host at all: the signed :authority is missing from the request. */
    treq_init(&x, "POST", "/", "", h + 1, 3, body_sha, T0_MS);
    treq_auth(&x, t.authz);
    assert_int_equal(verify(&x, &k, NULL, &err), TR_EAUTH_SIG);
    assert_msg_contains(&err, ":authority");
}

static void test_sign_refuses_incomplete(void **state) {
    (void)state;
    treq_t t;
    const sigv4_header_t nohost[] = {{"X-Amz-Date", AMZ_DATE}};
    treq_init(&t, "GET", "/", NULL, nohost, 1, EMPTY_SHA, 0);
    assert_null(sigv4_sign(&t.r, AKID, SECRET, "us-east-1", "service", AMZ_DATE));
    treq_init(&t, "GET", "/", NULL, VANILLA_H, 2, EMPTY_SHA, 0);
    assert_null(sigv4_sign(&t.r, AKID, SECRET, "us-east-1", "service", "20150830T123601Z"));
    assert_null(sigv4_sign(&t.r, AKID, SECRET, "us-east-1", "service", "2015-08-30"));
    t.r.payload_sha256 = NULL;
    assert_null(sigv4_sign(&t.r, AKID, SECRET, "us-east-1", "service", AMZ_DATE));
    assert_null(sigv4_canonical_request(&t.r, "host;x-amz-date;missing", EMPTY_SHA, "service"));
    assert_null(sigv4_canonical_request(NULL, "host", EMPTY_SHA, "service"));
}

/* ------------------------------------------------------------------------------------------ */
/* Canonical request corner cases                                                             */
/* ------------------------------------------------------------------------------------------ */

static char *creq_line(const char *path, const char *query, const char *service, int line) {
    treq_t t;
    treq_init(&t, "GET", path, query, VANILLA_H, 2, EMPTY_SHA, 0);
    char *c = sigv4_canonical_request(&t.r, "host", EMPTY_SHA, service);
    assert_non_null(c);
    char *p = c;
    for (int i = 0; i < line; i++) p = strchr(p, '\n') + 1;
    char *e = strchr(p, '\n');
    size_t n = (size_t)(e - p);
    memmove(c, p, n);
    c[n] = '\0';
    return c;
}

#define CHECK_LINE(path, query, service, line, want)                                               \
    do {                                                                                           \
        char *got_ = creq_line(path, query, service, line);                                        \
        assert_string_equal(got_, want);                                                           \
        free(got_);                                                                                \
    } while (0)

static void test_canonical_uri(void **state) {
    (void)state;
    CHECK_LINE("", NULL, "service", 1, "/");
    CHECK_LINE("/a%20b", NULL, "service", 1, "/a%2520b");
    CHECK_LINE("/a/b/..", NULL, "service", 1, "/a");
    CHECK_LINE("/a/b/../", NULL, "service", 1, "/a/");
    CHECK_LINE("/..", NULL, "service", 1, "/");
    CHECK_LINE("/a:b@c!$", NULL, "service", 1, "/a%3Ab%40c%21%24");
    /* s3: once, as sent, escapes kept verbatim. */
    CHECK_LINE("", NULL, "s3", 1, "/");
    CHECK_LINE("//a/./b/../c", NULL, "s3", 1, "//a/./b/../c");
    CHECK_LINE("/a%20b/c d", NULL, "s3", 1, "/a%20b/c%20d");
    CHECK_LINE("/k%2Fey/%zz", NULL, "s3", 1, "/k%2Fey/%25zz");
    CHECK_LINE("/\xe1\x88\xb4", NULL, "s3", 1, "/%E1%88%B4");
}

static void test_canonical_query(void **state) {
    (void)state;
    CHECK_LINE("/", "", "service", 2, "");
    CHECK_LINE("/", "a=b+c", "service", 2, "a=b%2Bc");
    CHECK_LINE("/", "a=b%20c", "service", 2, "a=b%20c");
    CHECK_LINE("/", "a=b=c", "service", 2, "a=b%3Dc");
    CHECK_LINE("/", "flag&a=1", "service", 2, "a=1&flag=");
    CHECK_LINE("/", "&&a=1&&b=&", "service", 2, "a=1&b=");
    CHECK_LINE("/", "p=%2f%7E", "service", 2, "p=%2F~");
    CHECK_LINE("/", "p=%zz%4", "service", 2, "p=%25zz%254");
    CHECK_LINE("/", "b=2&X-Amz-Signature=abc&a=1", "service", 2, "a=1&b=2");
    CHECK_LINE("/", "B=1&a=1&_=1&~=1&A=2", "service", 2, "A=2&B=1&_=1&a=1&~=1");
    CHECK_LINE("/", "%41=x&A=a", "service", 2, "A=a&A=x");
    /* Many parameters: past the on-stack scratch. */
    char q[8192];
    int o = 0;
    for (int i = 99; i >= 0; i--)
        o += snprintf(q + o, sizeof q - (size_t)o, "p%02d=v%%20%d&", i, i);
    char *line = creq_line("/", q, "service", 2);
    assert_int_equal(strncmp(line, "p00=v%200&p01=v%201&p02=v%202&", 30), 0);
    assert_non_null(strstr(line, "&p99=v%2099"));
    free(line);
}

static void test_canonical_headers_many(void **state) {
    (void)state;
    /* More headers than the on-stack index holds, signed in reverse arrival order. */
    static char names[100][16], values[100][16];
    sigv4_header_t h[102];
    h[0] = (sigv4_header_t){"Host", HOST};
    h[1] = (sigv4_header_t){"X-Amz-Date", AMZ_DATE};
    for (int i = 0; i < 100; i++) {
        snprintf(names[i], sizeof names[i], "X-H%02d", 99 - i);
        snprintf(values[i], sizeof values[i], " v %d ", 99 - i);
        h[2 + i] = (sigv4_header_t){names[i], values[i]};
    }
    sigv4_req_t r = {"GET", "/", NULL, h, 102, EMPTY_SHA, T0_MS};
    char *a = sigv4_sign(&r, AKID, SECRET, "us-east-1", "service", AMZ_DATE);
    assert_non_null(a);
    assert_non_null(strstr(a, "SignedHeaders=host;x-amz-date;x-h00;x-h01;"));
    char *c = sigv4_canonical_request(&r, "x-h00;x-h99", EMPTY_SHA, "service");
    assert_string_equal(c, "GET\n/\n\nx-h00:v 0\nx-h99:v 99\n\nx-h00;x-h99\n" EMPTY_SHA);
    free(c);
    sigv4_header_t h2[103];
    memcpy(h2, h, sizeof h);
    h2[102] = (sigv4_header_t){"Authorization", a};
    r.headers = h2;
    r.n_headers = 103;
    keyring_t k = {AKID, SECRET, 0};
    tr_err err;
    assert_int_equal(sigv4_verify(&r, lookup, &k, NULL, &err), 0);
    free(a);
}

/* ------------------------------------------------------------------------------------------ */
/* Signing-key cache under threads                                                            */
/* ------------------------------------------------------------------------------------------ */

#define N_THREADS 4
#define N_ROUNDS 150

typedef struct worker {
    int failures;
} worker_t;

static void *worker_run(void *arg) {
    worker_t *w = arg;
    static const char *const regions[] = {"us-east-1",    "us-west-2",  "eu-west-1",
                                          "eu-central-1", "ap-south-1", "sa-east-1"};
    static const char *const secrets[] = {"secret-a", "secret-b"};
    for (int i = 0; i < N_ROUNDS; i++) {
        const char *region = regions[i % 6];
        const char *secret = secrets[(i / 6) % 2];
        treq_t t;
        treq_init(&t, "GET", "/", NULL, VANILLA_H, 2, EMPTY_SHA, T0_MS);
        char *a = sigv4_sign(&t.r, AKID, secret, region, "service", AMZ_DATE);
        if (!a) {
            w->failures++;
            continue;
        }
        treq_auth(&t, a);
        free(a);
        keyring_t k = {AKID, secret, 0};
        tr_err err;
        sigv4_result_t res;
        if (sigv4_verify(&t.r, lookup, &k, &res, &err) != 0 || strcmp(res.region, region) != 0)
            w->failures++;
        keyring_t wrong = {AKID, secrets[((i / 6) + 1) % 2], 0};
        if (sigv4_verify(&t.r, lookup, &wrong, NULL, &err) != TR_EAUTH_SIG) w->failures++;
    }
    return NULL;
}

/* sigv4_payload_hash: lowercase hex SHA-256 (the empty string's, and "abc"'s, FIPS 180-2). */
static void test_payload_hash(void **state) {
    (void)state;
    char h[65];
    sigv4_payload_hash("", 0, h);
    assert_string_equal(h, EMPTY_SHA);
    sigv4_payload_hash("abc", 3, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_cache_threads(void **state) {
    (void)state;
    pthread_t th[N_THREADS];
    worker_t w[N_THREADS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < N_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].failures, 0);
    }
}

/* ------------------------------------------------------------------------------------------ */

int main(void) {
    size_t nv = sizeof VECTORS / sizeof VECTORS[0];
    struct CMUnitTest *vt = calloc(nv, sizeof *vt);
    for (size_t i = 0; i < nv; i++) {
        vt[i].name = VECTORS[i].name;
        vt[i].test_func = test_vector;
        vt[i].initial_state = (void *)&VECTORS[i];
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signing_key_docs),
        cmocka_unit_test(test_signing_key_matches_openssl_hmac),
        cmocka_unit_test(test_iam_docs_example),
        cmocka_unit_test(test_presigned_s3_docs_example),
        cmocka_unit_test(test_presigned_malformed),
        cmocka_unit_test(test_presigned_roundtrip_other_service),
        cmocka_unit_test(test_clock_skew),
        cmocka_unit_test(test_date_header),
        cmocka_unit_test(test_check_headers),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_missing_auth),
        cmocka_unit_test(test_malformed_authorization),
        cmocka_unit_test(test_authorization_spacing),
        cmocka_unit_test(test_payload_hash_rules),
        cmocka_unit_test(test_sign_roundtrip_s3),
        cmocka_unit_test(test_sign_roundtrip_normalised_path),
        cmocka_unit_test(test_authority_pseudo_header),
        cmocka_unit_test(test_sign_refuses_incomplete),
        cmocka_unit_test(test_canonical_uri),
        cmocka_unit_test(test_canonical_query),
        cmocka_unit_test(test_canonical_headers_many),
        cmocka_unit_test(test_cache_threads),
        cmocka_unit_test(test_payload_hash),
    };
    int failed = _cmocka_run_group_tests("sigv4_test_suite", vt, nv, NULL, NULL);
    failed += cmocka_run_group_tests_name("sigv4", tests, NULL, NULL);
    free(vt);
    return failed ? 1 : 0;
}
