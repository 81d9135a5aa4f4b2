/* The benchmark suite and its cases; see suite.h. */
#include "suite.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CF CLNORM_CHANNELS_FIRST
#define CL CLNORM_CHANNELS_LAST
#define CASE(op_, train_, layout_, groups_, ...)                                           \
    { .op = op_, .training = train_, .layout = layout_,                                    \
      .ndim = sizeof((size_t[]){__VA_ARGS__}) / sizeof(size_t), .shape = {__VA_ARGS__},     \
      .groups = groups_, .affine = 1, .save_stats = 1, .running_stats = 0 }

/* Issue 4's standard suite (float32). */
const bench_case bench_suite[] = {
    CASE(CLNORM_LAYER_NORM, 1, CF, 0, 4096, 4096),
    CASE(CLNORM_LAYER_NORM, 1, CF, 0, 65536, 256),
    CASE(CLNORM_LAYER_NORM, 1, CF, 0, 64, 262144),
    CASE(CLNORM_LAYER_NORM, 1, CF, 0, 4096, 768),
    CASE(CLNORM_LAYER_NORM, 1, CF, 0, 2048, 8192),
    CASE(CLNORM_LAYER_NORM, 1, CF, 0, 1, 1048576),
    CASE(CLNORM_RMS_NORM, 1, CF, 0, 4096, 4096),
    CASE(CLNORM_RMS_NORM, 1, CF, 0, 2048, 8192),
    CASE(CLNORM_BATCH_NORM, 1, CF, 0, 32, 256, 64, 64),
    CASE(CLNORM_BATCH_NORM, 1, CL, 0, 32, 256, 64, 64),
    CASE(CLNORM_BATCH_NORM, 1, CF, 0, 256, 64, 56, 56),
    CASE(CLNORM_BATCH_NORM, 1, CF, 0, 8192, 1024),
    CASE(CLNORM_BATCH_NORM, 0, CF, 0, 32, 256, 64, 64),
    CASE(CLNORM_GROUP_NORM, 1, CF, 32, 2, 512, 64, 64),
    CASE(CLNORM_GROUP_NORM, 1, CF, 32, 16, 256, 32, 32),
    CASE(CLNORM_GROUP_NORM, 1, CL, 32, 2, 512, 64, 64),
    CASE(CLNORM_INSTANCE_NORM, 1, CF, 0, 8, 64, 256, 256),
    CASE(CLNORM_INSTANCE_NORM, 1, CF, 0, 1, 3, 1024, 1024),
};
const size_t bench_suite_count = sizeof(bench_suite) / sizeof(bench_suite[0]);

static int is_row_op(clnorm_op op) { return op == CLNORM_LAYER_NORM || op == CLNORM_RMS_NORM; }

void bench_case_init(bench_case *c, clnorm_op op, int training) {
    memset(c, 0, sizeof *c);
    c->op = op;
    c->training = training;
    c->layout = CLNORM_CHANNELS_FIRST;
    c->affine = 1;
    c->save_stats = 1;
}

const char *bench_op_name(const bench_case *c) {
    switch (c->op) {
    case CLNORM_LAYER_NORM: return "layer_norm";
    case CLNORM_RMS_NORM: return "rms_norm";
    case CLNORM_BATCH_NORM: return c->training ? "batch_norm_train" : "batch_norm_infer";
    case CLNORM_INSTANCE_NORM: return c->training ? "instance_norm" : "instance_norm_infer";
    case CLNORM_GROUP_NORM: return "group_norm";
    }
    return "unknown";
}

const char *bench_layout_name(const bench_case *c) {
    if (is_row_op(c->op)) return "rows";
    return c->layout == CLNORM_CHANNELS_LAST ? "nhwc" : "nchw";
}

const char *bench_role_name(int role) {
    static const char *const names[BENCH_ROLES] = {"x", "y", "scale", "bias", "mean", "rstd",
                                                   "running_mean", "running_var"};
    return role >= 0 && role < BENCH_ROLES ? names[role] : "?";
}

static int ieq(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return *a == *b;
}

