/*
 * Public API surface: status codes and names, OpenCL errors passed through,
 * NULL handling, descriptor helpers, several contexts at once, device
 * selection through CLNORM_DEVICE, variant names, tuning files.
 */
#define _GNU_SOURCE /* strcasestr */
#include "th_check.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

START_TEST(status_strings_and_names)
{
    th_begin();
    for (int s = 0; s < CLNORM_STATUS_END_; s++) {
        const char *str = clnorm_status_string(s), *name = clnorm_status_name(s);
        TH_EXPECT(str && str[0], "status %d: empty string", s);
        TH_EXPECT(name && strncmp(name, "CLNORM_", 7) == 0, "status %d: name %s", s, name ? name : "(null)");
        TH_EXPECT(!clnorm_is_cl_error(s), "status %d counted as an OpenCL error", s);
        for (int t = 0; t < s; t++) {
            TH_EXPECT(strcmp(str, clnorm_status_string(t)) != 0, "statuses %d and %d share a message", s, t);
            TH_EXPECT(strcmp(name, clnorm_status_name(t)) != 0, "statuses %d and %d share a name", s, t);
        }
    }
    /* stable numbers, as the header lists them */
    TH_EXPECT(CLNORM_OK == 0 && CLNORM_ERR_ALIASING == 14 && CLNORM_ERR_INVALID_BUFFER == 22, "renumbered");
    TH_EXPECT(strcmp(clnorm_status_name(CLNORM_ERR_ALIASING), "CLNORM_ERR_ALIASING") == 0, "name of 14: %s",
              clnorm_status_name(CLNORM_ERR_ALIASING));
    TH_EXPECT(strcmp(clnorm_status_name(CLNORM_OK), "CLNORM_OK") == 0, "name of 0");
    /* OpenCL codes: clnorm_status is signed, so they compare below 0 as the
     * enum type itself (GCC makes an all-positive enum unsigned). */
    _Static_assert((clnorm_status)CL_OUT_OF_RESOURCES < 0, "clnorm_status must be a signed type");
    {
        clnorm_status neg = (clnorm_status)CL_INVALID_CONTEXT;
        TH_EXPECT(neg < 0 && neg == CL_INVALID_CONTEXT, "clnorm_status holding -34 is not < 0");
    }
    /* OpenCL codes */
    TH_EXPECT(clnorm_is_cl_error(CL_OUT_OF_RESOURCES), "-5 not an OpenCL error");
    TH_EXPECT(clnorm_is_cl_error(CL_INVALID_CONTEXT), "-34 not an OpenCL error");
    TH_EXPECT(strcmp(clnorm_status_name(CL_OUT_OF_RESOURCES), "CL_OUT_OF_RESOURCES") == 0, "name of -5: %s",
              clnorm_status_name(CL_OUT_OF_RESOURCES));
    TH_EXPECT(strcmp(clnorm_status_name(CL_INVALID_KERNEL_ARGS), "CL_INVALID_KERNEL_ARGS") == 0, "name of -52: %s",
              clnorm_status_name(CL_INVALID_KERNEL_ARGS));
    for (int s = -70; s < 0; s++) {
        TH_EXPECT(clnorm_status_string(s) && clnorm_status_string(s)[0], "no message for %d", s);
        TH_EXPECT(clnorm_status_name(s) != NULL, "NULL name for %d", s);
    }
    /* unknown values: never NULL */
    int odd[] = {CLNORM_STATUS_END_, 1000, -1000, 0x7fffffff, -0x7fffffff - 1};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        TH_EXPECT(clnorm_status_string(odd[i]) != NULL, "NULL message for %d", odd[i]);
        TH_EXPECT(clnorm_status_name(odd[i]) != NULL, "NULL name for %d", odd[i]);
    }
    th_finish();
}
END_TEST

START_TEST(variant_names)
{
    th_begin();
    for (int v = 0; v < CLNORM_VARIANT_COUNT; v++) {
        const char *n = clnorm_variant_name((clnorm_variant)v);
        TH_EXPECT(n && n[0], "variant %d has no name", v);
        for (int w = 0; w < v; w++)
            TH_EXPECT(strcmp(n, clnorm_variant_name((clnorm_variant)w)) != 0, "variants %d, %d share a name", v, w);
        clnorm_variant back = (clnorm_variant)-1;
        TH_EXPECT(clnorm_variant_from_name(n, &back) == CLNORM_OK && back == (clnorm_variant)v,
                  "clnorm_variant_from_name(\"%s\") is not variant %d", n, v);
    }
    TH_EXPECT(clnorm_variant_name((clnorm_variant)99) != NULL, "NULL name for variant 99");
    clnorm_variant v = CLNORM_VARIANT_WI;
    TH_EXPECT(clnorm_variant_from_name("fast", &v) == CLNORM_ERR_INVALID_VARIANT && v == CLNORM_VARIANT_WI,
              "an unknown name is not refused, or changes *v");
    TH_EXPECT(clnorm_variant_from_name("WG", &v) == CLNORM_ERR_INVALID_VARIANT, "names are case-sensitive");
    TH_EXPECT(clnorm_variant_from_name(NULL, &v) == CLNORM_ERR_NULL_ARGUMENT &&
                  clnorm_variant_from_name("wg", NULL) == CLNORM_ERR_NULL_ARGUMENT,
              "NULL arguments");
    th_finish();
}
END_TEST

