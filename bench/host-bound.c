/*
 * What the host CPU's memory system allows, in plain C threads, for the
 * access patterns behind clnorm's CPU ratios: no OpenCL, no clnorm. It
 * answers "is this ratio the kernel's fault or the machine's?".
 *
 *   build/bench/host-bound [--mib X] [--copy-mib M] [--samples N] [--reps R] [--threads T]
 *
 * x is X MiB (default 16, GroupNorm 2x512x64x64's), rows of 2 KiB; y is as
 * large. Every run starts from cold caches (256 MiB written first, as
 * clnorm-bench's scrub kernel does), and the runs of all patterns are
 * interleaved, so a busy spell of a shared machine slows them alike. The
 * median of R runs (default 15) is reported as GB/s of x + y and as a ratio
 * to a plain copy of M MiB (default X). clnorm-bench's reference copy is
 * its largest case's x, 392 MiB in the standard suite: pass --copy-mib 392
 * to compare with its ratios.
 *
 *   copy          y = x with plain stores (clnorm-bench's reference)
 *   copy-nt       y = x with streaming stores
 *   two-pass      read all of x, then read x again and write y (streaming):
 *                 a reduction set that spans x, as BatchNorm training's
 *   waves         N samples: read sample 0; then read sample w while
 *                 re-reading and writing sample w-1, row by row; then write
 *                 the last (clnorm's col_wave, channels-last GroupNorm)
 *
 * Threads split every sample's rows, as the kernels' work-items do.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif

typedef float v4 __attribute__((vector_size(16)));
enum { ROW = 512 /* floats: 2 KiB */, MAXT = 256 };
enum pattern { COPY, COPY_NT, TWO_PASS, WAVES, NPAT };
static const char *const names[NPAT] = {"copy", "copy-nt", "two-pass", "waves"};

static struct {
    float *x, *y;
    size_t sample; /* floats per sample */
    int nsamples, nthreads;
    enum pattern pat;
    pthread_barrier_t go, done, step;
    int quit;
    v4 sink[MAXT];
} g;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Sum of p[0, n): four accumulators, so loads and not one add chain bound it. */
static v4 read_span(const float *p, size_t n, v4 acc)
{
    v4 a = {0}, b = {0}, c = {0};
    for (size_t i = 0; i < n; i += 16) {
        acc += *(const v4 *)(p + i);
        a += *(const v4 *)(p + i + 4);
        b += *(const v4 *)(p + i + 8);
        c += *(const v4 *)(p + i + 12);
    }
    return acc + a + b + c;
}

/* y = x * 0.5 + 1 over [0, n): an affine map, as the normalization pass. */
static void write_span(const float *x, float *y, size_t n, int nt)
{
    const v4 h = {0.5f, 0.5f, 0.5f, 0.5f}, one = {1, 1, 1, 1};
    for (size_t i = 0; i < n; i += 4) {
        const v4 u = *(const v4 *)(x + i) * h + one;
#if defined(__SSE__)
        if (nt) {
            _mm_stream_ps(y + i, (__m128)u);
            continue;
        }
#endif
        *(v4 *)(y + i) = u;
    }
}

static void *worker(void *arg)
{
    const int id = (int)(size_t)arg;
    v4 acc = {0};
    for (;;) {
        pthread_barrier_wait(&g.go);
        if (g.quit) break;
        const size_t rows = g.sample / ROW;
        const size_t r0 = rows * id / g.nthreads * ROW, r1 = rows * (id + 1) / g.nthreads * ROW;
        const int N = g.nsamples;
        switch (g.pat) {
        case COPY:
        case COPY_NT:
            for (int s = 0; s < N; ++s)
                write_span(g.x + s * g.sample + r0, g.y + s * g.sample + r0, r1 - r0, g.pat == COPY_NT);
            break;
        case TWO_PASS:
            for (int s = 0; s < N; ++s) acc = read_span(g.x + s * g.sample + r0, r1 - r0, acc);
            pthread_barrier_wait(&g.step); /* statistics are complete only now */
            for (int s = 0; s < N; ++s)
                write_span(g.x + s * g.sample + r0, g.y + s * g.sample + r0, r1 - r0, 1);
            break;
        case WAVES:
            for (int w = 0; w <= N; ++w) {
                for (size_t r = r0; r < r1; r += ROW) {
                    if (w < N) acc = read_span(g.x + w * g.sample + r, ROW, acc);
                    if (w > 0)
                        write_span(g.x + (w - 1) * g.sample + r, g.y + (w - 1) * g.sample + r, ROW, 1);
                }
                pthread_barrier_wait(&g.step); /* one launch per wave */
            }
            break;
        default: break;
        }
#if defined(__SSE__)
        _mm_sfence();
#endif
        pthread_barrier_wait(&g.done);
    }
    g.sink[id] = acc;
    return NULL;
}

