/* clnorm-bench's reports: progress on stderr, the table, JSON and CSV. */
#include "bench.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

const char *cache_mode = "cold";
static int progress_tty, progress_quiet;

void progress_init(int quiet) {
    progress_tty = isatty(2);
    progress_quiet = quiet;
}

/* ------------------------------------------------------------------ output */

static void json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

static void csv_field(FILE *f, const char *s) {
    if (strpbrk(s, ",\"\n")) {
        fputc('"', f);
        for (; *s; s++) {
            if (*s == '"') fputc('"', f);
            fputc(*s, f);
        }
        fputc('"', f);
    } else {
        fputs(s, f);
    }
}

/* direction: "forward" or "backward" (clnorm_backward of the same case). */
static const char *direction_name(const th_case *c) { return c->backward ? "backward" : "forward"; }

const char CSV_HEADER[] =
    "device,platform,op,direction,layout,shape,groups,dtype,param_dtype,label,median_ms,min_ms,gbps,copy_gbps,ratio,ratio_min,bytes,reps,variant,"
    "timing,cache,copy_stream_gbps,copy_method\n";

void csv_row(FILE *f, const devinfo *dev, const result *r, int reps, const char *variant,
                    const char *timing) {
    double copy_gbps = r->copy_gbps;
    char shape[96], label[160];
    th_shape_string(&r->c, shape, sizeof shape);
    th_case_label(&r->c, label, sizeof label);
    csv_field(f, dev->name);
    fputc(',', f);
    csv_field(f, dev->platform_name);
    fprintf(f, ",%s,%s,%s,%s,%zu,%s,%s,", th_op_name(&r->c), direction_name(&r->c), th_layout_name(&r->c), shape,
            r->c.groups, th_dtype_name(r->c.dtype), th_dtype_name(r->c.param_dtype));
    csv_field(f, label);
    fprintf(f, ",%.6f,%.6f,%.3f,%.3f,%.4f,%.4f,%.0f,%d,%s,%s,%s,", r->median_ms, r->min_ms, r->gbps, copy_gbps,
            r->ratio, r->ratio_min, r->bytes, reps, variant, timing, cache_mode);
    if (r->copy_stream_gbps > 0) fprintf(f, "%.3f", r->copy_stream_gbps);
    fprintf(f, ",%s\n", r->copy_method);
}

/* "grads":["dx","dscale"], the gradients a backward row asks for ([] forward), and a comma. */
static void json_grads(FILE *f, const th_case *c) {
    static const int roles[] = {TH_DX, TH_DSCALE, TH_DBIAS};
    unsigned g = th_case_grads(c);
    int n = 0;
    fputs("\"grads\":[", f);
    for (size_t k = 0; k < sizeof roles / sizeof roles[0]; k++)
        if (g & TH_ROLE(roles[k])) fprintf(f, "%s\"%s\"", n++ ? "," : "", th_role_name(roles[k]));
    fputs("],", f);
}

void json_row(FILE *f, const devinfo *dev, const result *r, int reps, const char *variant,
                     const char *timing) {
    double copy_gbps = r->copy_gbps;
    char label[160];
    th_case_label(&r->c, label, sizeof label);
    fputs("{\"device\":", f);
    json_string(f, dev->name);
    fputs(",\"platform\":", f);
    json_string(f, dev->platform_name);
    fprintf(f,
            ",\"device_index\":\"%u:%u\",\"device_type\":\"%s\",\"op\":\"%s\",\"direction\":\"%s\","
            "\"layout\":\"%s\",\"shape\":[",
            dev->pi, dev->di, type_name(dev->type), th_op_name(&r->c), direction_name(&r->c), th_layout_name(&r->c));
    for (unsigned i = 0; i < r->c.ndim; i++) fprintf(f, "%s%zu", i ? "," : "", r->c.shape[i]);
    fprintf(f, "],\"groups\":%zu,\"dtype\":\"%s\",\"param_dtype\":\"%s\",\"training\":%d,\"affine\":%d,\"save_stats\":%d,",
            r->c.groups, th_dtype_name(r->c.dtype), th_dtype_name(r->c.param_dtype), r->c.training, r->c.scale,
            r->c.stats);
    json_grads(f, &r->c);
    fputs("\"label\":", f);
    json_string(f, label);
    if (r->copy_stream_gbps > 0)
        fprintf(f, ",\"copy_stream_gbps\":%.3f", r->copy_stream_gbps);
    else
        fputs(",\"copy_stream_gbps\":null", f);
    fprintf(f,
            ",\"median_ms\":%.6f,\"min_ms\":%.6f,\"gbps\":%.3f,\"copy_gbps\":%.3f,\"ratio\":%.4f,"
            "\"ratio_min\":%.4f,\"bytes\":%.0f,\"reps\":%d,\"variant\":\"%s\",\"timing\":\"%s\",\"cache\":\"%s\","
            "\"copy_method\":\"%s\"}\n",
            r->median_ms, r->min_ms, r->gbps, copy_gbps, r->ratio, r->ratio_min, r->bytes, reps, variant, timing,
            cache_mode, r->copy_method);
    fflush(f);
}