START_TEST(null_handling)
{
    th_begin();
    clnorm_destroy(NULL);
    TH_EXPECT(clnorm_create_default(NULL) == CLNORM_ERR_NULL_ARGUMENT, "create_default(NULL)");
    clnorm_ctx *c = (clnorm_ctx *)0x1;
    TH_EXPECT(clnorm_create_from_queue(NULL, &c) != CLNORM_OK, "create_from_queue(NULL queue) succeeded");
    TH_EXPECT(clnorm_create_from_queue(clnorm_queue(th_ctx()), NULL) == CLNORM_ERR_NULL_ARGUMENT,
              "create_from_queue(q, NULL)");
    clnorm_desc d;
    clnorm_desc_init(&d, CLNORM_LAYER_NORM);
    TH_EXPECT(clnorm_forward(NULL, &d, 0, NULL, NULL) == CLNORM_ERR_NULL_ARGUMENT, "forward(NULL ctx)");
    TH_EXPECT(clnorm_forward(th_ctx(), NULL, 0, NULL, NULL) == CLNORM_ERR_NULL_ARGUMENT, "forward(NULL desc)");
    d.rows = 2;
    d.cols = 3;
    TH_EXPECT(clnorm_forward(th_ctx(), &d, 0, NULL, NULL) == CLNORM_ERR_MISSING_BUFFER, "forward without x/y: %s",
              clnorm_status_name(clnorm_forward(th_ctx(), &d, 0, NULL, NULL)));
    TH_EXPECT(clnorm_set_variant(NULL, CLNORM_VARIANT_AUTO, 0) == CLNORM_ERR_NULL_ARGUMENT, "set_variant(NULL)");
    TH_EXPECT(clnorm_last_error(NULL) != NULL, "last_error(NULL) is NULL");
    TH_EXPECT(clnorm_build_log(NULL) != NULL, "build_log(NULL) is NULL");
    TH_EXPECT(clnorm_build_log(th_ctx()) != NULL && clnorm_build_log(th_ctx())[0] == 0,
              "build log not empty without a failed build");
    th_finish();
}
END_TEST

/* Event wait lists that disagree with their count; an event from another
 * context is an OpenCL error passed through as a negative code. */
START_TEST(events_and_cl_errors)
{
    clnorm_ctx *ctx = th_ctx();
    th_begin();
    cl_int err;
    cl_context cl = clnorm_cl_context(ctx);
    const size_t E = 64;
    cl_mem xb = clCreateBuffer(cl, CL_MEM_READ_WRITE, E * 4, NULL, &err);
    cl_mem yb = clCreateBuffer(cl, CL_MEM_READ_WRITE, E * 4, NULL, &err);
    float zero[64] = {0};
    clEnqueueWriteBuffer(clnorm_queue(ctx), xb, CL_TRUE, 0, E * 4, zero, 0, NULL, NULL);
    clnorm_desc d;
    clnorm_desc_init(&d, CLNORM_LAYER_NORM);
    d.rows = 4;
    d.cols = 16;
    d.x.mem = xb;
    d.y.mem = yb;
    cl_event ev = (cl_event)0x1;
    TH_EXPECT(clnorm_forward(ctx, &d, 2, NULL, &ev) == CLNORM_ERR_INVALID_EVENTS, "count 2 with no list");
    TH_EXPECT(ev == NULL, "event not cleared on failure");
    cl_event user = clCreateUserEvent(cl, &err);
    TH_EXPECT(clnorm_forward(ctx, &d, 0, &user, NULL) == CLNORM_ERR_INVALID_EVENTS, "list with count 0");
    clSetUserEventStatus(user, CL_COMPLETE);
    clReleaseEvent(user);

    /* a user event of a different context: OpenCL rejects it at enqueue */
    cl_device_id dev = clnorm_device(ctx);
    cl_context other = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
    cl_event foreign = clCreateUserEvent(other, &err);
    /* OpenCL says CL_INVALID_CONTEXT; some drivers (PoCL) accept it. Either
       the driver's error comes back unchanged as a negative status, or OK. */
    clnorm_status st = clnorm_forward(ctx, &d, 1, &foreign, NULL);
    TH_EXPECT(st == CLNORM_OK || (st < 0 && clnorm_is_cl_error(st)),
              "foreign event: status %d (%s), expected an OpenCL error or OK", st, clnorm_status_name(st));
    if (st < 0) {
        TH_EXPECT(st != CL_INVALID_CONTEXT || strcmp(clnorm_status_name(st), "CL_INVALID_CONTEXT") == 0,
                  "name of %d: %s", st, clnorm_status_name(st));
        TH_EXPECT(clnorm_last_error(ctx)[0] != 0, "no message after an OpenCL error");
    } else {
        printf("# this driver accepts an event of another context (no OpenCL error to pass through)\n");
    }
    clSetUserEventStatus(foreign, CL_COMPLETE);
    clFinish(clnorm_queue(ctx));
    clReleaseEvent(foreign);
    /* a buffer from another context */
    cl_mem fb = clCreateBuffer(other, CL_MEM_READ_WRITE, E * 4, NULL, &err);
    d.y.mem = fb;
    st = clnorm_forward(ctx, &d, 0, NULL, NULL);
    TH_EXPECT(st == CLNORM_ERR_FOREIGN_BUFFER, "foreign buffer: %d %s", st, clnorm_status_name(st));
    d.y.mem = yb;
    /* the context still works afterwards */
    st = clnorm_forward(ctx, &d, 0, NULL, NULL);
    TH_EXPECT(st == CLNORM_OK, "context unusable after errors: %d %s", st, clnorm_status_name(st));
    clFinish(clnorm_queue(ctx));
    clReleaseMemObject(fb);
    clReleaseContext(other);
    clReleaseMemObject(xb);
    clReleaseMemObject(yb);
    th_finish();
}
END_TEST

