/* Tuning files (clnorm-bench --tune): reading them, and finding an entry. */
#include "internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TUNING_HEADER CLNORM_TUNING_HEADER
#define TUNING_LINE_MAX 1024
#define TUNING_WG_MAX ((size_t)1 << 20)

const char *const clnorm_tuning_ops[CLNORM_GROUP_NORM + 1] = {"", "layer_norm", "rms_norm", "batch_norm",
                                                              "instance_norm", "group_norm"};

/* 0 if key is a well-formed key, written as clnorm_tuning_key() writes it. */
static int key_ok(const char *key)
{
    char op[16], layout[8], stats[8], tail;
    unsigned a, b;
    if (strlen(key) >= CLNORM_TUNING_KEY_MAX ||
        sscanf(key, "%15s %7s %7s %u %u%c", op, layout, stats, &a, &b, &tail) != 5 || a > 63 || b > 63)
        return -1;
    int rows = -1;
    for (int i = CLNORM_LAYER_NORM; i <= CLNORM_GROUP_NORM; ++i)
        if (strcmp(op, clnorm_tuning_ops[i]) == 0) rows = i == CLNORM_LAYER_NORM || i == CLNORM_RMS_NORM;
    if (rows < 0) return -1;
    if (rows ? strcmp(layout, "rows") != 0 || strcmp(stats, "batch") != 0
             : (strcmp(layout, "nchw") != 0 && strcmp(layout, "nhwc") != 0) ||
                   (strcmp(stats, "batch") != 0 && strcmp(stats, "running") != 0))
        return -1;
    char canon[CLNORM_TUNING_KEY_MAX];
    snprintf(canon, sizeof canon, "%s %s %s %u %u", op, layout, stats, a, b);
    return strcmp(canon, key) == 0 ? 0 : -1;
}

/* Splits line at tabs into exactly n fields (in place); 0 or -1. */
static int split_tabs(char *line, char **f, int n)
{
    int k = 0;
    f[k++] = line;
    for (char *p = line; *p; ++p)
        if (*p == '\t') {
            if (k == n) return -1;
            *p = 0;
            f[k++] = p + 1;
        }
    return k == n ? 0 : -1;
}

clnorm_status clnorm_tuning_read(clnorm_ctx *c, const char *path, clnorm_tuned **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    char device[256] = "";
    clGetDeviceInfo(c->device, CL_DEVICE_NAME, sizeof device - 1, device, NULL);
    FILE *f = fopen(path, "r");
    if (!f)
        return clnorm_fail(c, CLNORM_ERR_TUNING_FILE, "tuning file %s: %s", path, strerror(errno));
    clnorm_status st = CLNORM_OK;
    clnorm_tuned *t = NULL;
    size_t nt = 0, cap = 0;
    char line[TUNING_LINE_MAX + 2];
    unsigned lineno = 0;
    int header = 0;
    while (fgets(line, sizeof line, f)) {
        ++lineno;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            st = clnorm_fail(c, CLNORM_ERR_TUNING_FILE, "%s:%u: line longer than %d bytes", path, lineno,
                             TUNING_LINE_MAX);
            goto fail;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        if (!header) {
            if (strcmp(line, TUNING_HEADER) != 0) {
                st = clnorm_fail(c, CLNORM_ERR_TUNING_FILE, "%s:%u: expected \"%s\"", path, lineno, TUNING_HEADER);
                goto fail;
            }
            header = 1;
            continue;
        }
        if (len == 0 || line[0] == '#') continue;
        char *fld[4], *end = NULL;
        clnorm_variant v;
        if (split_tabs(line, fld, 4) != 0) {
            st = clnorm_fail(c, CLNORM_ERR_TUNING_FILE,
                             "%s:%u: want 4 tab-separated fields (device, key, variant, work-group size)", path,
                             lineno);
            goto fail;
        }
        errno = 0;
        const unsigned long long wg = strtoull(fld[3], &end, 10);
        if (!fld[0][0] || key_ok(fld[1]) != 0 || clnorm_parse_variant(fld[2], &v) != 0 ||
            !isdigit((unsigned char)fld[3][0]) || *end || errno || wg > TUNING_WG_MAX || (wg & (wg - 1))) {
            st = clnorm_fail(c, CLNORM_ERR_TUNING_FILE,
                             "%s:%u: bad entry (device \"%s\", key \"%s\", variant \"%s\", work-group size \"%s\")",
                             path, lineno, fld[0], fld[1], fld[2], fld[3]);
            goto fail;
        }
        if (strcmp(fld[0], device) != 0) continue; /* another device's entry */
        if (wg > c->dev.max_wg) {
            st = clnorm_fail(c, CLNORM_ERR_TUNING_FILE, "%s:%u: work-group size %llu exceeds %s's maximum %zu",
                             path, lineno, wg, device, c->dev.max_wg);
            goto fail;
        }
        for (size_t i = 0; i < nt; ++i)
            if (strcmp(t[i].key, fld[1]) == 0) {
                st = clnorm_fail(c, CLNORM_ERR_TUNING_FILE, "%s:%u: second entry for \"%s\" on %s", path, lineno,
                                 fld[1], device);
                goto fail;
            }
        if (nt == cap) {
            cap = cap ? 2 * cap : 16;
            clnorm_tuned *g = realloc(t, cap * sizeof *t);
            if (!g) {
                st = clnorm_fail(c, CLNORM_ERR_OUT_OF_MEMORY, "tuning file %s: out of host memory", path);
                goto fail;
            }
            t = g;
        }
        snprintf(t[nt].key, sizeof t[nt].key, "%s", fld[1]);
        t[nt].variant = v;
        t[nt].wg = (size_t)wg;
        ++nt;
    }
    if (ferror(f)) {
        st = clnorm_fail(c, CLNORM_ERR_TUNING_FILE, "tuning file %s: read error", path);
        goto fail;
    }
    if (!header) {
        st = clnorm_fail(c, CLNORM_ERR_TUNING_FILE, "%s: empty; expected \"%s\"", path, TUNING_HEADER);
        goto fail;
    }
    fclose(f);
    *out = t;
    *n = nt;
    return CLNORM_OK;
fail:
    fclose(f);
    free(t);
    return st;
}

