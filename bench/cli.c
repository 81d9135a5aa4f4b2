/* clnorm-bench's command line: see usage(). */
#include "bench.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *prog = "clnorm-bench";

void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

/* The library's variant names, separated by sep: "auto wg subgroup wi split". */
static const char *variant_list(const char *sep) {
    static char buf[128];
    size_t used = 0;
    for (int i = 0; i < CLNORM_VARIANT_COUNT && used < sizeof buf; i++)
        used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%s", i ? sep : "",
                                 clnorm_variant_name((clnorm_variant)i));
    return buf;
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: %s [options]\n"
            "  --list                 list OpenCL platforms and devices (P:D indices) and exit\n"
            "  --device P:D|NAME      device by platform:device index or name substring (repeatable);\n"
            "                         default: the library default (CLNORM_DEVICE, else first GPU, else first)\n"
            "  --all-devices          every device of every platform\n"
            "  --op OP --shape AxBx.. [--layout nchw|nhwc] [--groups G] [--inference] [--no-affine] [--no-stats]\n"
            "                         one case instead of the standard suite (repeat --op to add cases;\n"
            "                         the suite: issue 4's float32 cases, then its LayerNorm, RMSNorm and\n"
            "                         GroupNorm cases in float16 and in bfloat16, labels ending f16/bf16;\n"
            "                         ops: layer_norm rms_norm batch_norm_train batch_norm_infer group_norm\n"
            "                         instance_norm; shapes in PyTorch order, N x C x spatial for channel norms)\n"
            "  --dtype f16|bf16|f32   the case's storage type: x, y (dy, dx) and, unless --param-dtype f32,\n"
            "                         scale and bias in float16 or bfloat16 (statistics stay float32)\n"
            "  --param-dtype f32      scale and bias in float32 with a 16-bit --dtype\n"
            "  --grads dx,dscale,dbias  the gradients the case's backward call asks for (default: dx, plus\n"
            "                         dscale and dbias where the case has scale and bias: PyTorch's output_mask)\n"
            "  --direction forward|backward|both\n"
            "                         the forward call of each case, its backward (clnorm_backward of the same\n"
            "                         descriptor, after one untimed forward for the saved statistics), or both,\n"
            "                         each case's backward row after its forward row (default: both; labels of\n"
            "                         backward rows end in \"bwd\")\n"
            "  --filter SUBSTR        run only suite cases whose label contains SUBSTR (repeatable; \"bwd\"\n"
            "                         matches the backward rows)\n"
            "  --reps N               timed runs per case (default 20; the median is reported)\n"
            "  --warmup N             untimed runs first (default 3)\n"
            "  --variant V[:WG]       force a kernel variant (%s), optional work-group size\n"
            "  --wg N                 work-group size with --variant\n"
            "  --copy-elems N         float count of the copy-bandwidth reference (default: largest suite x)\n"
            "  --copy-method M        how the reference copy is made: auto (default) times clEnqueueCopyBuffer\n"
            "                         and the copy kernels copy4 copy4_stride copy1 copy8 copy16 once per\n"
            "                         device (a few runs each, medians) and uses only the fastest from then\n"
            "                         on; or one of those names, without the calibration\n"
            "  --copy-once            ratios against the copy bandwidth measured first only (default: against\n"
            "                         copy runs interleaved with each case's runs, robust on a busy machine)\n"
            "  --wall                 time with the wall clock instead of profiling events\n"
            "  --no-gate              do not hold each run on a user event until it is fully enqueued\n"
            "  --check                after timing, compare all of y/mean/rstd (backward rows: dx/dscale/dbias)\n"
            "                         with the double-precision reference of tests/reference.c, with the\n"
            "                         tests' tolerances (a fast wrong kernel fails the case)\n"
            "  --warm-cache           do not scrub the caches before each run (default: scrub, cold caches)\n"
            "  --json                 one JSON object per case per line on stdout (no table)\n"
            "  --csv [FILE]           CSV to FILE (with a header), or to stdout instead of the table\n"
            "  --csv-dir DIR          one CSV per device: DIR/<device>.csv\n"
            "  --suite-json           print the selected cases as JSON lines (with bytes) and exit\n"
            "  --quiet                no progress line on stderr\n"
            "  --tune FILE            instead of the benchmark: time every variant and work-group size of each\n"
            "                         case against the rules (--reps per candidate, default 5) and write the\n"
            "                         ones >= 5%% faster (and again in a longer rerun) that pass the\n"
            "                         reference check to FILE, for\n"
            "                         CLNORM_TUNING=FILE or clnorm_set_tuning() (see include/clnorm.h)\n",
            prog, variant_list(" "));
}