START_TEST(desc_helpers)
{
    th_begin();
    clnorm_desc d;
    memset(&d, 0xab, sizeof d);
    clnorm_desc_init(&d, CLNORM_GROUP_NORM);
    TH_EXPECT(d.op == CLNORM_GROUP_NORM && d.eps == 1e-5f && d.momentum == 0.1f && d.training == 1,
              "desc_init defaults");
    TH_EXPECT(d.rows == 0 && d.cols == 0 && d.n == 0 && d.c == 0 && d.rank == 0 && d.groups <= 1 /* the library presets 1 */ &&
                  d.per_sample_affine == 0 && d.layout == CLNORM_CHANNELS_FIRST && d.x.mem == NULL &&
                  d.running_var.mem == NULL && d.running_var.offset == 0,
              "desc_init does not zero the rest");
    /* elements and sets against the reference's own view, valid and invalid shapes */
    struct { clnorm_op op; size_t rows, cols, n, c; unsigned rank; size_t s0, s1, s2, g; } t[] = {
        {CLNORM_LAYER_NORM, 3, 7, 0, 0, 0, 0, 0, 0, 0},  {CLNORM_RMS_NORM, 1000, 1, 0, 0, 0, 0, 0, 0, 0},
        {CLNORM_LAYER_NORM, 0, 7, 0, 0, 0, 0, 0, 0, 0},  {CLNORM_BATCH_NORM, 0, 0, 2, 3, 2, 4, 5, 0, 0},
        {CLNORM_BATCH_NORM, 0, 0, 2, 3, 0, 0, 0, 0, 0},  {CLNORM_INSTANCE_NORM, 0, 0, 2, 3, 3, 4, 5, 6, 0},
        {CLNORM_GROUP_NORM, 0, 0, 2, 6, 1, 5, 0, 0, 3},  {CLNORM_GROUP_NORM, 0, 0, 2, 6, 1, 5, 0, 0, 4},
        {CLNORM_GROUP_NORM, 0, 0, 2, 6, 1, 5, 0, 0, 0},  {CLNORM_BATCH_NORM, 0, 0, 2, 3, 2, 0, 5, 0, 0},
        {CLNORM_INSTANCE_NORM, 0, 0, 0, 3, 1, 4, 0, 0, 0}, {CLNORM_BATCH_NORM, 0, 0, 2, 3, 4, 1, 1, 1, 0},
        {(clnorm_op)9, 0, 0, 2, 3, 1, 4, 0, 0, 0},
        {CLNORM_LAYER_NORM, (size_t)1 << 40, (size_t)1 << 40, 0, 0, 0, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        clnorm_desc_init(&d, t[i].op);
        d.rows = t[i].rows;
        d.cols = t[i].cols;
        d.n = t[i].n;
        d.c = t[i].c;
        d.rank = t[i].rank;
        d.spatial[0] = t[i].s0;
        d.spatial[1] = t[i].s1;
        d.spatial[2] = t[i].s2;
        d.groups = t[i].g;
        /* a GroupNorm with a bad group count is an invalid shape: 0 elements is fine too */
        TH_EXPECT(clnorm_desc_elements(&d) == ref_elements(&d) || (ref_sets(&d) == 0 && clnorm_desc_elements(&d) == 0),
                  "case %zu: elements %zu, expected %zu", i, clnorm_desc_elements(&d), ref_elements(&d));
        TH_EXPECT(clnorm_desc_sets(&d) == ref_sets(&d), "case %zu: sets %zu, expected %zu", i, clnorm_desc_sets(&d),
                  ref_sets(&d));
    }
    TH_EXPECT(clnorm_desc_elements(NULL) == 0 && clnorm_desc_sets(NULL) == 0, "helpers on NULL");
    th_finish();
}
END_TEST

static void run_small_ln(clnorm_ctx *ctx, const char *label)
{
    th_case c;
    th_case_rows(&c, CLNORM_LAYER_NORM, 7, 129);
    c.scale = c.bias = c.stats = 1;
    th_set_case("%s", label);
    th_check_case(ctx, &c);
    th_set_case("%s", "");
}

START_TEST(several_contexts)
{
    th_begin();
    clnorm_ctx *cs[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < 4; i++)
        TH_EXPECT(clnorm_create_default(&cs[i]) == CLNORM_OK && cs[i], "context %d", i);
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 4; i++)
            if (cs[i])
                run_small_ln(cs[i], "several contexts");
    clnorm_set_variant(cs[1], CLNORM_VARIANT_WG, 0); /* per-context setting */
    clnorm_destroy(cs[2]);
    run_small_ln(cs[1], "after destroying another context");
    run_small_ln(cs[3], "after destroying another context");
    clnorm_destroy(cs[0]);
    clnorm_destroy(cs[3]);
    run_small_ln(cs[1], "last context");
    clnorm_destroy(cs[1]);
    run_small_ln(th_ctx(), "process context");
    th_finish();
}
END_TEST

