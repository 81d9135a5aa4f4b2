/*
 * clnorm-bench --tune: for each case, every variant and work-group size (cx)
 * against the rules (rules_cx), each measured paired with the rules in the
 * same runs so that the machine's drift cancels. The fastest candidate at
 * least 5% faster than the rules, whose output passes the reference check
 * and whose gain holds in a longer second measurement, becomes the case's
 * entry in o->tune: device name, clnorm_tuning_key, variant, work-group size
 * (the library's format, include/clnorm.h).
 */
#include "bench.h"

#include <stdlib.h>
#include <string.h>

void tune_file_header(FILE *f) {
    fputs(CLNORM_TUNING_HEADER "\n# written by clnorm-bench --tune; read through CLNORM_TUNING=<this file>"
          " or\n# clnorm_set_tuning(); fields: device, key (clnorm_tuning_key), variant, work-group size\n",
          f);
}

/* The tuner's state on one device. */
typedef struct tuner {
    const options *o;
    runner *r;
    const devinfo *dev;
    clnorm_ctx *cx, *rules_cx;
    char (*keys)[64]; /* keys tuned so far */
    size_t nkeys;
} tuner;

typedef struct cand {
    clnorm_variant v;
    size_t wg;
    double ms, rules_ms, ratio;
} cand;
enum { MAX_CANDS = 4 * 8 };

/* Median ms of cx's run of d under (v, wg) and of rules_cx's, paired run
 * for run; 0 or -1. */
static int tune_pair(tuner *t, const clnorm_desc *d, clnorm_variant v, size_t wg, int reps, double *ms,
                     double *rules_ms) {
    op_arg oc = {t->cx, d, 0}, orules = {t->rules_cx, d, 0};
    timing tm;
    if (clnorm_set_variant(t->cx, v, wg) != CLNORM_OK) return -1;
    if (measure(t->r, enqueue_op, &oc, enqueue_op, &orules, 1, reps, &tm) != 0) return -1;
    *ms = tm.med_ms, *rules_ms = tm.pair_med;
    return 0;
}

/* One entry per key and device (the library refuses a second): 1 if key
 * was tuned with an earlier case, else it is recorded and 0. */
static int key_seen(tuner *t, const char *key) {
    for (size_t i = 0; i < t->nkeys; i++)
        if (strcmp(t->keys[i], key) == 0) return 1;
    snprintf(t->keys[t->nkeys++], 64, "%s", key);
    return 0;
}

/* Every variant and work-group size, paired with the rules; ratios relative
 * to control. Returns the number measured, fastest first. */
static int measure_candidates(tuner *t, const clnorm_desc *d, const char *label, double control, cand *cs) {
    static const clnorm_variant vs[] = {CLNORM_VARIANT_WG, CLNORM_VARIANT_SUBGROUP, CLNORM_VARIANT_WI,
                                        CLNORM_VARIANT_SPLIT};
    static const size_t wgs[] = {0, 32, 64, 128, 256, 512, 1024};
    int n = 0;
    for (size_t i = 0; i < sizeof vs / sizeof vs[0]; i++)
        for (size_t k = 0; k < sizeof wgs / sizeof wgs[0]; k++) {
            if (wgs[k] > t->dev->max_wg) continue;
            progress("%s: tuning %s: %s:%zu", t->dev->name, label, clnorm_variant_name(vs[i]), wgs[k]);
            cand *c = &cs[n];
            /* One pair first: a candidate twice as slow as the rules (the
             * work-group variants on CPUs, up to 14x) is not worth more. */
            if (tune_pair(t, d, vs[i], wgs[k], 1, &c->ms, &c->rules_ms) != 0)
                continue; /* this candidate cannot run the case */
            if (c->ms < 2 * c->rules_ms && tune_pair(t, d, vs[i], wgs[k], t->o->reps, &c->ms, &c->rules_ms) != 0)
                continue;
            c->v = vs[i], c->wg = wgs[k], c->ratio = c->ms / c->rules_ms / control;
            n++;
        }
    for (int i = 1; i < n; i++) /* fastest first */
        for (int j = i; j > 0 && cs[j].ratio < cs[j - 1].ratio; j--) {
            cand tmp = cs[j];
            cs[j] = cs[j - 1], cs[j - 1] = tmp;
        }
    return n;
}

/* Candidates that measured clearly faster, fastest first (three at most):
 * the output must pass the reference check, and the gain must hold in a
 * second, longer paired measurement, since five runs of a candidate that is
 * the rules' own choice can come out 10% apart. Returns the winner or -1. */
static int confirm(tuner *t, const th_case *c, const clnorm_desc *d, cl_mem mem[TH_ROLES], const char *label,
                   cand *cs, int n) {
    op_arg oc = {t->cx, d, 0};
    for (int i = 0; i < n && i < 3 && cs[i].ratio <= TUNE_MIN_GAIN; i++) {
        char vw[32], cerr[512] = "clnorm_set_variant failed";
        snprintf(vw, sizeof vw, "%s:%zu", clnorm_variant_name(cs[i].v), cs[i].wg);
        if (clnorm_set_variant(t->cx, cs[i].v, cs[i].wg) != CLNORM_OK ||
            run_and_check(t->r->q, &oc, c, mem, cerr, sizeof cerr) != 0) {
            progress_done();
            fprintf(stderr, "%s: %s: %s: %s was faster but wrong (%s); not used\n", prog, t->dev->name, label, vw,
                    cerr);
            continue;
        }
        progress("%s: tuning %s: confirming %s", t->dev->name, label, vw);
        const int reps2 = t->o->reps * 3 < 15 ? 15 : t->o->reps * 3;
        double ms, rules_ms, cms, crules;
        if (tune_pair(t, d, CLNORM_VARIANT_AUTO, 0, reps2, &cms, &crules) != 0 ||
            tune_pair(t, d, cs[i].v, cs[i].wg, reps2, &ms, &rules_ms) != 0)
            continue;
        cs[i].ms = ms, cs[i].rules_ms = rules_ms, cs[i].ratio = ms / rules_ms / (cms / crules);
        if (cs[i].ratio <= TUNE_MIN_GAIN) return i;
    }
    return -1;
}