static int parse_variant(const char *s, clnorm_variant *v, size_t *wg) {
    char name[32];
    const char *colon = strchr(s, ':');
    size_t len = colon ? (size_t)(colon - s) : strlen(s);
    if (len >= sizeof name) return -1;
    memcpy(name, s, len);
    name[len] = 0;
    if (clnorm_variant_from_name(name, v) != CLNORM_OK) return -1;
    if (colon) {
        char *end;
        unsigned long w = strtoul(colon + 1, &end, 10);
        if (*end || w == 0) return -1;
        *wg = w;
    }
    return 0;
}

static long parse_long(const char *opt, const char *s, long min) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min) die("%s: bad value '%s' (integer >= %ld)", opt, s, min);
    return v;
}

const char *variant_label(const options *o, char *buf, size_t len) {
    if (!o->variant_set) return "auto";
    if (o->wg) snprintf(buf, len, "%s:%zu", clnorm_variant_name(o->variant), o->wg);
    else snprintf(buf, len, "%s", clnorm_variant_name(o->variant));
    return buf;
}

/* The parser's state. */
typedef struct cli {
    options *o;
    int argc, i;
    char **argv;
    th_case *cur; /* case being built from --op */
    const char *filters[64];
    int n_filters;
    int reps_set;
} cli;

/* The value of option argv[i] (which must have one); advances i. */
static const char *value(cli *c) {
    if (c->i + 1 >= c->argc) die("%s needs a value (see --help)", c->argv[c->i]);
    return c->argv[++c->i];
}

/* The case being built: --op must come first. */
static th_case *cur_case(cli *c, const char *a) {
    if (!c->cur) die("%s must follow --op", a);
    return c->cur;
}

/* "dx,dscale": TH_ROLE bits of the gradients named. 0 or -1. */
static int parse_grads(const char *s, unsigned *grads) {
    static const int roles[] = {TH_DX, TH_DSCALE, TH_DBIAS};
    *grads = 0;
    while (*s) {
        size_t len = strcspn(s, ",");
        int found = 0;
        for (size_t k = 0; k < sizeof roles / sizeof roles[0]; k++) {
            const char *name = th_role_name(roles[k]);
            if (strlen(name) == len && !strncmp(s, name, len)) *grads |= TH_ROLE(roles[k]), found = 1;
        }
        if (!found) return -1;
        s += len;
        if (*s == ',') s++;
    }
    return *grads ? 0 : -1;
}

static unsigned parse_direction(const char *v) {
    if (!strcmp(v, "forward") || !strcmp(v, "fwd")) return DIR_FORWARD;
    if (!strcmp(v, "backward") || !strcmp(v, "bwd")) return DIR_BACKWARD;
    if (!strcmp(v, "both")) return DIR_BOTH;
    die("bad --direction '%s' (forward|backward|both)", v);
}