static char *device_name(cl_device_id dev)
{
    static char buf[256];
    buf[0] = 0;
    clGetDeviceInfo(dev, CL_DEVICE_NAME, sizeof buf - 1, buf, NULL);
    return buf;
}

/* The README's order for the default device: a real GPU (4), else an
 * accelerator (3), else a CPU (2), a simulator (Oclgrind, which reports
 * itself as a GPU) only when nothing else is (1). */
static int device_rank(cl_device_id dev)
{
    cl_device_type t = 0;
    cl_platform_id plat = NULL;
    char pname[256] = "";
    clGetDeviceInfo(dev, CL_DEVICE_TYPE, sizeof t, &t, NULL);
    clGetDeviceInfo(dev, CL_DEVICE_PLATFORM, sizeof plat, &plat, NULL);
    clGetPlatformInfo(plat, CL_PLATFORM_NAME, sizeof pname, pname, NULL);
    if (strcasestr(pname, "oclgrind") || strcasestr(device_name(dev), "oclgrind"))
        return 1;
    return (t & CL_DEVICE_TYPE_GPU) ? 4 : (t & CL_DEVICE_TYPE_ACCELERATOR) ? 3 : (t & CL_DEVICE_TYPE_CPU) ? 2 : 1;
}

/* clnorm_create_default under CLNORM_DEVICE=spec picks device dname (and
 * runs a small LayerNorm there when run). */
static void expect_device(const char *spec, const char *dname, int run)
{
    clnorm_ctx *c = NULL;
    setenv("CLNORM_DEVICE", spec, 1);
    clnorm_status st = clnorm_create_default(&c);
    TH_EXPECT(st == CLNORM_OK && c && strcmp(device_name(clnorm_device(c)), dname) == 0,
              "CLNORM_DEVICE=%s: %s, device %s", spec, clnorm_status_name(st), c ? device_name(clnorm_device(c)) : "none");
    if (c && run)
        run_small_ln(c, spec);
    clnorm_destroy(c);
}

/* "0:0", and a case-insensitive substring of its name. */
static void select_first_device(void)
{
    cl_platform_id plat;
    cl_device_id dev00 = NULL;
    cl_uint n = 0;
    clGetPlatformIDs(1, &plat, NULL);
    clGetDeviceIDs(plat, CL_DEVICE_TYPE_ALL, 1, &dev00, &n);
    char name[256], sub[8];
    snprintf(name, sizeof name, "%s", device_name(dev00));
    expect_device("0:0", name, 1);
    if (strlen(name) < 4)
        return;
    size_t k = strlen(name) / 2 - 2;
    for (int i = 0; i < 4; i++)
        sub[i] = (char)(i % 2 ? toupper((unsigned char)name[k + i]) : tolower((unsigned char)name[k + i]));
    sub[4] = 0;
    clnorm_ctx *c = NULL;
    setenv("CLNORM_DEVICE", sub, 1);
    clnorm_status st = clnorm_create_default(&c);
    TH_EXPECT(st == CLNORM_OK && c, "CLNORM_DEVICE=%s (from \"%s\"): %s", sub, name, clnorm_status_name(st));
    if (c)
        TH_EXPECT(strcasestr(device_name(clnorm_device(c)), sub) != NULL, "picked %s for %s",
                  device_name(clnorm_device(c)), sub);
    clnorm_destroy(c);
}

