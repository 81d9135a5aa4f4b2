/*
 * The planner, without OpenCL: every case of the benchmark's standard suite
 * (plus shapes at the rules' edges) is planned for every recorded device
 * profile (profiles.c), and each plan is checked for properties any correct
 * and fast plan has:
 *   - well formed: ranges are whole work-groups, work-groups and __local
 *     memory fit the device, lanes divide the work-group, scratch is bounded;
 *   - every partial written is merged exactly once, by a merge whose order
 *     depends on the shape only: planning twice gives the same bytes;
 *   - GPUs: a large input gets at least 4 work-groups per compute unit in
 *     every launch that reads x (unless its sets are read once, from
 *     registers), and consecutive work-items read consecutive addresses
 *     there (item_stride at most one vector);
 *   - GPUs: LayerNorm/RMSNorm rows that fit in registers read x once.
 * Backward plans (every case again as its backward call) are checked for the
 * same form, and for their sums: every pair of partial sums written is read
 * by exactly one later launch (bwd_params, bwd_merge, or bwd_rows' second
 * phase), and LayerNorm's column partials stay a fraction of the tensor.
 * The executor runs nothing but plans, so these hold for every call.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "profiles.h"
#include "case.h"

static test_profile g_prof[8];
static size_t g_nprof;
static unsigned long g_plans, g_launches, g_failed;

/* A property check that reports and counts, so one run lists every
 * violation; each test asserts the count at its end. */
#define EXPECT(cond, ...)                                                                                 \
    do {                                                                                                  \
        if (!(cond)) {                                                                                    \
            g_failed++;                                                                                   \
            printf("FAIL ");                                                                              \
            printf(__VA_ARGS__);                                                                          \
            printf("\n");                                                                                 \
        }                                                                                                 \
    } while (0)
#define EXPECT_NONE() ck_assert_msg(g_failed == 0, "%lu plan properties violated (FAIL lines above)", g_failed)

/* Non-NULL stand-ins for the buffers a case has: the planner only looks at
 * which are present. */
static void fake_buffers(const th_case *bc, clnorm_desc *d)
{
    size_t elems[TH_ROLES];
    th_case_buffer_elems(bc, elems);
    for (int r = 0; r < TH_ROLES; ++r)
        if (elems[r]) *th_desc_buf(d, r) = (clnorm_buf){(cl_mem)(uintptr_t)(0x1000 + 16 * r), 0};
}

static size_t launch_groups(const clnorm_launch *L)
{
    size_t g = 1;
    for (cl_uint i = 0; i < L->dims; ++i) g *= L->global[i] / L->local[i];
    return g;
}

/* The partial count a partials launch writes (3 floats each). */
static size_t partials_written(const clnorm_plan *p) { return p->scratch_floats[0] / 3; }