int bench_parse_op(const char *s, bench_case *c) {
    static const struct { const char *name; clnorm_op op; int training; } ops[] = {
        {"layer_norm", CLNORM_LAYER_NORM, 1},     {"layernorm", CLNORM_LAYER_NORM, 1},
        {"ln", CLNORM_LAYER_NORM, 1},             {"rms_norm", CLNORM_RMS_NORM, 1},
        {"rmsnorm", CLNORM_RMS_NORM, 1},          {"rms", CLNORM_RMS_NORM, 1},
        {"batch_norm_train", CLNORM_BATCH_NORM, 1}, {"batch_norm", CLNORM_BATCH_NORM, 1},
        {"batchnorm", CLNORM_BATCH_NORM, 1},      {"bn", CLNORM_BATCH_NORM, 1},
        {"batch_norm_training", CLNORM_BATCH_NORM, 1},
        {"batch_norm_infer", CLNORM_BATCH_NORM, 0}, {"batch_norm_inference", CLNORM_BATCH_NORM, 0},
        {"batch_norm_eval", CLNORM_BATCH_NORM, 0}, {"bn_infer", CLNORM_BATCH_NORM, 0},
        {"instance_norm", CLNORM_INSTANCE_NORM, 1}, {"instancenorm", CLNORM_INSTANCE_NORM, 1},
        {"in", CLNORM_INSTANCE_NORM, 1},
        {"instance_norm_infer", CLNORM_INSTANCE_NORM, 0},
        {"group_norm", CLNORM_GROUP_NORM, 1},     {"groupnorm", CLNORM_GROUP_NORM, 1},
        {"gn", CLNORM_GROUP_NORM, 1},
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        if (ieq(s, ops[i].name)) {
            c->op = ops[i].op;
            c->training = ops[i].training;
            if (c->op == CLNORM_INSTANCE_NORM && !c->training) c->running_stats = 1;
            return 0;
        }
    }
    return -1;
}

int bench_parse_shape(const char *s, bench_case *c) {
    unsigned n = 0;
    const char *p = s;
    size_t dims[BENCH_MAX_DIMS];
    while (*p) {
        if (n == BENCH_MAX_DIMS || !isdigit((unsigned char)*p)) return -1;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno || v == 0 || v > (unsigned long long)(size_t)-1) return -1;
        dims[n++] = (size_t)v;
        p = end;
        if (*p == 'x' || *p == 'X' || *p == ',' || *p == '*') {
            p++;
            if (!*p) return -1;
        } else if (*p) {
            return -1;
        }
    }
    if (n == 0) return -1;
    c->ndim = n;
    memset(c->shape, 0, sizeof c->shape);
    memcpy(c->shape, dims, n * sizeof dims[0]);
    return 0;
}

int bench_parse_layout(const char *s, clnorm_layout *layout) {
    if (ieq(s, "nchw") || ieq(s, "cf") || ieq(s, "channels_first") || ieq(s, "first") ||
        ieq(s, "ncdhw") || ieq(s, "ncl") || ieq(s, "rows")) {
        *layout = CLNORM_CHANNELS_FIRST;
        return 0;
    }
    if (ieq(s, "nhwc") || ieq(s, "cl") || ieq(s, "channels_last") || ieq(s, "last") ||
        ieq(s, "ndhwc") || ieq(s, "nlc")) {
        *layout = CLNORM_CHANNELS_LAST;
        return 0;
    }
    return -1;
}

int bench_case_check(bench_case *c, char *err, size_t errlen) {
    if (c->ndim == 0) {
        snprintf(err, errlen, "no shape");
        return -1;
    }
    if (is_row_op(c->op)) {
        if (c->ndim < 1 || c->ndim > BENCH_MAX_DIMS) {
            snprintf(err, errlen, "%s needs a shape M x D", bench_op_name(c));
            return -1;
        }
        return 0;
    }
    if (c->op != CLNORM_BATCH_NORM && c->op != CLNORM_INSTANCE_NORM && c->op != CLNORM_GROUP_NORM) {
        snprintf(err, errlen, "unknown op");
        return -1;
    }
    if (c->ndim < 2 || c->ndim > 5) {
        snprintf(err, errlen, "%s needs a shape N x C [x S1 [x S2 [x S3]]] (2 to 5 dims), got %u",
                 bench_op_name(c), c->ndim);
        return -1;
    }
    if (c->op == CLNORM_GROUP_NORM) {
        if (c->groups == 0) c->groups = c->shape[1] % 32 == 0 ? 32 : 1;
        if (c->shape[1] % c->groups != 0) {
            snprintf(err, errlen, "groups %zu does not divide C = %zu", c->groups, c->shape[1]);
            return -1;
        }
    }
    return 0;
}