static void select_no_match(void)
{
    const char *bad[] = {"no-such-device-xyzzy", "9:9", "0:99"};
    for (int i = 0; i < 3; i++) {
        setenv("CLNORM_DEVICE", bad[i], 1);
        clnorm_ctx *c = (clnorm_ctx *)0x1;
        clnorm_status st = clnorm_create_default(&c);
        TH_EXPECT(st == CLNORM_ERR_DEVICE_NOT_FOUND, "CLNORM_DEVICE=%s: %d %s", bad[i], st, clnorm_status_name(st));
        TH_EXPECT(c == NULL, "CLNORM_DEVICE=%s: *out not NULL after failure", bad[i]);
        if (st == CLNORM_OK)
            clnorm_destroy(c);
    }
}

/* Every device of every platform by "P:D" and by its full name (with two
 * platforms present in CI: PoCL and Oclgrind). Returns the device count;
 * *best: the best rank of them. */
static int select_every_device(int *best)
{
    cl_platform_id plats[8];
    cl_uint np = 0;
    int ndev = 0;
    *best = 0;
    TH_EXPECT(clGetPlatformIDs(8, plats, &np) == CL_SUCCESS && np > 0, "no platform");
    for (cl_uint p = 0; p < np && p < 8; p++) {
        cl_device_id devs[8];
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, 8, devs, &nd) != CL_SUCCESS) continue;
        for (cl_uint d = 0; d < nd && d < 8; d++, ndev++) {
            char spec[16], dname[256];
            snprintf(dname, sizeof dname, "%s", device_name(devs[d]));
            snprintf(spec, sizeof spec, "%u:%u", p, d);
            int rank = device_rank(devs[d]);
            *best = rank > *best ? rank : *best;
            expect_device(spec, dname, 1);
            expect_device(dname, dname, 0);
        }
    }
    return ndev;
}

/* Empty = unset: the default rule picks a device of the best rank. */
static void select_default(int best, int ndev)
{
    clnorm_ctx *c = NULL;
    setenv("CLNORM_DEVICE", "", 1);
    clnorm_status st = clnorm_create_default(&c);
    TH_EXPECT(st == CLNORM_OK, "CLNORM_DEVICE empty: %s", clnorm_status_name(st));
    if (c) {
        cl_device_id dd = clnorm_device(c);
        TH_EXPECT(device_rank(dd) == best, "default device %s ranks %d, but a device of rank %d exists",
                  device_name(dd), device_rank(dd), best);
        printf("# default device of %d: %s\n", ndev, device_name(dd));
    }
    clnorm_destroy(c);
}

START_TEST(device_selection)
{
    th_begin();
    const char *saved = getenv("CLNORM_DEVICE");
    char *saved_copy = saved ? strdup(saved) : NULL;
    select_first_device();
    select_no_match();
    int best = 0, ndev = select_every_device(&best);
    select_default(best, ndev);
    if (saved_copy)
        setenv("CLNORM_DEVICE", saved_copy, 1);
    else
        unsetenv("CLNORM_DEVICE");
    free(saved_copy);
    th_finish();
}
END_TEST

/* CLNORM_VARIANT, CLNORM_STREAM and CLNORM_FORCE_FEATURES are read at context creation: each valid
 * value gives a working context, anything else INVALID_VARIANT. */
START_TEST(variant_env)
{
    th_begin();
    static const struct {
        const char *var, *value;
    } ok[] = {{"CLNORM_VARIANT", "auto"}, {"CLNORM_VARIANT", "wg"},  {"CLNORM_VARIANT", "subgroup"},
              {"CLNORM_VARIANT", "wi"},   {"CLNORM_VARIANT", "split"}, {"CLNORM_STREAM", "auto"},
              {"CLNORM_STREAM", "on"},    {"CLNORM_STREAM", "off"}, {"CLNORM_FORCE_FEATURES", "no_wide_vec"}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        setenv(ok[i].var, ok[i].value, 1);
        clnorm_ctx *c = NULL;
        clnorm_status st = clnorm_create_default(&c);
        TH_EXPECT(st == CLNORM_OK, "%s=%s: %s", ok[i].var, ok[i].value, clnorm_status_name(st));
        if (c)
            run_small_ln(c, ok[i].value);
        clnorm_destroy(c);
        unsetenv(ok[i].var);
    }
    static const char *const vars[] = {"CLNORM_VARIANT", "CLNORM_STREAM", "CLNORM_FORCE_FEATURES"};
    for (size_t i = 0; i < 3; i++) {
        setenv(vars[i], "bogus", 1);
        clnorm_ctx *c = NULL;
        clnorm_status st = clnorm_create_default(&c);
        TH_EXPECT(st == CLNORM_ERR_INVALID_VARIANT && !c, "%s=bogus: %s", vars[i], clnorm_status_name(st));
        clnorm_destroy(c);
        unsetenv(vars[i]);
    }
    th_finish();
}
END_TEST

