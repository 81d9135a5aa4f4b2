/* The case model: see case.h. */
#include "case.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CF CLNORM_CHANNELS_FIRST
#define CL CLNORM_CHANNELS_LAST
/* A suite case: scale, bias (not for RMSNorm) and saved statistics. */
#define CASE(op_, train_, layout_, groups_, ...)                                                     \
    {.op = op_, .training = train_, .layout = layout_,                                               \
     .ndim = sizeof((size_t[]){__VA_ARGS__}) / sizeof(size_t), .shape = {__VA_ARGS__},              \
     .groups = groups_, .eps = 1e-5f, .momentum = 0.1f, .scale = 1, .bias = (op_) != CLNORM_RMS_NORM, \
     .stats = 1}

/* Issue 4's standard suite (float32). */
const th_case th_suite[] = {
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
const size_t th_suite_count = sizeof(th_suite) / sizeof(th_suite[0]);

size_t th_suite_half(th_case *out, size_t max) {
    static const clnorm_dtype types[2] = {CLNORM_FLOAT16, CLNORM_BFLOAT16};
    size_t n = 0;
    for (int t = 0; t < 2; t++)
        for (size_t i = 0; i < th_suite_count; i++) {
            const clnorm_op op = th_suite[i].op;
            if (op != CLNORM_LAYER_NORM && op != CLNORM_RMS_NORM && op != CLNORM_GROUP_NORM) continue;
            if (n < max) {
                out[n] = th_suite[i];
                out[n].dtype = out[n].param_dtype = types[t];
            }
            n++;
        }
    return n;
}

static int is_row_op(clnorm_op op) { return op == CLNORM_LAYER_NORM || op == CLNORM_RMS_NORM; }

void th_case_init(th_case *c, clnorm_op op) {
    clnorm_desc d;
    clnorm_desc_init(&d, op);
    memset(c, 0, sizeof *c);
    c->op = op;
    c->training = 1;
    c->layout = CLNORM_CHANNELS_FIRST;
    c->eps = d.eps;
    c->momentum = d.momentum;
    c->running_var_biased = d.running_var_biased;
    c->kind = TH_NORMAL;
}

void th_case_rows(th_case *c, clnorm_op op, size_t rows, size_t cols) {
    th_case_init(c, op);
    c->ndim = 2;
    c->shape[0] = rows;
    c->shape[1] = cols;
}

void th_case_channels(th_case *c, clnorm_op op, clnorm_layout layout, const th_shape *s) {
    th_case_init(c, op);
    c->layout = layout;
    c->ndim = 2 + (s->rank < 3 ? s->rank : 3);
    c->shape[0] = s->n;
    c->shape[1] = s->c;
    for (unsigned k = 0; k + 2 < c->ndim; k++) c->shape[2 + k] = s->s[k];
}

clnorm_desc th_shape_desc(clnorm_op op, clnorm_layout layout, const th_shape *s) {
    th_case c;
    clnorm_desc d;
    th_case_channels(&c, op, layout, s);
    th_case_desc(&c, &d);
    return d;
}

void th_case_full(th_case *c) {
    c->scale = c->stats = 1;
    c->bias = c->op != CLNORM_RMS_NORM;
}

const char *th_op_name(const th_case *c) {
    switch (c->op) {
    case CLNORM_LAYER_NORM: return "layer_norm";
    case CLNORM_RMS_NORM: return "rms_norm";
    case CLNORM_BATCH_NORM: return c->training ? "batch_norm_train" : "batch_norm_infer";
    case CLNORM_INSTANCE_NORM: return c->training ? "instance_norm" : "instance_norm_infer";
    case CLNORM_GROUP_NORM: return "group_norm";
    }
    return "unknown";
}

const char *th_layout_name(const th_case *c) {
    if (is_row_op(c->op)) return "rows";
    return c->layout == CLNORM_CHANNELS_LAST ? "nhwc" : "nchw";
}

static int ieq(const char *a, const char *b) {
    for (; *a && *b; a++, b++)
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
    return *a == *b;
}

const char *th_dtype_name(clnorm_dtype t) {
    return t == CLNORM_FLOAT16 ? "f16" : t == CLNORM_BFLOAT16 ? "bf16" : "f32";
}

int th_parse_dtype(const char *s, clnorm_dtype *t) {
    if (ieq(s, "f16") || ieq(s, "fp16") || ieq(s, "float16") || ieq(s, "half")) *t = CLNORM_FLOAT16;
    else if (ieq(s, "bf16") || ieq(s, "bfloat16")) *t = CLNORM_BFLOAT16;
    else if (ieq(s, "f32") || ieq(s, "fp32") || ieq(s, "float32") || ieq(s, "float")) *t = CLNORM_FLOAT32;
    else return -1;
    return 0;
}

int th_parse_op(const char *s, th_case *c) {
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
            if (c->op == CLNORM_INSTANCE_NORM && !c->training) c->running = 1;
            return 0;
        }
    }
    return -1;
}