/* --op and the options that describe its case; 1 if a was one. */
static int case_option(cli *c, const char *a) {
    options *o = c->o;
    if (!strcmp(a, "--op")) {
        const char *v = value(c);
        if (o->n_cases == MAX_CASES) die("too many cases");
        c->cur = &o->cases[o->n_cases++];
        th_case_init(c->cur, CLNORM_LAYER_NORM);
        if (th_parse_op(v, c->cur) != 0) die("unknown op '%s'", v);
        th_case_full(c->cur);
    } else if (!strcmp(a, "--shape")) {
        th_case *bc = cur_case(c, a);
        const char *v = value(c);
        if (th_parse_shape(v, bc) != 0) die("bad shape '%s' (e.g. 32x256x64x64)", v);
    } else if (!strcmp(a, "--layout")) {
        th_case *bc = cur_case(c, a);
        const char *v = value(c);
        if (th_parse_layout(v, &bc->layout) != 0) die("bad layout '%s' (nchw|nhwc)", v);
    } else if (!strcmp(a, "--groups") || !strcmp(a, "-G")) {
        th_case *bc = cur_case(c, a);
        bc->groups = (size_t)parse_long(a, value(c), 1);
    } else if (!strcmp(a, "--inference")) {
        th_case *bc = cur_case(c, a);
        bc->training = 0;
        if (bc->op == CLNORM_INSTANCE_NORM) bc->running = 1;
    } else if (!strcmp(a, "--running-stats")) {
        cur_case(c, a)->running = 1;
    } else if (!strcmp(a, "--no-affine")) {
        th_case *bc = cur_case(c, a);
        bc->scale = bc->bias = 0;
    } else if (!strcmp(a, "--no-stats")) {
        cur_case(c, a)->stats = 0;
    } else if (!strcmp(a, "--dtype")) {
        th_case *bc = cur_case(c, a);
        const char *v = value(c);
        if (th_parse_dtype(v, &bc->dtype) != 0) die("bad --dtype '%s' (f16|bf16|f32)", v);
        bc->param_dtype = bc->dtype;
    } else if (!strcmp(a, "--param-dtype")) {
        th_case *bc = cur_case(c, a);
        const char *v = value(c);
        if (th_parse_dtype(v, &bc->param_dtype) != 0) die("bad --param-dtype '%s' (f32, or --dtype's)", v);
    } else if (!strcmp(a, "--grads")) {
        th_case *bc = cur_case(c, a);
        const char *v = value(c);
        if (parse_grads(v, &bc->grads) != 0) die("bad --grads '%s' (a comma-separated list of dx, dscale, dbias)", v);
    } else if (!strcmp(a, "--filter")) {
        const char *v = value(c);
        if (c->n_filters == 64) die("too many --filter");
        c->filters[c->n_filters++] = v;
    } else {
        return 0;
    }
    return 1;
}

static void copy_method_option(options *o, const char *v) {
    o->copy_method = v;
    if (!strcmp(v, "auto")) {
        o->copy_method = NULL;
    } else if (copy_method_index(v) < 0) {
        fprintf(stderr, "%s: unknown copy method '%s'; one of: auto", prog, v);
        for (int m = 0; m < n_copy_methods; m++) fprintf(stderr, " %s", copy_methods[m].name);
        fputc('\n', stderr);
        exit(2);
    }
}

/* How the cases are run and timed; 1 if a was one of those options. */
static int run_option(cli *c, const char *a) {
    options *o = c->o;
    if (!strcmp(a, "--reps")) {
        o->reps = (int)parse_long(a, value(c), 1);
        c->reps_set = 1;
    } else if (!strcmp(a, "--warmup")) {
        o->warmup = (int)parse_long(a, value(c), 0);
    } else if (!strcmp(a, "--variant")) {
        const char *v = value(c);
        if (parse_variant(v, &o->variant, &o->wg) != 0) die("bad variant '%s' (%s[:WG])", v, variant_list("|"));
        o->variant_set = 1;
    } else if (!strcmp(a, "--wg")) {
        o->wg = (size_t)parse_long(a, value(c), 1);
    } else if (!strcmp(a, "--copy-elems")) {
        o->copy_elems = (size_t)parse_long(a, value(c), 4);
    } else if (!strcmp(a, "--warm-cache")) {
        o->warm_cache = 1;
        cache_mode = "warm";
    } else if (!strcmp(a, "--copy-method")) {
        copy_method_option(o, value(c));
    } else if (!strcmp(a, "--copy-once")) {
        o->copy_once = 1;
    } else if (!strcmp(a, "--no-gate")) {
        o->no_gate = 1;
    } else if (!strcmp(a, "--check")) {
        o->check = 1;
    } else if (!strcmp(a, "--direction")) {
        o->direction = parse_direction(value(c));
        o->direction_set = 1;
    } else if (!strcmp(a, "--wall")) {
        o->timing_wall = 1;
    } else {
        return 0;
    }
    return 1;
}

/* Devices and outputs; 1 if a was one of those options. */
static int output_option(cli *c, const char *a) {
    options *o = c->o;
    if (!strcmp(a, "--list")) {
        o->list = 1;
    } else if (!strcmp(a, "--device") || !strcmp(a, "-d")) {
        const char *v = value(c);
        if (o->n_device_sel == MAX_DEVICES) die("too many --device");
        o->device_sel[o->n_device_sel++] = v;
    } else if (!strcmp(a, "--all-devices")) {
        o->all_devices = 1;
    } else if (!strcmp(a, "--json")) {
        o->json = 1;
    } else if (!strcmp(a, "--csv")) {
        if (c->i + 1 < c->argc && strncmp(c->argv[c->i + 1], "--", 2) != 0) o->csv_file = c->argv[++c->i];
        else o->csv_stdout = 1;
    } else if (!strncmp(a, "--csv=", 6)) {
        o->csv_file = a + 6;
    } else if (!strcmp(a, "--csv-dir")) {
        o->csv_dir = value(c);
    } else if (!strcmp(a, "--suite-json")) {
        o->suite_json = 1;
    } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
        o->quiet = 1;
    } else if (!strcmp(a, "--tune")) {
        o->tune_path = value(c);
    } else {
        return 0;
    }
    return 1;
}