/* ---- tuning files ---- */

START_TEST(tuning_keys)
{
    th_begin();
    static const struct {
        clnorm_op op;
        int training;
        clnorm_layout lay;
        size_t n, c, rank, sp0, sp1, groups;
        const char *key;
    } k[] = {
        {CLNORM_LAYER_NORM, 1, CLNORM_CHANNELS_FIRST, 4096, 768, 0, 0, 0, 1, "layer_norm rows batch 9 12"},
        {CLNORM_RMS_NORM, 1, CLNORM_CHANNELS_FIRST, 1, 1, 0, 0, 0, 1, "rms_norm rows batch 0 0"},
        {CLNORM_BATCH_NORM, 1, CLNORM_CHANNELS_FIRST, 32, 256, 2, 64, 64, 1, "batch_norm nchw batch 17 8"},
        {CLNORM_BATCH_NORM, 0, CLNORM_CHANNELS_LAST, 32, 256, 2, 64, 64, 1, "batch_norm nhwc running 17 8"},
        {CLNORM_GROUP_NORM, 1, CLNORM_CHANNELS_LAST, 2, 512, 2, 64, 64, 32, "group_norm nhwc batch 16 6"},
        /* one spatial element: both layouts are channels-last */
        {CLNORM_INSTANCE_NORM, 1, CLNORM_CHANNELS_FIRST, 3, 5, 1, 7, 0, 1, "instance_norm nchw batch 2 3"},
        {CLNORM_BATCH_NORM, 1, CLNORM_CHANNELS_FIRST, 8, 3, 0, 0, 0, 1, "batch_norm nhwc batch 3 1"},
    };
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        clnorm_desc d;
        clnorm_desc_init(&d, k[i].op);
        d.training = k[i].training;
        if (k[i].op == CLNORM_LAYER_NORM || k[i].op == CLNORM_RMS_NORM) {
            d.rows = k[i].n, d.cols = k[i].c;
        } else {
            d.n = k[i].n, d.c = k[i].c, d.rank = k[i].rank, d.layout = k[i].lay, d.groups = k[i].groups;
            d.spatial[0] = k[i].sp0, d.spatial[1] = k[i].sp1;
        }
        char buf[64] = "";
        clnorm_status st = clnorm_tuning_key(&d, buf, sizeof buf);
        TH_EXPECT(st == CLNORM_OK && strcmp(buf, k[i].key) == 0, "key %zu: %s \"%s\", expected \"%s\"", i,
                  clnorm_status_name(st), buf, k[i].key);
        const size_t len = strlen(k[i].key);
        TH_EXPECT(clnorm_tuning_key(&d, buf, len) == CLNORM_ERR_BUFFER_TOO_SMALL, "key %zu: %zu bytes accepted", i,
                  len);
        TH_EXPECT(clnorm_tuning_key(&d, buf, len + 1) == CLNORM_OK, "key %zu: %zu bytes refused", i, len + 1);
    }
    clnorm_desc d;
    clnorm_desc_init(&d, CLNORM_LAYER_NORM);
    char buf[64];
    TH_EXPECT(clnorm_tuning_key(&d, buf, sizeof buf) == CLNORM_ERR_INVALID_SHAPE, "0 x 0 LayerNorm accepted");
    TH_EXPECT(clnorm_tuning_key(NULL, buf, sizeof buf) == CLNORM_ERR_NULL_ARGUMENT, "NULL desc");
    d.rows = d.cols = 2;
    TH_EXPECT(clnorm_tuning_key(&d, NULL, 8) == CLNORM_ERR_NULL_ARGUMENT, "NULL buffer");
    th_finish();
}
END_TEST