/* Form and GPU properties of one launch of plan p (both directions). */
static void check_launch(const test_profile *tp, const char *label, const clnorm_plan *p, const clnorm_launch *L,
                         int auto_rules, int large)
{
    const clnorm_devinfo *dev = &tp->dev;
    const int gpu = !dev->is_cpu;
    const char *kn = clnorm_kernel_names[L->kernel];
    g_launches++;
    size_t items = 1;
    for (cl_uint k = 0; k < L->dims; ++k) {
        EXPECT(L->local[k] >= 1 && L->global[k] % L->local[k] == 0,
               "%s on %s: %s dim %u: global %zu is not whole groups of %zu", label, tp->label, kn, k,
               L->global[k], L->local[k]);
        items *= L->local[k];
    }
    EXPECT(items <= dev->max_wg, "%s on %s: %s: work-group of %zu > device max %zu", label, tp->label, kn, items,
           dev->max_wg);
    EXPECT(L->prog.wg == L->local[0], "%s on %s: %s: program WG %u, launched with %zu", label, tp->label, kn,
           L->prog.wg, L->local[0]);
    EXPECT(L->prog.lanes >= 1 && L->prog.wg % L->prog.lanes == 0, "%s on %s: %s: lanes %u of wg %u", label,
           tp->label, kn, L->prog.lanes, L->prog.wg);
    EXPECT(L->local_bytes <= dev->local_bytes, "%s on %s: %s: %zu bytes of __local > %llu", label, tp->label,
           kn, L->local_bytes, (unsigned long long)dev->local_bytes);
    /* Except where each set is read once from registers: splitting it
     * for more work-groups would read x three times instead of once. */
    if (gpu && auto_rules && large && L->item_stride && p->x_reads > 1)
        EXPECT(launch_groups(L) >= 4 * (size_t)dev->compute_units,
               "%s on %s: %s runs %zu work-groups, fewer than 4 per compute unit (%u)", label, tp->label, kn,
               launch_groups(L), dev->compute_units);
    if (gpu && auto_rules && L->kernel == CLNORM_KID_col_partials)
        EXPECT(L->local[0] <= 32 || L->local[0] / 2 < L->args.col_partials.C,
               "%s on %s: col_partials: %zu-wide work-groups over %u columns leave half idle", label, tp->label,
               L->local[0], L->args.col_partials.C);
    if (gpu && auto_rules && L->item_stride)
        EXPECT(L->item_stride <= 4, "%s on %s: %s: consecutive work-items read %zu elements apart", label,
               tp->label, kn, L->item_stride);
}

/* A forward plan: the properties of the file's opening comment. Its status,
 * and the plan in *out (unless NULL) for a caller's own checks. */
static clnorm_status check_plan(const test_profile *tp, const char *label, const clnorm_desc *d,
                                const clnorm_shape *s, const clnorm_settings *set, int auto_rules, clnorm_plan *out)
{
    clnorm_plan p, q;
    const clnorm_devinfo *dev = &tp->dev;
    const clnorm_status st = clnorm_plan_forward(dev, set, d, s, &p);
    EXPECT(st == CLNORM_OK, "%s on %s: no plan", label, tp->label);
    EXPECT(clnorm_plan_forward(dev, set, d, s, &q) == CLNORM_OK, "%s: no plan the second time", label);
    EXPECT(memcmp(&p, &q, sizeof p) == 0, "%s on %s: two plans of one call differ", label, tp->label);
    EXPECT(p.n >= 1 && p.n <= CLNORM_PLAN_MAX, "%s on %s: %u launches", label, tp->label, p.n);
    g_plans++;
    const int gpu = !dev->is_cpu;
    const int large = s->elems >= ((size_t)4 << 20);
    size_t merged = 0;
    int self_merging = 0; /* col_wave merges its partials itself */
    for (unsigned i = 0; i < p.n; ++i) {
        const clnorm_launch *L = &p.launch[i];
        if (L->kernel == CLNORM_KID_col_wave) self_merging = 1;
        if (L->kernel == CLNORM_KID_merge_partials || L->kernel == CLNORM_KID_merge_sets) {
            const clnorm_args_merge_partials *m = &L->args.merge_partials;
            merged += (size_t)m->nsets * m->n1 * m->n2;
        }
        check_launch(tp, label, &p, L, auto_rules, large);
    }
    /* Every partial is merged, once (a merge reads each of its n1 x n2 per
     * set; partials of different sets are disjoint by construction). */
    if (partials_written(&p) && !self_merging)
        EXPECT(merged == partials_written(&p), "%s on %s: %zu partials written, %zu merged", label,
                      tp->label, partials_written(&p), merged);
    /* Scratch stays a fraction of the data it serves. */
    size_t scratch = 0;
    for (int i = 0; i < CLNORM_SCRATCH_COUNT; ++i) scratch += p.scratch_floats[i];
    EXPECT(scratch <= s->elems + 65536 + 3 * s->N * s->C, "%s on %s: %zu floats of scratch for %zu elements",
                  label, tp->label, scratch, s->elems);
    /* Sets held in registers: LayerNorm/RMSNorm rows, and channels-first
     * InstanceNorm/GroupNorm sets whose channel planes are whole vectors. */
    const int row_pipe = !s->channel || (!s->cl && d->op != CLNORM_BATCH_NORM && s->batch_stats);
    if (gpu && auto_rules && row_pipe && (!s->channel || s->S % 4 == 0) && s->set_len <= 8192)
        EXPECT(p.x_reads == 1, "%s on %s: rows of %zu read x %u times, not once from registers", label,
                      tp->label, s->set_len, p.x_reads);
    if (out) *out = p;
    return st;
}