/* Options that go together or not at all. */
static void check_combinations(cli *c) {
    options *o = c->o;
    if (o->wg && !o->variant_set) {
        o->variant_set = 1;
        o->variant = CLNORM_VARIANT_AUTO;
    }
    if (o->json && o->csv_stdout) die("--json and --csv without a file both write stdout; pick one");
    if (o->tune_path) {
        if (o->variant_set) die("--tune measures every variant; drop --variant/--wg");
        if (o->direction_set && o->direction != DIR_FORWARD) die("--tune tunes forward calls; drop --direction");
        o->direction = DIR_FORWARD;
        if (o->json || o->csv_stdout || o->csv_file || o->csv_dir) die("--tune prints its own table; drop --json/--csv");
        if (!c->reps_set) o->reps = 5; /* per candidate, paired with the rules: ~60 runs per case */
    } else if (o->reps < 10 && !o->quiet) {
        fprintf(stderr, "%s: note: --reps %d is below the suite's minimum of 10\n", prog, o->reps);
    }
}

/* Appends case c in the directions asked for (forward first), whose
 * labels pass the filters (the standard suite's cases only: an --op case
 * always runs). */
static void add_case(cli *c, const th_case *bc, int filtered) {
    options *o = c->o;
    for (int dir = DIR_FORWARD; dir <= DIR_BACKWARD; dir <<= 1) {
        if (!(o->direction & (unsigned)dir)) continue;
        th_case k = *bc;
        k.backward = dir == DIR_BACKWARD;
        if (!k.backward) k.grads = 0;
        char label[160];
        th_case_label(&k, label, sizeof label);
        int keep = !filtered || c->n_filters == 0;
        for (int f = 0; f < c->n_filters && !keep; f++) keep = ci_contains(label, c->filters[f]);
        if (!keep) continue;
        if (o->n_cases == MAX_CASES) die("too many cases");
        o->cases[o->n_cases++] = k;
    }
}

/* The cases to run: those of --op, checked, or the standard suite's that
 * pass --filter (its float32 cases, then the half-precision ones:
 * th_suite_half); each in the directions of --direction. */
static void select_cases(cli *c) {
    options *o = c->o;
    char err[256];
    static th_case base[MAX_CASES];
    size_t nbase = o->n_cases;
    memcpy(base, o->cases, nbase * sizeof base[0]);
    o->n_cases = 0;
    for (size_t i = 0; i < nbase; i++) {
        if (th_case_check(&base[i], err, sizeof err) != 0)
            die("case %zu (%s): %s", i + 1, th_op_name(&base[i]), err);
        if (base[i].param_dtype != CLNORM_FLOAT32 && base[i].param_dtype != base[i].dtype)
            die("case %zu (%s): --param-dtype is f32 or --dtype's type", i + 1, th_op_name(&base[i]));
        add_case(c, &base[i], 0);
    }
    if (nbase) return;
    for (size_t i = 0; i < th_suite_count; i++) add_case(c, &th_suite[i], 1);
    static th_case half[MAX_CASES];
    size_t nhalf = th_suite_half(half, MAX_CASES);
    for (size_t i = 0; i < nhalf && i < MAX_CASES; i++) add_case(c, &half[i], 1);
    if (o->n_cases == 0) die("--filter matches no suite case");
}

int parse_options(int argc, char **argv, options *o, int *done) {
    cli c = {.o = o, .argc = argc, .argv = argv};
    o->reps = 20;
    o->warmup = 3;
    o->direction = DIR_BOTH;
    *done = 0;
    for (c.i = 1; c.i < argc; c.i++) {
        const char *a = argv[c.i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            *done = 1;
            return 0;
        }
        if (!case_option(&c, a) && !run_option(&c, a) && !output_option(&c, a)) {
            fprintf(stderr, "%s: unknown option '%s'\n", prog, a);
            usage(stderr);
            *done = 1;
            return 2;
        }
    }
    check_combinations(&c);
    select_cases(&c);
    return 0;
}