void progress(const char *fmt, ...) {
    char line[256];
    va_list ap;
    if (progress_quiet) return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (progress_tty) fprintf(stderr, "\r\033[K%s", line);
    else fprintf(stderr, "%s\n", line);
    fflush(stderr);
}

void progress_done(void) {
    if (progress_tty) fprintf(stderr, "\r\033[K");
    fflush(stderr);
}

void print_devices(const devinfo *devs, int n) {
    printf("%-5s %-5s %-4s %-6s %-9s %-40s %s\n", "P:D", "type", "CUs", "maxWG", "mem MiB", "device",
           "platform");
    for (int i = 0; i < n; i++)
        printf("%u:%-3u %-5s %-4u %-6zu %-9llu %-40s %s\n", devs[i].pi, devs[i].di, type_name(devs[i].type),
               devs[i].units, devs[i].max_wg, (unsigned long long)(devs[i].global_mem >> 20), devs[i].name,
               devs[i].platform_name);
}

/* The table header's line on the calibration: every method's GB/s and the
 * winner, or that --copy-method chose. */
static void print_copy_methods(int chosen, const double *gbps, int forced, int reps) {
    if (forced) {
        printf("Copy method: %s, set by --copy-method (no calibration)\n", copy_methods[chosen].name);
        return;
    }
    printf("Copy method: %s, the fastest in a calibration (GB/s, median of %d round-robin runs each):",
           copy_methods[chosen].name, reps < COPY_CALIBRATION_REPS ? reps : COPY_CALIBRATION_REPS);
    for (int m = 0; m < n_copy_methods; m++) {
        if (gbps[m] > 0) printf("%s %s %.2f", m ? "," : "", copy_methods[m].name, gbps[m]);
        else printf("%s %s failed", m ? "," : "", copy_methods[m].name);
    }
    putchar('\n');
}

void print_suite_json(const options *o) {
    for (size_t i = 0; i < o->n_cases; i++) {
        const th_case *c = &o->cases[i];
        char label[160];
        th_case_label(c, label, sizeof label);
        printf("{\"op\":\"%s\",\"direction\":\"%s\",\"layout\":\"%s\",\"shape\":[", th_op_name(c),
               direction_name(c), th_layout_name(c));
        for (unsigned k = 0; k < c->ndim; k++) printf("%s%zu", k ? "," : "", c->shape[k]);
        printf("],\"groups\":%zu,\"dtype\":\"%s\",\"param_dtype\":\"%s\",\"training\":%d,\"affine\":%d,"
               "\"save_stats\":%d,",
               c->groups, th_dtype_name(c->dtype), th_dtype_name(c->param_dtype), c->training, c->scale, c->stats);
        json_grads(stdout, c);
        fputs("\"label\":", stdout);
        json_string(stdout, label);
        printf(",\"bytes\":%.0f}\n", th_case_bytes(c));
    }
}

static const char *timing_name(const runner *r) { return r->mode == TIME_EVENTS ? "events" : "wall"; }

void report_row(const device_report *rep, const result *rs) {
    const options *o = rep->o;
    if (o->json) json_row(stdout, rep->dev, rs, o->reps, rep->vlabel, timing_name(rep->r));
    if (o->csv_stdout) csv_row(stdout, rep->dev, rs, o->reps, rep->vlabel, timing_name(rep->r));
    if (rep->csv) csv_row(rep->csv, rep->dev, rs, o->reps, rep->vlabel, timing_name(rep->r));
}

static void sanitize(const char *in, char *out, size_t len) {
    size_t j = 0;
    int dash = 0;
    for (; *in && j + 1 < len; in++) {
        unsigned char ch = (unsigned char)*in;
        if (isalnum(ch) || ch == '.' || ch == '_') {
            out[j++] = (char)ch;
            dash = 0;
        } else if (!dash && j > 0) {
            out[j++] = '-';
            dash = 1;
        }
    }
    while (j > 0 && out[j - 1] == '-') j--;
    out[j] = 0;
    if (j == 0) snprintf(out, len, "device");
}

/* --csv-dir: DIR/<device>.csv. 0 or 1 (not written). */
static int write_csv_dir(const device_report *rep, const result *res, size_t n) {
    char fname[300], path[4096];
    sanitize(rep->dev->name, fname, sizeof fname);
    snprintf(path, sizeof path, "%s/%s.csv", rep->o->csv_dir, fname);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "%s: cannot write %s: %s\n", prog, path, strerror(errno));
        return 1;
    }
    fputs(CSV_HEADER, f);
    for (size_t i = 0; i < n; i++)
        if (res[i].ok) csv_row(f, rep->dev, &res[i], rep->o->reps, rep->vlabel, timing_name(rep->r));
    fclose(f);
    fprintf(stderr, "%s: wrote %s\n", prog, path);
    return 0;
}