/* A backward plan: form as above; the pairs of sums each launch writes are
 * read once (bwd_params reads J x B pairs, bwd_merge nent x n1 x n2, and
 * bwd_rows' phase 2 every (set, chunk) pair of phase 1); scratch bounded. */
static void check_plan_backward(const test_profile *tp, const char *label, const clnorm_desc *d,
                                const clnorm_shape *s, const clnorm_settings *set, int auto_rules)
{
    clnorm_plan p, q;
    const clnorm_devinfo *dev = &tp->dev;
    EXPECT(clnorm_plan_backward(dev, set, d, s, &p) == CLNORM_OK, "%s on %s: no backward plan", label, tp->label);
    EXPECT(clnorm_plan_backward(dev, set, d, s, &q) == CLNORM_OK, "%s: no backward plan the second time", label);
    EXPECT(memcmp(&p, &q, sizeof p) == 0, "%s on %s: two backward plans of one call differ", label, tp->label);
    EXPECT(p.n >= 1 && p.n <= CLNORM_PLAN_MAX, "%s on %s: %u launches", label, tp->label, p.n);
    g_plans++;
    const int large = s->elems >= ((size_t)4 << 20);
    size_t read_pairs = 0, phase2 = 0;
    int writes_dx = 0;
    for (unsigned i = 0; i < p.n; ++i) {
        const clnorm_launch *L = &p.launch[i];
        check_launch(tp, label, &p, L, auto_rules, large);
        if (L->kernel == CLNORM_KID_bwd_params)
            read_pairs += (size_t)L->args.bwd_params.J * L->args.bwd_params.B;
        if (L->kernel == CLNORM_KID_bwd_merge)
            read_pairs += (size_t)L->args.bwd_merge.nent * L->args.bwd_merge.n1 * L->args.bwd_merge.n2;
        if (L->kernel == CLNORM_KID_bwd_rows && L->args.bwd_rows.phase == 2)
            phase2 += (size_t)L->args.bwd_rows.nsets * L->global[1];
        if ((L->kernel == CLNORM_KID_bwd_rows && L->args.bwd_rows.phase != 1 && L->args.bwd_rows.dx) ||
            L->kernel == CLNORM_KID_bwd_apply)
            writes_dx = 1;
    }
    EXPECT(read_pairs == p.scratch_floats[0] / 2, "%s on %s: %zu pairs of sums written, %zu read", label,
           tp->label, p.scratch_floats[0] / 2, read_pairs);
    const int split_rows = p.n && p.launch[0].kernel == CLNORM_KID_bwd_rows && p.launch[0].args.bwd_rows.phase == 1;
    if (split_rows)
        EXPECT(phase2 == p.scratch_floats[1] / 2, "%s on %s: %zu row sums written, %zu read", label, tp->label,
               p.scratch_floats[1] / 2, phase2);
    EXPECT(writes_dx == (d->dx.mem != NULL), "%s on %s: dx %s but the plan %s it", label, tp->label,
           d->dx.mem ? "asked" : "not asked", writes_dx ? "writes" : "does not write");
    size_t scratch = 0;
    for (int i = 0; i < CLNORM_SCRATCH_COUNT; ++i) scratch += p.scratch_floats[i];
    EXPECT(scratch <= s->elems / 2 + 65536 + 6 * s->N * s->C, "%s on %s: %zu floats of scratch for %zu elements",
           label, tp->label, scratch, s->elems);
}