void bench_shape_string(const bench_case *c, char *buf, size_t len) {
    size_t used = 0;
    if (len) buf[0] = 0;
    for (unsigned i = 0; i < c->ndim && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%zu", i ? "x" : "", c->shape[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
}

void bench_case_label(const bench_case *c, char *buf, size_t len) {
    char shape[96];
    bench_shape_string(c, shape, sizeof shape);
    int w = snprintf(buf, len, "%s %s", bench_op_name(c), shape);
    if (w < 0 || (size_t)w >= len) return;
    size_t used = (size_t)w;
    if (!is_row_op(c->op) && c->ndim > 2)
        used += (size_t)snprintf(buf + used, len - used, " %s", bench_layout_name(c));
    if (used < len && c->op == CLNORM_GROUP_NORM)
        snprintf(buf + used, len - used, " G=%zu", c->groups);
}

int bench_case_desc(const bench_case *c, clnorm_desc *d) {
    clnorm_desc_init(d, c->op);
    if (c->ndim == 0) return -1;
    if (is_row_op(c->op)) {
        size_t rows = 1;
        for (unsigned i = 0; i + 1 < c->ndim; i++) rows *= c->shape[i];
        d->rows = rows;
        d->cols = c->shape[c->ndim - 1];
        d->training = 1;
        return 0;
    }
    if (c->ndim < 2 || c->ndim > 5) return -1;
    d->n = c->shape[0];
    d->c = c->shape[1];
    d->rank = c->ndim - 2;
    for (unsigned i = 0; i < d->rank; i++) d->spatial[i] = c->shape[2 + i];
    d->layout = c->layout;
    d->training = c->training;
    if (c->op == CLNORM_GROUP_NORM) d->groups = c->groups;
    return 0;
}

void bench_desc_set(clnorm_desc *d, int role, clnorm_buf b) {
    switch (role) {
    case BENCH_X: d->x = b; break;
    case BENCH_Y: d->y = b; break;
    case BENCH_SCALE: d->scale = b; break;
    case BENCH_BIAS: d->bias = b; break;
    case BENCH_MEAN: d->mean = b; break;
    case BENCH_RSTD: d->rstd = b; break;
    case BENCH_RUNNING_MEAN: d->running_mean = b; break;
    case BENCH_RUNNING_VAR: d->running_var = b; break;
    default: break;
    }
}

size_t bench_case_elements(const bench_case *c) {
    size_t e = c->ndim ? 1 : 0;
    for (unsigned i = 0; i < c->ndim; i++) e *= c->shape[i];
    return e;
}

size_t bench_case_sets(const bench_case *c) {
    if (c->ndim == 0) return 0;
    if (is_row_op(c->op)) return bench_case_elements(c) / c->shape[c->ndim - 1];
    switch (c->op) {
    case CLNORM_BATCH_NORM: return c->training ? c->shape[1] : 0;
    case CLNORM_INSTANCE_NORM: return c->training ? c->shape[0] * c->shape[1] : 0;
    case CLNORM_GROUP_NORM: return c->shape[0] * (c->groups ? c->groups : 1);
    default: return 0;
    }
}

void bench_case_buffer_elems(const bench_case *c, size_t e[BENCH_ROLES]) {
    for (int r = 0; r < BENCH_ROLES; r++) e[r] = 0;
    if (c->ndim == 0) return;
    e[BENCH_X] = e[BENCH_Y] = bench_case_elements(c);
    size_t param = is_row_op(c->op) ? c->shape[c->ndim - 1] : c->shape[1];
    if (c->affine) {
        e[BENCH_SCALE] = param;
        if (c->op != CLNORM_RMS_NORM) e[BENCH_BIAS] = param;
    }
    int stats_op = c->op == CLNORM_LAYER_NORM || c->op == CLNORM_RMS_NORM ||
                   c->op == CLNORM_GROUP_NORM || c->training;
    if (c->save_stats && stats_op) {
        e[BENCH_RSTD] = bench_case_sets(c);
        if (c->op != CLNORM_RMS_NORM) e[BENCH_MEAN] = bench_case_sets(c);
    }
    if (c->op == CLNORM_BATCH_NORM || (c->op == CLNORM_INSTANCE_NORM && c->running_stats))
        e[BENCH_RUNNING_MEAN] = e[BENCH_RUNNING_VAR] = c->shape[1];
}

void bench_case_buffer_traffic(const bench_case *c, unsigned t[BENCH_ROLES]) {
    for (int r = 0; r < BENCH_ROLES; r++) t[r] = 1;
    t[BENCH_RUNNING_MEAN] = t[BENCH_RUNNING_VAR] = c->training ? 2 : 1;
}

double bench_case_bytes(const bench_case *c) {
    size_t e[BENCH_ROLES];
    unsigned t[BENCH_ROLES];
    bench_case_buffer_elems(c, e);
    bench_case_buffer_traffic(c, t);
    double b = 0;
    for (int r = 0; r < BENCH_ROLES; r++) b += (double)e[r] * t[r] * sizeof(float);
    return b;
}