/* A temporary file with this text; the caller unlinks it. */
static void write_temp(char *path, const char *text)
{
    strcpy(path, "/tmp/clnorm-tuning-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_msg(fd >= 0, "mkstemp");
    FILE *f = fdopen(fd, "w");
    ck_assert_msg(f != NULL, "fdopen");
    fputs(text, f);
    fclose(f);
}

/* y of LayerNorm 64 x 4096 on x under ctx's settings now: its bits tell
 * which variant ran (the reductions differ in order, so in rounding). */
static int ln_bits(clnorm_ctx *ctx, const float *x, float *y)
{
    clnorm_desc d;
    clnorm_desc_init(&d, CLNORM_LAYER_NORM);
    d.rows = 64, d.cols = 4096;
    th_inputs in = {x, NULL, NULL, NULL, NULL};
    th_outputs out = {y, NULL, NULL, NULL, NULL};
    return th_run(ctx, &d, &in, &out, TH_SMALL_OFFSETS);
}

/* The tuning files' test: a context, x, and the bits of the rules' and of
 * wg:64 forced (LayerNorm 64 x 4096, ln_bits). */
typedef struct tuning_fx {
    clnorm_ctx *c;
    char dev[256];
    float *x, *rules, *forced, *y;
} tuning_fx;
#define TUNING_E ((size_t)64 * 4096)
#define TUNING_KEY "layer_norm rows batch 12 6"

/* ctx's run of x has the bits of want. */
static int same_bits(tuning_fx *fx, clnorm_ctx *ctx, const float *want)
{
    return ln_bits(ctx, fx->x, fx->y) == CLNORM_OK && memcmp(fx->y, want, TUNING_E * 4) == 0;
}

/* An entry for this device and key: the call runs as if forced; a forced
 * variant takes precedence, and AUTO gives the entry back. */
static void tuning_good_file(tuning_fx *fx, char *good)
{
    char text[1024];
    snprintf(text, sizeof text, "clnorm-tuning 1\n# comment\n\nno such device\t%s\twi\t0\n%s\t%s\twg\t64\n",
             TUNING_KEY, fx->dev, TUNING_KEY);
    write_temp(good, text);
    TH_EXPECT(clnorm_set_tuning(fx->c, good) == CLNORM_OK, "good file: %s", clnorm_last_error(fx->c));
    TH_EXPECT(same_bits(fx, fx->c, fx->forced), "tuned run differs from wg:64 forced");
    clnorm_set_variant(fx->c, CLNORM_VARIANT_WI, 0);
    TH_EXPECT(ln_bits(fx->c, fx->x, fx->y) == CLNORM_OK && memcmp(fx->y, fx->forced, TUNING_E * 4) != 0,
              "forced wi did not win over the entry");
    clnorm_set_variant(fx->c, CLNORM_VARIANT_AUTO, 0);
    TH_EXPECT(same_bits(fx, fx->c, fx->forced), "entry lost after AUTO");
}

/* Broken files: a specific status, a message with the line, and the
 * entries already loaded stay in force. */
static void tuning_broken_files(tuning_fx *fx)
{
    static const char *const broken[] = {
        "",                                                        /* empty */
        "clnorm-tuning 2\n",                                       /* version */
        "clnorm-tuning 1\nonly two\tfields\n",                    /* fields */
        "clnorm-tuning 1\n%s\tlayer_norm rows batch 12 6\tfast\t64\n",  /* variant */
        "clnorm-tuning 1\n%s\tlayer_norm rows batch 12 6\twg\t48\n",    /* not a power of two */
        "clnorm-tuning 1\n%s\tlayer_norm rows batch 12 6\twg\t-64\n",   /* negative */
        "clnorm-tuning 1\n%s\tlayer_norm rows batch 12 6\twg\t 64\n",   /* not digits only */
        "clnorm-tuning 1\n%s\tlayer_norm rows batch 12 6\twg\t\n",      /* empty */
        "clnorm-tuning 1\n%s\tlayer_norm nchw batch 12 6\twg\t64\n",    /* layout of a row op */
        "clnorm-tuning 1\n%s\tlayer_norm rows batch  12 6\twg\t64\n",   /* not canonical */
        "clnorm-tuning 1\n%s\tlayer_norm rows batch 12 64\twg\t64\n",   /* bucket range */
        "clnorm-tuning 1\n%s\tsoft_max rows batch 12 6\twg\t64\n",      /* op */
        "clnorm-tuning 1\n%s\tlayer_norm rows batch 12 6\twg\t1048576\n", /* beyond the device */
        "clnorm-tuning 1\n%s\tlayer_norm rows batch 12 6\twg\t64\n%s\tlayer_norm rows batch 12 6\twi\t0\n",
        "clnorm-tuning 1\n\tlayer_norm rows batch 12 6\twg\t64\n",      /* no device */
    };
    char text[1300], bad[64];
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        snprintf(text, sizeof text, broken[i], fx->dev, fx->dev);
        write_temp(bad, text);
        clnorm_status st = clnorm_set_tuning(fx->c, bad);
        const char *msg = clnorm_last_error(fx->c);
        TH_EXPECT(st == CLNORM_ERR_TUNING_FILE && strstr(msg, bad), "broken file %zu: %s, message \"%s\"", i,
                  clnorm_status_name(st), msg);
        if (i >= 2)
            TH_EXPECT(strstr(msg, ":2:") || strstr(msg, ":3:"), "broken file %zu: no line in \"%s\"", i, msg);
        unlink(bad);
    }
    char longline[1200];
    memset(longline, 'a', sizeof longline - 1);
    longline[sizeof longline - 1] = 0;
    snprintf(text, sizeof text, "clnorm-tuning 1\n%.1000s\n", longline);
    write_temp(bad, text); /* 1000 bytes: fine, but 4 fields are wanted */
    TH_EXPECT(clnorm_set_tuning(fx->c, bad) == CLNORM_ERR_TUNING_FILE && strstr(clnorm_last_error(fx->c), "fields"),
              "1000-byte line: %s", clnorm_last_error(fx->c));
    unlink(bad);
    TH_EXPECT(clnorm_set_tuning(fx->c, "/nonexistent/clnorm-tuning") == CLNORM_ERR_TUNING_FILE &&
                  strstr(clnorm_last_error(fx->c), "/nonexistent/clnorm-tuning"),
              "missing file: %s", clnorm_last_error(fx->c));
    TH_EXPECT(same_bits(fx, fx->c, fx->forced), "a broken file changed the entries");
}