/* The descriptor of case bc, with stand-in buffers, and its shape. */
static void case_desc(const th_case *bc, const char *label, clnorm_desc *d, clnorm_shape *s)
{
    ck_assert_msg(th_case_desc(bc, d) == 0, "%s: no descriptor", label);
    fake_buffers(bc, d);
    ck_assert_msg(clnorm_describe(NULL, d, s) == CLNORM_OK, "%s: bad shape", label);
}

static void plan_case(const th_case *bc, const clnorm_settings *set, int auto_rules)
{
    clnorm_desc d;
    clnorm_shape s, sb;
    char label[128];
    th_case_label(bc, label, sizeof label);
    case_desc(bc, label, &d, &s);
    for (size_t i = 0; i < g_nprof; ++i) check_plan(&g_prof[i], label, &d, &s, set, auto_rules, NULL);
    /* The same call's backward: every gradient, then dx alone. */
    th_case bb = *bc;
    bb.backward = 1;
    for (int k = 0; k < 2; ++k) {
        bb.grads = k ? TH_ROLE(TH_DX) : TH_GRADS;
        clnorm_desc e;
        case_desc(&bb, label, &e, &sb);
        for (size_t i = 0; i < g_nprof; ++i) check_plan_backward(&g_prof[i], label, &e, &s, set, auto_rules);
    }
}

START_TEST(suite_cases_on_every_profile)
{
    g_failed = 0;
    const clnorm_settings rules = {CLNORM_VARIANT_AUTO, 0, -1};
    for (size_t i = 0; i < th_suite_count; ++i) plan_case(&th_suite[i], &rules, 1);
    EXPECT_NONE();
}
END_TEST

/* Shapes at the rules' edges: one element, primes, one long row, many tiny
 * sets, rank 0 and 3, both layouts. */
START_TEST(edge_shapes)
{
    g_failed = 0;
    const char *specs[][3] = {
        {"layer_norm", "1x1", ""},          {"layer_norm", "1x1048577", ""}, {"rms_norm", "131071x7", ""},
        {"layer_norm", "3x1031", ""},       {"layer_norm", "65537x33", ""},  {"batch_norm_train", "2x3", ""},
        {"batch_norm_train", "8192x1024", ""}, {"batch_norm_train", "7x13x5x3x2", "nhwc"},
        {"batch_norm_train", "3x5x1", "nchw"}, {"instance_norm", "2x3x4097", "nhwc"},
        {"group_norm", "2x64x9x9", "nhwc"},  {"group_norm", "1x32x1x1", "nchw"},
        {"batch_norm_infer", "5x7x3", "nhwc"}, {"instance_norm", "16x64x128x128", "nhwc"},
        {"batch_norm_train", "64x64x64x64", "nhwc"}, {"group_norm", "8x32x128x128", "nhwc"}};
    const clnorm_settings rules = {CLNORM_VARIANT_AUTO, 0, -1};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; ++i) {
        th_case bc;
        char err[128];
        th_case_init(&bc, CLNORM_LAYER_NORM);
        ck_assert_int_eq(th_parse_op(specs[i][0], &bc), 0);
        th_case_full(&bc);
        ck_assert_int_eq(th_parse_shape(specs[i][1], &bc), 0);
        if (specs[i][2][0]) ck_assert_int_eq(th_parse_layout(specs[i][2], &bc.layout), 0);
        if (bc.op == CLNORM_GROUP_NORM) bc.groups = 4;
        ck_assert_msg(th_case_check(&bc, err, sizeof err) == 0, "%s %s: %s", specs[i][0], specs[i][1], err);
        plan_case(&bc, &rules, 1);
    }
    EXPECT_NONE();
}
END_TEST

/* LpNormalization (clnorm_desc_lp_norm) along the innermost axis (rows)
 * and an outer one (channels-last InstanceNorm's columns, col_wave on CPUs
 * for 1 MiB samples): every launch that reduces or computes rstd carries
 * LP (with RMS for p = 2, never RSTD_ZERO: LP's own zero-norm rule), and
 * every eps argument is the set's count, which rstd_of turns into the norm
 * (common.cl). A launch planned without them computes a variance. */