int th_parse_shape(const char *s, th_case *c) {
    unsigned n = 0;
    const char *p = s;
    size_t dims[TH_MAX_DIMS];
    while (*p) {
        if (n == TH_MAX_DIMS || !isdigit((unsigned char)*p)) return -1;
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

int th_parse_layout(const char *s, clnorm_layout *layout) {
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

int th_case_check(th_case *c, char *err, size_t errlen) {
    if (c->ndim == 0) {
        snprintf(err, errlen, "no shape");
        return -1;
    }
    if (is_row_op(c->op)) {
        if (c->ndim < 1 || c->ndim > TH_MAX_DIMS) {
            snprintf(err, errlen, "%s needs a shape M x D", th_op_name(c));
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
                 th_op_name(c), c->ndim);
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

void th_shape_string(const th_case *c, char *buf, size_t len) {
    size_t used = 0;
    if (len) buf[0] = 0;
    for (unsigned i = 0; i < c->ndim && used < len; i++) {
        int w = snprintf(buf + used, len - used, "%s%zu", i ? "x" : "", c->shape[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
}

const char *th_case_label(const th_case *c, char *buf, size_t len) {
    char shape[96];
    th_shape_string(c, shape, sizeof shape);
    int w = snprintf(buf, len, "%s %s", th_op_name(c), shape);
    if (w < 0 || (size_t)w >= len) return buf;
    size_t used = (size_t)w;
    if (!is_row_op(c->op) && c->ndim > 2)
        used += (size_t)snprintf(buf + used, len - used, " %s", th_layout_name(c));
    if (used < len && c->op == CLNORM_GROUP_NORM)
        used += (size_t)snprintf(buf + used, len - used, " G=%zu", c->groups);
    if (used < len && c->backward) {
        used += (size_t)snprintf(buf + used, len - used, " bwd");
        static const int grad[3] = {TH_DX, TH_DSCALE, TH_DBIAS};
        for (int i = 0; i < 3 && used < len; i++) /* explicit gradients only: the default reads back as 0 */
            if (c->grads & TH_ROLE(grad[i]))
                used += (size_t)snprintf(buf + used, len - used, " %s", th_role_name(grad[i]));
    }
    if (used < len && c->dtype != CLNORM_FLOAT32)
        used += (size_t)snprintf(buf + used, len - used, " %s", th_dtype_name(c->dtype));
    if (used < len && c->dtype != CLNORM_FLOAT32 && c->param_dtype != c->dtype)
        used += (size_t)snprintf(buf + used, len - used, " params=%s", th_dtype_name(c->param_dtype));
    return buf;
}

int th_case_desc(const th_case *c, clnorm_desc *d) {
    clnorm_desc_init(d, c->op);
    d->eps = c->eps;
    d->momentum = c->momentum;
    d->per_sample_affine = c->per_sample_affine;
    d->running_var_biased = c->running_var_biased;
    d->dtype = c->dtype;
    d->param_dtype = c->param_dtype;
    if (c->ndim == 0) return -1;
    if (is_row_op(c->op)) {
        size_t rows = 1;
        for (unsigned i = 0; i + 1 < c->ndim; i++) rows *= c->shape[i];
        d->rows = rows;
        d->cols = c->shape[c->ndim - 1];
        d->training = c->training;
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


void th_case_of_desc(th_case *c, const clnorm_desc *d) {
    th_case_init(c, d->op);
    c->eps = d->eps;
    c->momentum = d->momentum;
    c->per_sample_affine = d->per_sample_affine;
    c->running_var_biased = d->running_var_biased;
    c->training = d->training;
    c->dtype = d->dtype;
    c->param_dtype = d->param_dtype;
    if (is_row_op(d->op)) {
        c->ndim = 2;
        c->shape[0] = d->rows;
        c->shape[1] = d->cols;
        return;
    }
    c->layout = d->layout;
    c->groups = d->op == CLNORM_GROUP_NORM ? d->groups : 0;
    c->ndim = 2 + (d->rank < 3 ? d->rank : 3);
    c->shape[0] = d->n;
    c->shape[1] = d->c;
    for (unsigned k = 0; k + 2 < c->ndim; k++) c->shape[2 + k] = d->spatial[k];
}

/* One word of a case line after the shape; 0, or -1 if unknown. */
static int parse_word(th_case *c, const char *w) {
    char *end;
    clnorm_dtype t;
    if (th_parse_layout(w, &c->layout) == 0) return 0;
    if (th_parse_dtype(w, &t) == 0) { /* x's type, the parameters' with it */
        c->dtype = c->param_dtype = t;
        return 0;
    }
    if (!strncmp(w, "params=", 7)) {
        if (th_parse_dtype(w + 7, &t) != 0) return -1;
        c->param_dtype = t;
        return 0;
    }
    if (!strncmp(w, "G=", 2) || !strncmp(w, "eps=", 4) || !strncmp(w, "momentum=", 9)) {
        const char *v = strchr(w, '=') + 1;
        errno = 0;
        if (w[0] == 'G') c->groups = (size_t)strtoull(v, &end, 10);
        else if (w[0] == 'e') c->eps = strtof(v, &end);
        else c->momentum = strtof(v, &end);
        return errno || end == v || *end ? -1 : 0;
    }
    if (!strcmp(w, "affine")) c->scale = c->bias = 1;
    else if (!strcmp(w, "scale")) c->scale = 1;
    else if (!strcmp(w, "bias")) c->bias = 1;
    else if (!strcmp(w, "stats")) c->stats = 1;
    else if (!strcmp(w, "running")) c->running = 1;
    else if (!strcmp(w, "no-running")) c->running = -1;
    else if (!strcmp(w, "psa")) c->per_sample_affine = 1;
    else if (!strcmp(w, "inplace")) c->flags |= TH_IN_PLACE;
    else if (!strcmp(w, "backward") || !strcmp(w, "bwd")) c->backward = 1;
    else if (!strcmp(w, "dx")) c->backward = 1, c->grads |= TH_ROLE(TH_DX);
    else if (!strcmp(w, "dscale")) c->backward = 1, c->grads |= TH_ROLE(TH_DSCALE);
    else if (!strcmp(w, "dbias")) c->backward = 1, c->grads |= TH_ROLE(TH_DBIAS);
    else return -1;
    return 0;
}

int th_case_parse(th_case *c, const char *line, char *err, size_t errlen) {
    char buf[256], *save = NULL;
    snprintf(buf, sizeof buf, "%s", line);
    const char *op = strtok_r(buf, " \t", &save), *shape = op ? strtok_r(NULL, " \t", &save) : NULL;
    th_case_init(c, CLNORM_LAYER_NORM);
    if (!op || th_parse_op(op, c) != 0 || !shape || th_parse_shape(shape, c) != 0) {
        snprintf(err, errlen, "\"%s\": expected an op and a shape", line);
        return -1;
    }
    for (const char *w; (w = strtok_r(NULL, " \t", &save));) {
        if (parse_word(c, w) != 0) {
            snprintf(err, errlen, "\"%s\": unknown word \"%s\"", line, w);
            return -1;
        }
    }
    return 0;
}

void th_case_reduce(th_case *c, size_t max_elems) {
    const unsigned keep = is_row_op(c->op) ? c->ndim - 1 : 1; /* D, or C */
    while (th_case_elements(c) > max_elems) {
        unsigned big = keep == 0 ? 1 : 0;
        for (unsigned k = 0; k < c->ndim; k++)
            if (k != keep && c->shape[k] > c->shape[big]) big = k;
        if (c->shape[big] == 1) return; /* nothing left to halve */
        c->shape[big] = (c->shape[big] + 1) / 2;
    }
}

/* ------------------------------------------------------------------ buffers */

const char *th_role_name(int role) {
    static const char *const names[TH_ROLES] = {"x",    "y",    "scale",        "bias",
                                                "mean", "rstd", "running_mean", "running_var",
                                                "dy",   "dx",   "dscale",       "dbias"};
    return role >= 0 && role < TH_ROLES ? names[role] : "?";
}

clnorm_buf *th_desc_buf(clnorm_desc *d, int role) {
    clnorm_buf *const bufs[TH_ROLES] = {&d->x,    &d->y,    &d->scale,        &d->bias,
                                        &d->mean, &d->rstd, &d->running_mean, &d->running_var,
                                        &d->dy,   &d->dx,   &d->dscale,       &d->dbias};
    return role >= 0 && role < TH_ROLES ? bufs[role] : NULL;
}

int th_uses_running(const clnorm_desc *d, int has_running) {
    return (d->op == CLNORM_BATCH_NORM && !d->training) ||
           (d->op == CLNORM_INSTANCE_NORM && !d->training && has_running);
}

unsigned th_roles(const clnorm_desc *d, unsigned want) {
    const int backward = (want & TH_BACKWARD_ROLES) != 0;
    unsigned r = want | (backward ? TH_ROLE(TH_X) | TH_ROLE(TH_DY) : TH_XY);
    if (backward) r &= ~(TH_ROLE(TH_Y) | TH_ROLE(TH_BIAS)); /* clnorm_backward ignores them */
    if (is_row_op(d->op) || d->op == CLNORM_GROUP_NORM) r &= ~TH_RUNNING;
    if (th_uses_running(d, (r & TH_RUNNING) != 0)) r &= ~TH_STATS; /* no saved statistics with the running ones */
    else if (backward) r &= ~TH_RUNNING; /* backward with batch statistics ignores the running ones */
    if (d->op == CLNORM_RMS_NORM) r &= ~TH_ROLE(TH_MEAN);
    return r;
}

unsigned th_case_grads(const th_case *c) {
    if (!c->backward) return 0;
    if (c->grads & TH_GRADS) return c->grads & TH_GRADS;
    return TH_ROLE(TH_DX) | (c->scale ? TH_ROLE(TH_DSCALE) : 0) | (c->bias ? TH_ROLE(TH_DBIAS) : 0);
}

unsigned th_case_roles(const th_case *c) {
    clnorm_desc d;
    th_case_desc(c, &d);
    unsigned want = c->backward ? TH_ROLE(TH_X) | TH_ROLE(TH_DY) | TH_STATS | th_case_grads(c) : TH_XY;
    want |= c->scale ? TH_ROLE(TH_SCALE) : 0;
    want |= c->bias ? TH_ROLE(TH_BIAS) : 0;
    want |= c->stats ? TH_STATS : 0;
    if (c->running > 0 || (c->running == 0 && c->op == CLNORM_BATCH_NORM)) want |= TH_RUNNING;
    return th_roles(&d, want) & ~c->omit;
}

void th_desc_lengths(const clnorm_desc *d, size_t len[TH_ROLES]) {
    size_t S = 1, E, sets, aff, C = 1;
    if (is_row_op(d->op)) {
        E = d->rows * d->cols, sets = d->rows, aff = d->cols;
    } else {
        for (unsigned k = 0; k < d->rank && k < 3; k++) S *= d->spatial[k];
        E = d->n * d->c * S, C = d->c;
        aff = d->per_sample_affine ? d->n * d->c : d->c;
        sets = d->op == CLNORM_BATCH_NORM      ? d->c
               : d->op == CLNORM_GROUP_NORM && d->groups && d->groups <= d->c ? d->n * d->groups
                                               : d->n * d->c; /* InstanceNorm, and generous for bad groups */
    }
    len[TH_X] = len[TH_Y] = len[TH_DY] = len[TH_DX] = E ? E : 1;
    len[TH_SCALE] = len[TH_BIAS] = len[TH_DSCALE] = len[TH_DBIAS] = aff ? aff : 1;
    len[TH_MEAN] = len[TH_RSTD] = sets ? sets : 1;
    len[TH_RUNNING_MEAN] = len[TH_RUNNING_VAR] = C ? C : 1;
}

size_t th_case_elements(const th_case *c) {
    size_t e = c->ndim ? 1 : 0;
    for (unsigned i = 0; i < c->ndim; i++) e *= c->shape[i];
    return e;
}

void th_case_buffer_elems(const th_case *c, size_t e[TH_ROLES]) {
    clnorm_desc d;
    for (int r = 0; r < TH_ROLES; r++) e[r] = 0;
    if (th_case_desc(c, &d) != 0) return;
    size_t len[TH_ROLES];
    th_desc_lengths(&d, len);
    unsigned roles = th_case_roles(c);
    for (int r = 0; r < TH_ROLES; r++) e[r] = (roles & TH_ROLE(r)) ? len[r] : 0;
}

void th_case_buffer_traffic(const th_case *c, unsigned t[TH_ROLES]) {
    for (int r = 0; r < TH_ROLES; r++) t[r] = 1;
    /* forward training updates the running statistics (read and written);
       backward only reads them (inference) and never passes them otherwise */
    t[TH_RUNNING_MEAN] = t[TH_RUNNING_VAR] = c->training && !c->backward ? 2 : 1;
}

void th_case_elem_sizes(const th_case *c, size_t size[TH_ROLES]) {
    const size_t xs = clnorm_dtype_size(c->dtype), ps = clnorm_dtype_size(c->param_dtype);
    for (int r = 0; r < TH_ROLES; r++) size[r] = sizeof(float);
    size[TH_X] = size[TH_Y] = size[TH_DY] = size[TH_DX] = xs ? xs : sizeof(float);
    size[TH_SCALE] = size[TH_BIAS] = ps ? ps : sizeof(float);
}

double th_case_bytes(const th_case *c) {
    size_t e[TH_ROLES], s[TH_ROLES];
    unsigned t[TH_ROLES];
    th_case_buffer_elems(c, e);
    th_case_buffer_traffic(c, t);
    th_case_elem_sizes(c, s);
    double b = 0;
    for (int r = 0; r < TH_ROLES; r++) b += (double)e[r] * t[r] * (double)s[r];
    return b;
}