/* The case's line in the table and, for a winner, its entry in the file. */
static void tune_result(tuner *t, const char *label, const char *key, const cand *b, double control, int win) {
    char vw[32];
    snprintf(vw, sizeof vw, "%s:%zu", clnorm_variant_name(b->v), b->wg);
    printf("%-40s %-30s %9.3f  %-12s %9.3f %7.2fx %7.2f  %s\n", label, key, b->rules_ms, vw, b->ms, 1 / b->ratio,
           control, win ? "yes" : "-");
    if (win)
        fprintf(t->o->tune, "# %s: %s %.3f ms, the rules %.3f ms (paired runs), %.2fx against the control\n"
                "%s\t%s\t%s\t%zu\n", label, vw, b->ms, b->rules_ms, 1 / b->ratio, t->dev->name, key,
                clnorm_variant_name(b->v), b->wg);
    fflush(stdout);
}

/* One case: 0, or -1 if it could not be measured at all. */
static int tune_case(tuner *t, const th_case *c, const clnorm_desc *d, cl_mem mem[TH_ROLES],
                     const char *label) {
    char key[64];
    clnorm_status st = clnorm_tuning_key(d, key, sizeof key);
    if (st != CLNORM_OK) {
        progress_done();
        fprintf(stderr, "%s: %s: clnorm_tuning_key: %s\n", prog, label, clnorm_status_name(st));
        return -1;
    }
    if (key_seen(t, key)) {
        printf("%-40s %-30s (tuned with an earlier case of the same key)\n", label, key);
        return 0;
    }
    /* The control: the rules in cx against the rules in rules_cx. The same
     * plan in two contexts measured up to 7% apart here (scratch placement,
     * run order); candidates' ratios are taken relative to it. */
    double ctl_ms, ctl_rules;
    progress("%s: tuning %s: control", t->dev->name, label);
    if (tune_pair(t, d, CLNORM_VARIANT_AUTO, 0, t->o->reps, &ctl_ms, &ctl_rules) != 0) {
        progress_done();
        fprintf(stderr, "%s: %s: %s: %s\n", prog, t->dev->name, label, t->r->err);
        return -1;
    }
    const double control = ctl_ms / ctl_rules;
    cand cs[MAX_CANDS];
    int n = measure_candidates(t, d, label, control, cs);
    if (n == 0) {
        progress_done();
        fprintf(stderr, "%s: %s: %s: no candidate ran: %s\n", prog, t->dev->name, label, t->r->err);
        return -1;
    }
    int win = confirm(t, c, d, mem, label, cs, n);
    clnorm_set_variant(t->cx, CLNORM_VARIANT_AUTO, 0);
    progress_done();
    tune_result(t, label, key, &cs[win >= 0 ? win : 0], control, win >= 0);
    return 0;
}

int tune_device(const options *o, runner *r, const devinfo *dev, clnorm_ctx *cx, cl_mem mem[TH_ROLES]) {
    /* The rules in a second context on the same queue; neither reads a
     * tuning file, so the file written is complete by itself. */
    tuner t = {o, r, dev, cx, NULL, NULL, 0};
    clnorm_status st = clnorm_create_from_queue(r->q, &t.rules_cx);
    if (st == CLNORM_OK) st = clnorm_set_tuning(t.rules_cx, NULL);
    if (st == CLNORM_OK) st = clnorm_set_tuning(cx, NULL);
    if (st != CLNORM_OK) {
        fprintf(stderr, "%s: %s: tuning contexts: %s\n", prog, dev->name, clnorm_status_name(st));
        clnorm_destroy(t.rules_cx);
        return 1;
    }
    printf("\nTuning %s [%s]: %s, median of %d runs, each candidate paired with the rules;\n"
           "an entry where one is %.0f%% faster or more, again in a longer rerun, and passes the reference check\n\n",
           dev->name, type_name(dev->type), r->mode == TIME_EVENTS ? "profiling events" : "wall clock", o->reps,
           (1 - TUNE_MIN_GAIN) * 100);
    printf("%-40s %-30s %9s  %-12s %9s %8s %7s  %s\n", "case", "key", "rules ms", "best", "best ms", "speed-up",
           "control", "entry");
    if (!(t.keys = calloc(o->n_cases ? o->n_cases : 1, 64))) die("out of host memory");
    int failures = 0;
    for (size_t i = 0; i < o->n_cases; i++) {
        char label[160];
        th_case_label(&o->cases[i], label, sizeof label);
        clnorm_desc d;
        if (case_desc_on(&o->cases[i], mem, &d) != 0) {
            fprintf(stderr, "%s: %s: bad case\n", prog, label);
            failures++;
        } else if (tune_case(&t, &o->cases[i], &d, mem, label) != 0) {
            failures++;
        }
    }
    clnorm_destroy(t.rules_cx);
    free(t.keys);
    return failures;
}