/* The table's header: the device, the copy reference and the method. */
static void table_header(const device_report *rep) {
    const options *o = rep->o;
    const devinfo *dev = rep->dev;
    const runner *r = rep->r;
    const copy_ref *c = rep->copy;
    printf("\nDevice %u:%u: %s [%s, %s, %u CUs]\n", dev->pi, dev->di, dev->name, dev->platform_name,
           type_name(dev->type), dev->units);
    printf("Copy bandwidth: %.2f GB/s (%s: %s; %.1f MB read + written; median %.3f ms, min %.3f ms;"
           " %.2f GB/s again after the cases)\n",
           c->gbps, copy_methods[c->method].name, copy_methods[c->method].what, c->elems * 4.0 * 2 / 1e6, c->t.med_ms,
           c->t.min_ms, c->end_gbps);
    print_copy_methods(c->method, c->method_gbps, o->copy_method != NULL, o->reps);
    if (c->stream_gbps > 0)
        printf("Copy with streaming stores: %.2f GB/s (for reference: clnorm streams large outputs on CPUs,"
               " so ratios to the plain copy can pass 1)\n", c->stream_gbps);
    printf("Timing: %s%s, warm-up %d, median of %d runs; caches %s; variant %s\n",
           r->mode == TIME_EVENTS ? "profiling events (end of an empty stamp kernel to end of the op)" : "wall clock",
           r->gate ? ", gated" : "", o->warmup, o->reps, r->scrub ? "scrubbed before each run (cold)" : "warm",
           rep->vlabel);
    if (c->t.own_med > 0)
        printf("Timing overhead: %.1f us (copy: %.3f ms stamp-to-end vs %.3f ms its own start-to-end)\n",
               (c->t.med_ms - c->t.own_med) * 1e3, c->t.med_ms, c->t.own_med);
    printf("Bytes: each buffer's elements at its type's size (type f16/bf16: 2-byte x, y, dy, dx and parameters,\n"
           "       f16/f32: float32 parameters; statistics, dscale and dbias always float32);\n"
           "       fwd x read, y written, parameters and statistics once; bwd (clnorm_backward, after an untimed\n"
           "       forward for the statistics) x and dy read, dx written, scale, statistics, dscale and dbias once\n");
    printf("Ratio: GB/s over %s;\n       ratio(min): fastest run over fastest copy run (interference only slows runs)\n\n",
           o->copy_once ? "the copy bandwidth above"
           : "the median copy bandwidth of copy runs interleaved with the case's runs (column copy)");
}

static void table(const device_report *rep, const result *res, size_t n) {
    table_header(rep);
    printf("%-18s %-3s %-6s %-15s %5s %-7s %10s %10s %9s %7s %7s %9s\n", "op", "dir", "layout", "shape", "G", "type",
           "median ms", "min ms", "GB/s", "copy", "ratio", "ratio(min)");
    for (size_t i = 0; i < n; i++) {
        char shape[96];
        th_shape_string(&res[i].c, shape, sizeof shape);
        char g[16] = "-";
        if (res[i].c.op == CLNORM_GROUP_NORM) snprintf(g, sizeof g, "%zu", res[i].c.groups);
        const char *dir = res[i].c.backward ? "bwd" : "fwd";
        char ty[16]; /* x's type, and "/f32" for float32 parameters with a 16-bit x */
        snprintf(ty, sizeof ty, "%s%s", th_dtype_name(res[i].c.dtype),
                 res[i].c.param_dtype != res[i].c.dtype ? "/f32" : "");
        if (res[i].ok)
            printf("%-18s %-3s %-6s %-15s %5s %-7s %10.3f %10.3f %9.2f %7.2f %7.3f %9.3f\n", th_op_name(&res[i].c), dir,
                   th_layout_name(&res[i].c), shape, g, ty, res[i].median_ms, res[i].min_ms, res[i].gbps,
                   res[i].copy_gbps, res[i].ratio, res[i].ratio_min);
        else
            printf("%-18s %-3s %-6s %-15s %5s %-7s %10s %10s %9s %7s %7s %9s\n", th_op_name(&res[i].c), dir,
                   th_layout_name(&res[i].c), shape, g, ty, "FAILED", "-", "-", "-", "-", "-");
    }
    fflush(stdout);
}

int report_device(const device_report *rep, const result *res, size_t n) {
    const copy_ref *c = rep->copy;
    if (c->end_gbps > 0 && fabs(c->end_gbps / c->gbps - 1.0) > 0.15)
        fprintf(stderr, "%s: warning: copy bandwidth drifted from %.2f to %.2f GB/s during the run (busy machine?); %s\n",
                prog, c->gbps, c->end_gbps,
                rep->o->copy_once ? "ratios are against the first value"
                                  : "each ratio is against the copies run between its own runs");
    int failures = rep->o->csv_dir ? write_csv_dir(rep, res, n) : 0;
    if (!rep->o->json && !rep->o->csv_stdout) table(rep, res, n);
    return failures;
}