START_TEST(lp_plans)
{
    g_failed = 0;
    const struct {
        unsigned ndim;
        size_t dims[4];
        int axis;
    } cs[] = {{2, {64, 768}, -1}, {2, {3, 70000}, 1},       {3, {4, 300, 24}, 1},
              {3, {2, 16384, 16}, 1}, {4, {8, 512, 512, 64}, 2}, {2, {2048, 1024}, 0}};
    const clnorm_settings rules = {CLNORM_VARIANT_AUTO, 0, -1};
    for (size_t i = 0; i < sizeof cs / sizeof cs[0]; ++i)
        for (int lp = 1; lp <= 2; ++lp) {
            clnorm_desc d;
            clnorm_shape s;
            char label[96];
            snprintf(label, sizeof label, "lp %d case %zu axis %d", lp, i, cs[i].axis);
            ck_assert_int_eq(clnorm_desc_lp_norm(NULL, &d, cs[i].ndim, cs[i].dims, cs[i].axis, lp), CLNORM_OK);
            d.x = (clnorm_buf){(cl_mem)(uintptr_t)0x1000, 0}, d.y = (clnorm_buf){(cl_mem)(uintptr_t)0x1010, 0};
            ck_assert_msg(clnorm_describe(NULL, &d, &s) == CLNORM_OK, "%s: bad shape", label);
            const unsigned want = CLNORM_K_LP | (lp == 2 ? CLNORM_K_RMS : 0u);
            for (size_t k = 0; k < g_nprof; ++k) {
                const test_profile *tp = &g_prof[k];
                clnorm_plan p;
                if (check_plan(tp, label, &d, &s, &rules, 1, &p) != CLNORM_OK) continue;
                for (unsigned j = 0; j < p.n; ++j) {
                    const clnorm_launch *L = &p.launch[j];
                    const char *kn = clnorm_kernel_names[L->kernel];
                    float eps = (float)s.set_len;
                    int reduces = 1;
                    switch (L->kernel) {
                    case CLNORM_KID_row_norm: eps = L->args.row_norm.eps; break;
                    case CLNORM_KID_col_wave: eps = L->args.col_wave.eps; break;
                    case CLNORM_KID_fold_table: eps = L->args.fold_table.eps; break;
                    case CLNORM_KID_merge_partials:
                    case CLNORM_KID_merge_sets: eps = L->args.merge_partials.eps; break;
                    case CLNORM_KID_row_partials:
                    case CLNORM_KID_col_partials: break;
                    default: reduces = 0;
                    }
                    if (!reduces) continue;
                    EXPECT((L->prog.flags & (CLNORM_K_LP | CLNORM_K_RMS | CLNORM_K_RSTD_ZERO)) == want,
                           "%s on %s: %s has flags 0x%x, want LP%s", label, tp->label, kn, L->prog.flags,
                           lp == 2 ? " | RMS" : "");
                    EXPECT(eps == (float)s.set_len, "%s on %s: %s: eps %g, not the count %zu", label, tp->label,
                           kn, (double)eps, s.set_len);
                }
            }
        }
    EXPECT_NONE();
}
END_TEST

/* Forced variants and work-group sizes (clnorm_set_variant, tuning files)
 * still give well-formed plans that merge every partial. */
START_TEST(forced_settings)
{
    g_failed = 0;
    for (int v = 0; v < CLNORM_VARIANT_COUNT; ++v)
        for (size_t wg = 0; wg <= 1024; wg = wg ? wg * 4 : 1) {
            const clnorm_settings set = {(clnorm_variant)v, wg, -1};
            for (size_t i = 0; i < th_suite_count; ++i) {
                if (wg > 256) continue; /* above the AMD profile's maximum */
                plan_case(&th_suite[i], &set, 0);
            }
        }
    EXPECT_NONE();
}
END_TEST