/* Only other devices' entries, or NULL: the rules again. */
static void tuning_other_device(tuning_fx *fx, const char *good)
{
    char text[1024], other[64];
    snprintf(text, sizeof text, "clnorm-tuning 1\n%s-not\t%s\twg\t64\n", fx->dev, TUNING_KEY);
    write_temp(other, text);
    TH_EXPECT(clnorm_set_tuning(fx->c, other) == CLNORM_OK, "other device's file: %s", clnorm_last_error(fx->c));
    TH_EXPECT(same_bits(fx, fx->c, fx->rules), "another device's entry was used");
    TH_EXPECT(clnorm_set_tuning(fx->c, good) == CLNORM_OK && clnorm_set_tuning(fx->c, NULL) == CLNORM_OK,
              "set NULL");
    TH_EXPECT(same_bits(fx, fx->c, fx->rules), "entries kept after NULL");
    TH_EXPECT(clnorm_set_tuning(NULL, good) == CLNORM_ERR_NULL_ARGUMENT, "NULL context");
    unlink(other);
}

/* CLNORM_TUNING at context creation. */
static void tuning_env(tuning_fx *fx, const char *good)
{
    clnorm_ctx *c = NULL;
    setenv("CLNORM_TUNING", good, 1);
    TH_EXPECT(clnorm_create_default(&c) == CLNORM_OK && c, "CLNORM_TUNING=good");
    if (c)
        TH_EXPECT(same_bits(fx, c, fx->forced), "CLNORM_TUNING entry not used");
    clnorm_destroy(c);
    setenv("CLNORM_TUNING", "/nonexistent/clnorm-tuning", 1);
    c = NULL;
    TH_EXPECT(clnorm_create_default(&c) == CLNORM_ERR_TUNING_FILE && !c, "CLNORM_TUNING=missing accepted");
    clnorm_destroy(c);
    unsetenv("CLNORM_TUNING");
}

START_TEST(tuning_files)
{
    th_begin();
    tuning_fx fx = {0};
    ck_assert_int_eq(clnorm_create_default(&fx.c), CLNORM_OK);
    clGetDeviceInfo(clnorm_device(fx.c), CL_DEVICE_NAME, sizeof fx.dev - 1, fx.dev, NULL);
    fx.x = malloc(TUNING_E * 4), fx.rules = malloc(TUNING_E * 4), fx.forced = malloc(TUNING_E * 4);
    fx.y = malloc(TUNING_E * 4);
    th_rng r;
    th_rng_init(&r, th_next_seed());
    th_fill_normal(&r, fx.x, TUNING_E, 1.0, 2.0);
    /* The rules' bits, and those of the work-group variant at 64 forced. */
    TH_EXPECT(ln_bits(fx.c, fx.x, fx.rules) == CLNORM_OK, "rules run");
    clnorm_set_variant(fx.c, CLNORM_VARIANT_WG, 64);
    TH_EXPECT(ln_bits(fx.c, fx.x, fx.forced) == CLNORM_OK, "forced run");
    clnorm_set_variant(fx.c, CLNORM_VARIANT_AUTO, 0);
    TH_EXPECT(memcmp(fx.rules, fx.forced, TUNING_E * 4) != 0,
              "wg:64 and the rules gave the same bits: the test cannot tell them apart");
    char good[64];
    tuning_good_file(&fx, good);
    tuning_broken_files(&fx);
    tuning_other_device(&fx, good);
    clnorm_destroy(fx.c);
    tuning_env(&fx, good);
    unlink(good);
    free(fx.x), free(fx.rules), free(fx.forced), free(fx.y);
    th_finish();
}
END_TEST

int main(void)
{
    unsetenv("CLNORM_VARIANT");
    unsetenv("CLNORM_STREAM");
    unsetenv("CLNORM_TUNING");
    unsetenv("CLNORM_FORCE_FEATURES");
    const th_test tests[] = {TH_TEST(status_strings_and_names), TH_TEST(variant_names), TH_TEST(null_handling),
                             TH_TEST(events_and_cl_errors),     TH_TEST(desc_helpers),  TH_TEST(several_contexts),
                             TH_TEST(device_selection),         TH_TEST(variant_env),   TH_TEST(tuning_keys),
                             TH_TEST(tuning_files)};
    return th_main("api", 0, tests, sizeof tests / sizeof tests[0]);
}