const clnorm_tuned *clnorm_tuning_find(const clnorm_ctx *c, const char *key)
{
    for (size_t i = 0; i < c->ntuned; ++i)
        if (strcmp(c->tuned[i].key, key) == 0) return &c->tuned[i];
    return NULL;
}

CLNORM_API clnorm_status clnorm_set_tuning(clnorm_ctx *c, const char *path)
{
    if (!c) return CLNORM_ERR_NULL_ARGUMENT;
    clnorm_tuned *t = NULL;
    size_t n = 0;
    /* Held while the file is read too: a failure writes the context's
     * message, which another thread's call may be writing. */
    pthread_mutex_lock(&c->lock);
    clnorm_status st = path ? clnorm_tuning_read(c, path, &t, &n) : CLNORM_OK;
    clnorm_tuned *old = NULL;
    if (st == CLNORM_OK) {
        old = c->tuned;
        c->tuned = t;
        c->ntuned = n;
    }
    pthread_mutex_unlock(&c->lock);
    free(old);
    return st;
}

/* The tuning key of a described call (see clnorm_tuning_key). */
void clnorm_tuning_key_of(const clnorm_desc *d, const clnorm_shape *s, char *buf, size_t len)
{
    unsigned a = 0, b = 0;
    while (s->set_len >> (a + 1)) ++a;
    while (s->sets >> (b + 1)) ++b;
    snprintf(buf, len, "%s %s %s %u %u", clnorm_tuning_ops[d->op], !s->channel ? "rows" : s->cl ? "nhwc" : "nchw",
             s->batch_stats ? "batch" : "running", a, b);
}

CLNORM_API clnorm_status clnorm_tuning_key(const clnorm_desc *d, char *buf, size_t len)
{
    if (!d || !buf) return CLNORM_ERR_NULL_ARGUMENT;
    clnorm_shape s;
    clnorm_status st = clnorm_describe(NULL, d, &s);
    if (st != CLNORM_OK) return st;
    char k[CLNORM_TUNING_KEY_MAX];
    clnorm_tuning_key_of(d, &s, k, sizeof k);
    if (strlen(k) >= len) return CLNORM_ERR_BUFFER_TOO_SMALL;
    memcpy(buf, k, strlen(k) + 1);
    return CLNORM_OK;
}