static int cmp(const void *a, const void *b)
{
    const double u = *(const double *)a, v = *(const double *)b;
    return (u > v) - (u < v);
}

static float *scrub;
static size_t scrub_n;

/* Seconds of one cold run of pattern p over nsamples samples of `sample`
 * floats each. */
static double run_once(enum pattern p, size_t sample, int nsamples, int r)
{
    g.pat = p, g.sample = sample, g.nsamples = nsamples;
    for (size_t i = 0; i < scrub_n; ++i) scrub[i] = (float)r;
    const double t0 = now();
    pthread_barrier_wait(&g.go);
    pthread_barrier_wait(&g.done);
    return now() - t0;
}

/* Floats per sample for mib MiB in n samples, rounded up to whole rows per thread. */
static size_t sample_floats(double mib, int n)
{
    const size_t unit = (size_t)ROW * g.nthreads;
    return ((size_t)(mib * 1048576.0 / 4 / n) + unit - 1) / unit * unit;
}

int main(int argc, char **argv)
{
    double mib = 16, copy_mib = 0;
    int reps = 15, nsamples = 2;
    g.nthreads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    for (int i = 1; i < argc; ++i) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--mib") && v) mib = atof(argv[++i]);
        else if (!strcmp(argv[i], "--copy-mib") && v) copy_mib = atof(argv[++i]);
        else if (!strcmp(argv[i], "--samples") && v) nsamples = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && v) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && v) g.nthreads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--mib X] [--copy-mib M] [--samples N] [--reps R] [--threads T]\n",
                    argv[0]);
            return 2;
        }
    }
    if (copy_mib == 0) copy_mib = mib;
    if (g.nthreads < 1 || g.nthreads > MAXT || nsamples < 1 || reps < 1 || !(mib > 0) || !(copy_mib > 0)) {
        fprintf(stderr, "host-bound: bad arguments\n");
        return 2;
    }
    const size_t sample = sample_floats(mib, nsamples), n = sample * nsamples;
    const size_t ncopy = sample_floats(copy_mib, 1), nmax = n > ncopy ? n : ncopy;
    scrub_n = (256u << 20) / 4;
    double *times = calloc((size_t)reps * (NPAT + 1), sizeof *times);
    if (posix_memalign((void **)&g.x, 4096, nmax * 4) || posix_memalign((void **)&g.y, 4096, nmax * 4) ||
        posix_memalign((void **)&scrub, 4096, scrub_n * 4) || !times) {
        fprintf(stderr, "host-bound: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < nmax; ++i) g.x[i] = (float)(i & 15), g.y[i] = 0;
    memset(scrub, 0, scrub_n * 4);
    pthread_barrier_init(&g.go, NULL, (unsigned)g.nthreads + 1);
    pthread_barrier_init(&g.done, NULL, (unsigned)g.nthreads + 1);
    pthread_barrier_init(&g.step, NULL, (unsigned)g.nthreads);
    pthread_t th[MAXT];
    for (int i = 0; i < g.nthreads; ++i) pthread_create(&th[i], NULL, worker, (void *)(size_t)i);

    double *t[NPAT + 1];
    for (int p = 0; p <= NPAT; ++p) t[p] = times + (size_t)p * reps;
    for (int r = 0; r < reps; ++r) {
        t[NPAT][r] = run_once(COPY, ncopy, 1, r);
        for (int p = 0; p < NPAT; ++p) t[p][r] = run_once((enum pattern)p, sample, nsamples, r);
    }
    for (int p = 0; p <= NPAT; ++p) qsort(t[p], (size_t)reps, sizeof(double), cmp);
    const double copy_gbs = 2.0 * (double)ncopy * 4 / t[NPAT][reps / 2] / 1e9;
    printf("reference: plain copy of %.1f MiB, %.3f ms, %.2f GB/s (x read + y written)\n",
           (double)ncopy * 4 / 1048576.0, t[NPAT][reps / 2] * 1e3, copy_gbs);
    printf("x = y = %.1f MiB in %d sample(s), %d threads, cold caches, median of %d, interleaved\n",
           (double)n * 4 / 1048576.0, nsamples, g.nthreads, reps);
    printf("%-9s %10s %8s %7s\n", "pattern", "median ms", "GB/s", "ratio");
    for (int p = 0; p < NPAT; ++p) {
        const double gbs = 2.0 * (double)n * 4 / t[p][reps / 2] / 1e9;
        printf("%-9s %10.3f %8.2f %7.3f\n", names[p], t[p][reps / 2] * 1e3, gbs, gbs / copy_gbs);
    }
    g.quit = 1;
    pthread_barrier_wait(&g.go);
    for (int i = 0; i < g.nthreads; ++i) pthread_join(th[i], NULL);
    free(g.x), free(g.y), free(scrub), free(times);
    return 0;
}