/* CPUs: a device counts on 16 MiB of the reported last-level cache per
 * compute unit at most (plan.c: cache_share). The 2-core EPYC profile with
 * a whole Xeon socket's 260 MiB in place of its 32 MiB must give the same
 * plans, forward and backward; without the cap the streaming-store and
 * pipeline rules see an eighth of the real pressure and differ. */
START_TEST(cpu_cache_share)
{
    g_failed = 0;
    const clnorm_settings rules = {CLNORM_VARIANT_AUTO, 0, -1};
    const test_profile *epyc = NULL;
    for (size_t i = 0; i < g_nprof; ++i)
        if (g_prof[i].dev.is_cpu && g_prof[i].dev.cache_bytes == (32u << 20)) epyc = &g_prof[i];
    ck_assert_msg(epyc != NULL, "no 32 MiB CPU profile");
    clnorm_devinfo big = epyc->dev;
    big.cache_bytes = 260u << 20;
    for (size_t i = 0; i < th_suite_count; ++i)
        for (int bwd = 0; bwd < 2; ++bwd) {
            th_case bc = th_suite[i];
            clnorm_desc d;
            clnorm_shape s;
            clnorm_plan a, b;
            char label[128];
            bc.backward = bwd;
            if (bwd) bc.grads = TH_GRADS;
            th_case_label(&bc, label, sizeof label);
            case_desc(&bc, label, &d, &s);
            memset(&a, 0, sizeof a), memset(&b, 0, sizeof b);
            const clnorm_status sa = bwd ? clnorm_plan_backward(&epyc->dev, &rules, &d, &s, &a)
                                         : clnorm_plan_forward(&epyc->dev, &rules, &d, &s, &a);
            const clnorm_status sb = bwd ? clnorm_plan_backward(&big, &rules, &d, &s, &b)
                                         : clnorm_plan_forward(&big, &rules, &d, &s, &b);
            EXPECT(sa == CLNORM_OK && sb == CLNORM_OK, "%s: no plan", label);
            EXPECT(memcmp(&a, &b, sizeof a) == 0, "%s: a 260 MiB cache on 2 cores plans differently from 32 MiB",
                   label);
        }
    EXPECT_NONE();
}
END_TEST

/* CPUs: bwd_rows' pipeline takes rows in pairs (pipe 2, bwd_rows_grouped)
 * where a row's column partials reach 1 MiB and the gradients are asked
 * for, and row by row (pipe 1) otherwise: LayerNorm 64x262144 with every
 * gradient, then with dx alone, and 2048x8192 with every gradient. */
START_TEST(bwd_row_pairs)
{
    g_failed = 0;
    const clnorm_settings rules = {CLNORM_VARIANT_AUTO, 0, -1};
    const struct {
        const char *shape;
        unsigned grads, pipe;
    } want[] = {{"64x262144", TH_GRADS, 2}, {"64x262144", TH_ROLE(TH_DX), 1}, {"2048x8192", TH_GRADS, 1}};
    for (size_t i = 0; i < g_nprof; ++i) {
        if (!g_prof[i].dev.is_cpu) continue;
        for (size_t k = 0; k < sizeof want / sizeof want[0]; ++k) {
            th_case bc;
            clnorm_desc d;
            clnorm_shape s;
            clnorm_plan p;
            th_case_init(&bc, CLNORM_LAYER_NORM);
            th_case_full(&bc);
            ck_assert_int_eq(th_parse_shape(want[k].shape, &bc), 0);
            bc.backward = 1;
            bc.grads = want[k].grads;
            case_desc(&bc, want[k].shape, &d, &s);
            EXPECT(clnorm_plan_backward(&g_prof[i].dev, &rules, &d, &s, &p) == CLNORM_OK, "%s: no plan",
                   want[k].shape);
            EXPECT(p.n >= 1 && p.launch[0].kernel == CLNORM_KID_bwd_rows &&
                       p.launch[0].args.bwd_rows.pipe == want[k].pipe,
                   "%s (grads %#x) on %s: bwd_rows pipe %u, want %u", want[k].shape, want[k].grads,
                   g_prof[i].label, p.n ? p.launch[0].args.bwd_rows.pipe : 0, want[k].pipe);
        }
    }
    EXPECT_NONE();
}
END_TEST

/* CPUs widen float16 elementwise parameters once per call (plan.c,
 * add_widen) where a row pipeline reads them for 64 sets or more, in calls
 * of 2^20 elements or more: the plan
 * starts with widen_params into TABLE (scale at 0, bias at len; backward:
 * scale alone), and the row launch reads them there as float32 (program
 * pt 0). Not for fewer sets or elements, bfloat16 or float32 parameters, split rows,
 * channel norms, or GPUs. */
START_TEST(widened_params)
{
    g_failed = 0;
    const clnorm_settings rules = {CLNORM_VARIANT_AUTO, 0, -1};
    const struct {
        const char *line;
        int cpu_widens;
    } want[] = {
        {"layer_norm 4096x4096 affine stats f16", 1},
        {"layer_norm 4096x4096 affine stats f16 backward", 1},
        {"rms_norm 64x16384 scale f16", 1},
        {"rms_norm 64x16384 scale f16 dx", 1},
        {"rms_norm 64x16383 scale f16", 0},
        {"layer_norm 63x65536 affine f16", 0},
        {"layer_norm 4096x4096 affine f16 params=f32", 0},
        {"layer_norm 4096x4096 affine bf16", 0},
        {"layer_norm 2x1048576 affine f16", 0},
        {"group_norm 16x256x32x32 nchw G=32 affine f16", 0},
    };
    for (size_t k = 0; k < sizeof want / sizeof want[0]; ++k) {
        th_case bc;
        char err[300];
        ck_assert_msg(th_case_parse(&bc, want[k].line, err, sizeof err) == 0, "%s", err);
        clnorm_desc d;
        clnorm_shape s;
        case_desc(&bc, want[k].line, &d, &s);
        for (size_t i = 0; i < g_nprof; ++i) {
            const test_profile *tp = &g_prof[i];
            clnorm_plan p;
            const clnorm_status st = bc.backward ? clnorm_plan_backward(&tp->dev, &rules, &d, &s, &p)
                                                 : clnorm_plan_forward(&tp->dev, &rules, &d, &s, &p);
            EXPECT(st == CLNORM_OK, "%s on %s: no plan", want[k].line, tp->label);
            if (st != CLNORM_OK) continue;
            unsigned widens = 0;
            for (unsigned j = 0; j < p.n; ++j) widens += p.launch[j].kernel == CLNORM_KID_widen_params;
            const int expect = want[k].cpu_widens && tp->dev.is_cpu;
            EXPECT(widens == (unsigned)expect, "%s on %s: %u widen_params launches, want %d", want[k].line, tp->label,
                   widens, expect);
            if (!expect || widens != 1 || p.n < 2) continue;
            const clnorm_launch *W = &p.launch[0], *R = &p.launch[1];
            const cl_uint len = (cl_uint)s.set_len;
            EXPECT(W->kernel == CLNORM_KID_widen_params && W->args.widen_params.n == len &&
                       W->global[0] >= len && W->prog.pt == CLNORM_FLOAT16 &&
                       W->args.widen_params.table == CLNORM_SRC_TABLE && p.scratch_floats[2] >= 2 * (size_t)len &&
                       W->args.widen_params.scale == CLNORM_SRC_SCALE &&
                       W->args.widen_params.bias == (d.bias.mem && !bc.backward ? CLNORM_SRC_BIAS : CLNORM_SRC_NONE),
                   "%s on %s: the first launch does not widen scale and bias into TABLE", want[k].line, tp->label);
            if (bc.backward)
                EXPECT(R->kernel == CLNORM_KID_bwd_rows && R->prog.pt == CLNORM_FLOAT32 &&
                           R->args.bwd_rows.scale == CLNORM_SRC_TABLE && R->args.bwd_rows.so == 0,
                       "%s on %s: bwd_rows does not read the widened scale", want[k].line, tp->label);
            else
                EXPECT(R->kernel == CLNORM_KID_row_norm && R->prog.pt == CLNORM_FLOAT32 &&
                           R->args.row_norm.scale == CLNORM_SRC_TABLE && R->args.row_norm.so == 0 &&
                           R->args.row_norm.bias == (d.bias.mem ? CLNORM_SRC_TABLE : CLNORM_SRC_NONE) &&
                           (!d.bias.mem || R->args.row_norm.bo == len),
                       "%s on %s: row_norm does not read the widened parameters", want[k].line, tp->label);
        }
    }
    EXPECT_NONE();
}
END_TEST

/* The target macros of each recorded device (device.c): PoCL's CPU device
 * gets the clang/x86 ones, and 512-bit registers only with 16 floats per
 * native vector (the Xeon, not the AVX2 EPYC); NVIDIA gets inline PTX; the
 * other GPUs none. */
START_TEST(target_features)
{
    g_failed = 0;
    for (size_t i = 0; i < g_nprof; ++i) {
        const clnorm_devinfo *d = &g_prof[i].dev;
        const int pocl = strstr(d->platform, "Portable Computing Language") != NULL;
        const int nv = strstr(d->platform, "NVIDIA") != NULL;
        char o[CLNORM_TARGET_OPTIONS_MAX], want[256];
        const int n = clnorm_target_options(d, o, sizeof o);
        EXPECT(n > 0 && (size_t)n < sizeof o, "%s: options truncated", g_prof[i].label);
#if defined(__x86_64__) || defined(__i386__)
        const int nt = pocl;
#else
        const int nt = 0;
#endif
        snprintf(want, sizeof want,
                 "-DCLNORM_HAS_NT_STORE=%d -DCLNORM_HAS_PREFETCH_BUILTIN=%d -DCLNORM_HAS_NV_SHFL=%d "
                 "-DCLNORM_HAS_UNALIGNED_VEC=%d -DCLNORM_HAS_WIDE_VEC=%d",
                 nt, pocl, nv, pocl, pocl && d->native_float >= 16);
        EXPECT(strcmp(o, want) == 0, "%s: target options \"%s\", want \"%s\"", g_prof[i].label, o, want);
    }
    EXPECT(strstr(g_prof[4].dev.name, "avx512") && (g_prof[4].dev.features & CLNORM_FEAT_WIDE_VEC),
           "the AVX-512 profile lacks 512-bit registers");
    EXPECT(!(g_prof[1].dev.features & CLNORM_FEAT_WIDE_VEC), "the AVX2 profile has 512-bit registers");
    EXPECT_NONE();
}
END_TEST

int main(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    g_nprof = test_profiles(g_prof, sizeof g_prof / sizeof g_prof[0]);
    for (size_t i = 0; i < g_nprof; ++i)
        printf("# profile %s: %s%s\n", g_prof[i].label, g_prof[i].source, g_prof[i].dev.is_cpu ? " (CPU rules)" : "");
    Suite *s = suite_create("plan");
    TCase *tc = tcase_create("plan");
    tcase_add_test(tc, suite_cases_on_every_profile);
    tcase_add_test(tc, edge_shapes);
    tcase_add_test(tc, lp_plans);
    tcase_add_test(tc, forced_settings);
    tcase_add_test(tc, cpu_cache_share);
    tcase_add_test(tc, bwd_row_pairs);
    tcase_add_test(tc, widened_params);
    tcase_add_test(tc, target_features);
    suite_add_tcase(s, tc);
    SRunner *r = srunner_create(s);
    srunner_set_fork_status(r, CK_NOFORK);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    printf("# test_plan: %lu plans, %lu launches checked on %zu profiles\n", g_plans, g_launches, g_nprof);
    return failed ? 1 : 0;
}
