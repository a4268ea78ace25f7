/* Optional C kernel for linear-bin histograms of float32 rows (kohakuboard.types._histkernel).

   Used by kohakuboard/types/_histogram_cpu.py (_linear_rows) when built; without it the
   numpy path there runs. Two calls per block of rows, with the GIL released inside:

   scan(x, rows, n, lo, hi, zeros, nan, posinf, neginf)
       per row: finite min/max (+inf/-inf when there is no finite value), the number of zeros
       and of NaN/+Inf/-Inf values.

   bin(x, rows, n, bins, safe, start, factor, near, edges, counts, mean, std)
       per row with safe[r] != 0: counts[r] (bins + 2 int64: underflow, bins, overflow) of the
       finite values, placed exactly as the numpy path does: the float32 position
       p = (x - start) * factor, bucket floor(p) + 1 clamped to [0, bins + 1], and a value
       whose fraction is within (0.5 - near) of an integer placed again by an exact search of
       the float64 edges (numpy.histogram's rule: the last edge belongs to the last bin).
       Non-finite values are not counted (the caller holds their numbers). mean/std: of the
       finite values, in float64 (per block of values: sums of deviations from the block's
       first value; blocks combined with Chan et al.'s formula). Rows with safe[r] == 0 are
       left untouched (the caller computes them).

   Values whose position is beyond [-1.5, bins + 1.5] are clamped there before the floor:
   the caller only marks a row safe when the position's error is under 0.25, so such a value
   is in the underflow/overflow whether or not numpy's near-edge test would have caught it.

   Every buffer is checked (format, contiguity, length) before the GIL is released; the only
   writes are to counts, mean and std of the rows asked for. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if !defined(FLT_EVAL_METHOD) || FLT_EVAL_METHOD != 0
#error "the float32 position arithmetic needs FLT_EVAL_METHOD == 0 (no excess precision)"
#endif

/* gcc and clang vector extensions (SSE2/NEON-sized); a plain loop elsewhere */
#if defined(__GNUC__) && (defined(__clang__) || __GNUC__ >= 9)
#define HK_VECTORS 1
typedef float v4f __attribute__((vector_size(16)));
typedef int32_t v4si __attribute__((vector_size(16)));
typedef float v2f __attribute__((vector_size(8)));
typedef double v2d __attribute__((vector_size(16)));
#else
#define HK_VECTORS 0
#endif

/* On x86-64 with gcc, the two hot loops are also compiled for AVX2 and the loader picks the
   variant the CPU runs (the same IEEE operations, so the same results; no FMA: the build
   passes -ffp-contract=off and "avx2" does not enable FMA). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define HK_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define HK_CLONES
#endif

#define API_VERSION 1
#define BLOCK 256
#define MAX_BINS (1 << 22) /* bins + 1.5 exact in float32 */

/* ---- buffer checks ---- */

#define I64 "ql" /* an 8-byte signed integer: 'l' on LP64 systems, 'q' elsewhere */

static int
get_buffer(PyObject *obj, Py_buffer *view, const char *name, const char *fmts,
           Py_ssize_t itemsize, Py_ssize_t length, int writable)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0)
        return -1;
    const char *f = view->format ? view->format : "B";
    if (f[0] == '=' || f[0] == '<' || f[0] == '@')
        f++;
    if (view->itemsize != itemsize || f[0] == '\0' || strchr(fmts, f[0]) == NULL || f[1] != '\0') {
        PyErr_Format(PyExc_TypeError, "%s: expected a contiguous buffer of format '%s' "
                     "(%zd bytes), got format %s, itemsize %zd", name, fmts, itemsize,
                     view->format ? view->format : "B", view->itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    if (view->len != length * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd items, got %zd", name, length,
                     view->len / itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static int
check_shape(Py_ssize_t rows, Py_ssize_t n)
{
    if (rows < 0 || n < 0 || (n > 0 && rows > PY_SSIZE_T_MAX / 8 / n)) {
        PyErr_Format(PyExc_ValueError, "rows and n must be >= 0 and fit in memory, got %zd, %zd",
                     rows, n);
        return -1;
    }
    return 0;
}

/* ---- scan ---- */

HK_CLONES static void
scan_row(const float *x, Py_ssize_t n, double *lo, double *hi, int64_t *zeros, int64_t *nan,
         int64_t *posinf, int64_t *neginf)
{
    /* fast pass: min/max ignoring NaN (comparisons are false), zeros, and how many values are
       not finite (|v| <= FLT_MAX is false for NaN and +-Inf) */
    float mn = INFINITY, mx = -INFINITY;
    int64_t z = 0, bad = 0;
    Py_ssize_t i = 0;
#if HK_VECTORS
    /* gcc does not vectorize a float min/max without -ffinite-math-only: four lanes by hand
       (a NaN compares false and is never taken); lane counters are flushed every 2**20 */
    const v4f maxf = {FLT_MAX, FLT_MAX, FLT_MAX, FLT_MAX}, zero = {0, 0, 0, 0};
    const v4si sign = {INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX};
    v4f vmn = {INFINITY, INFINITY, INFINITY, INFINITY}, vmx = -vmn;
    while (n - i >= 4) {
        Py_ssize_t stop = i + ((Py_ssize_t)1 << 20);
        if (stop > n - 3)
            stop = n - 3;
        v4si vz = {0, 0, 0, 0}, vbad = {0, 0, 0, 0};
        for (; i < stop; i += 4) {
            v4f v;
            memcpy(&v, x + i, sizeof v);
            v4si lt = (v4si)(v < vmn), gt = (v4si)(v > vmx);
            vmn = (v4f)(((v4si)v & lt) | ((v4si)vmn & ~lt));
            vmx = (v4f)(((v4si)v & gt) | ((v4si)vmx & ~gt));
            vz -= (v4si)(v == zero);
            vbad += (v4si)((v4f)((v4si)v & sign) <= maxf) + 1; /* 0 if finite, 1 if not */
        }
        z += (int64_t)vz[0] + vz[1] + vz[2] + vz[3];
        bad += (int64_t)vbad[0] + vbad[1] + vbad[2] + vbad[3];
    }
    for (int k = 0; k < 4; k++) {
        mn = vmn[k] < mn ? vmn[k] : mn;
        mx = vmx[k] > mx ? vmx[k] : mx;
    }
#endif
    for (; i < n; i++) {
        float v = x[i];
        mn = v < mn ? v : mn;
        mx = v > mx ? v : mx;
        z += v == 0.0f;
        bad += !(fabsf(v) <= FLT_MAX);
    }
    int64_t nn = 0, pi = 0, ni = 0;
    if (bad) {
        mn = INFINITY;
        mx = -INFINITY;
        for (Py_ssize_t i = 0; i < n; i++) {
            float v = x[i];
            if (v != v)
                nn++;
            else if (v == INFINITY)
                pi++;
            else if (v == -INFINITY)
                ni++;
            else {
                mn = v < mn ? v : mn;
                mx = v > mx ? v : mx;
            }
        }
    }
    *lo = mn;
    *hi = mx;
    *zeros = z;
    *nan = nn;
    *posinf = pi;
    *neginf = ni;
}

static PyObject *
hk_scan(PyObject *self, PyObject *args)
{
    PyObject *ox, *olo, *ohi, *oz, *on, *op, *om;
    Py_ssize_t rows, n;
    if (!PyArg_ParseTuple(args, "OnnOOOOOO:scan", &ox, &rows, &n, &olo, &ohi, &oz, &on, &op, &om))
        return NULL;
    if (check_shape(rows, n) < 0)
        return NULL;
    Py_buffer bx, blo, bhi, bz, bn, bp, bm;
    if (get_buffer(ox, &bx, "x", "f", 4, rows * n, 0) < 0)
        return NULL;
    if (get_buffer(olo, &blo, "lo", "d", 8, rows, 1) < 0)
        goto e0;
    if (get_buffer(ohi, &bhi, "hi", "d", 8, rows, 1) < 0)
        goto e1;
    if (get_buffer(oz, &bz, "zeros", I64, 8, rows, 1) < 0)
        goto e2;
    if (get_buffer(on, &bn, "nan", I64, 8, rows, 1) < 0)
        goto e3;
    if (get_buffer(op, &bp, "posinf", I64, 8, rows, 1) < 0)
        goto e4;
    if (get_buffer(om, &bm, "neginf", I64, 8, rows, 1) < 0)
        goto e5;
    {
        const float *x = (const float *)bx.buf;
        double *lo = (double *)blo.buf, *hi = (double *)bhi.buf;
        int64_t *z = (int64_t *)bz.buf, *nn = (int64_t *)bn.buf;
        int64_t *pi = (int64_t *)bp.buf, *ni = (int64_t *)bm.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t r = 0; r < rows; r++)
            scan_row(x + r * n, n, lo + r, hi + r, z + r, nn + r, pi + r, ni + r);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&bm);
    PyBuffer_Release(&bp);
    PyBuffer_Release(&bn);
    PyBuffer_Release(&bz);
    PyBuffer_Release(&bhi);
    PyBuffer_Release(&blo);
    PyBuffer_Release(&bx);
    Py_RETURN_NONE;
e5:
    PyBuffer_Release(&bp);
e4:
    PyBuffer_Release(&bn);
e3:
    PyBuffer_Release(&bz);
e2:
    PyBuffer_Release(&bhi);
e1:
    PyBuffer_Release(&blo);
e0:
    PyBuffer_Release(&bx);
    return NULL;
}

/* ---- bin ---- */

/* numpy.searchsorted(edges, v, side="right"), and a value equal to the last edge in the last
   bin: 0 = underflow, i + 1 = bin i, bins + 1 = overflow */
static Py_ssize_t
exact_bucket(double v, const double *edges, Py_ssize_t bins)
{
    Py_ssize_t a = 0, b = bins + 1;
    while (a < b) {
        Py_ssize_t m = a + (b - a) / 2;
        if (edges[m] <= v)
            a = m + 1;
        else
            b = m;
    }
    if (a == bins + 1 && v == edges[bins])
        a = bins;
    return a;
}

typedef struct {
    double count, mean, m2;
} Moments;

static void
moments_add(Moments *acc, double count, double shift, double s1, double s2)
{
    if (count <= 0)
        return;
    double mean_b = shift + s1 / count;
    double m2_b = s2 - s1 * (s1 / count);
    if (m2_b < 0)
        m2_b = 0;
    if (acc->count == 0) {
        acc->count = count;
        acc->mean = mean_b;
        acc->m2 = m2_b;
        return;
    }
    double total = acc->count + count;
    double delta = mean_b - acc->mean;
    acc->mean += delta * (count / total);
    acc->m2 += m2_b + delta * delta * (acc->count * (count / total));
    acc->count = total;
}

/* one row with only finite values */
HK_CLONES static void
bin_clean(const float *x, Py_ssize_t n, Py_ssize_t bins, float start, float factor, float near,
          const double *edges, uint32_t *sub, int64_t *counts, Moments *mom)
{
    const Py_ssize_t width = bins + 2;
    const float low = -1.5f, high = (float)bins + 1.5f;
    const int32_t top = (int32_t)bins;
    int32_t idx[BLOCK];
    memset(sub, 0, sizeof(uint32_t) * 4 * (size_t)width);
    Py_ssize_t since_flush = 0;
    for (Py_ssize_t b0 = 0; b0 < n; b0 += BLOCK) {
        const Py_ssize_t len = n - b0 < BLOCK ? n - b0 : BLOCK;
        const float *xb = x + b0;
        uint32_t any = 0;
        for (Py_ssize_t i = 0; i < len; i++) {
            float p = (xb[i] - start) * factor;
            p = p >= low ? p : low; /* a NaN position (never from a safe row) to underflow */
            p = p <= high ? p : high;
            int32_t t = (int32_t)p; /* truncation; floor below */
            float tf = (float)t;
            int32_t fl = t - (tf > p);
            float fr = fabsf((p - (float)fl) - 0.5f);
            int32_t h = -(int32_t)(fr > near); /* all ones for a value near an edge */
            fl = fl < -1 ? -1 : fl;
            fl = fl > top ? top : fl;
            idx[i] = (fl + 1) | (h & INT32_MIN); /* the sign bit marks it */
            any |= (uint32_t)h;
        }
        if (any) {
            for (Py_ssize_t i = 0; i < len; i++)
                if (idx[i] < 0)
                    idx[i] = (int32_t)exact_bucket((double)xb[i], edges, bins);
        }
        Py_ssize_t i = 0;
        for (; i + 4 <= len; i += 4) {
            sub[idx[i]]++;
            sub[width + idx[i + 1]]++;
            sub[2 * width + idx[i + 2]]++;
            sub[3 * width + idx[i + 3]]++;
        }
        for (; i < len; i++)
            sub[idx[i]]++;
        /* sums of deviations from the block's first value (two accumulators each) */
        const double shift = (double)xb[0];
        double s1a = 0, s1b = 0, s2a = 0, s2b = 0;
        i = 0;
#if HK_VECTORS
        {
            const v2d vs = {shift, shift};
            v2d a1 = {0, 0}, b1 = {0, 0}, a2 = {0, 0}, b2 = {0, 0};
            for (; i + 4 <= len; i += 4) {
                v2f f0, f1;
                memcpy(&f0, xb + i, sizeof f0);
                memcpy(&f1, xb + i + 2, sizeof f1);
                v2d d0 = __builtin_convertvector(f0, v2d) - vs;
                v2d d1 = __builtin_convertvector(f1, v2d) - vs;
                a1 += d0;
                b1 += d1;
                a2 += d0 * d0;
                b2 += d1 * d1;
            }
            s1a = (a1[0] + b1[0]) + (a1[1] + b1[1]);
            s2a = (a2[0] + b2[0]) + (a2[1] + b2[1]);
        }
#endif
        for (; i + 2 <= len; i += 2) {
            double d0 = (double)xb[i] - shift, d1 = (double)xb[i + 1] - shift;
            s1a += d0;
            s1b += d1;
            s2a += d0 * d0;
            s2b += d1 * d1;
        }
        for (; i < len; i++) {
            double d = (double)xb[i] - shift;
            s1a += d;
            s2a += d * d;
        }
        moments_add(mom, (double)len, shift, s1a + s1b, s2a + s2b);
        since_flush += len;
        if (since_flush > ((Py_ssize_t)1 << 30)) { /* uint32 counters stay below 2**31 */
            for (Py_ssize_t k = 0; k < 4 * width; k++) {
                counts[k % width] += sub[k];
                sub[k] = 0;
            }
            since_flush = 0;
        }
    }
    for (Py_ssize_t k = 0; k < width; k++)
        counts[k] += (int64_t)sub[k] + sub[width + k] + sub[2 * width + k] + sub[3 * width + k];
}

/* one row holding NaN or +-Inf: those are skipped (not counted, not in the moments) */
static void
bin_dirty(const float *x, Py_ssize_t n, Py_ssize_t bins, float start, float factor, float near,
          const double *edges, int64_t *counts, Moments *mom)
{
    const float low = -1.5f, high = (float)bins + 1.5f;
    const int32_t top = (int32_t)bins;
    for (Py_ssize_t b0 = 0; b0 < n; b0 += BLOCK) {
        const Py_ssize_t len = n - b0 < BLOCK ? n - b0 : BLOCK;
        const float *xb = x + b0;
        double shift = 0, s1 = 0, s2 = 0, got = 0;
        for (Py_ssize_t i = 0; i < len; i++) {
            float v = xb[i];
            if (!(fabsf(v) <= FLT_MAX))
                continue;
            float p = (v - start) * factor;
            p = p >= low ? p : low; /* a NaN position (never from a safe row) to underflow */
            p = p <= high ? p : high;
            int32_t t = (int32_t)p;
            int32_t fl = t - ((float)t > p);
            float fr = fabsf((p - (float)fl) - 0.5f);
            Py_ssize_t bucket;
            if (fr > near)
                bucket = exact_bucket((double)v, edges, bins);
            else {
                fl = fl < -1 ? -1 : fl;
                fl = fl > top ? top : fl;
                bucket = fl + 1;
            }
            counts[bucket]++;
            if (got == 0)
                shift = (double)v;
            double d = (double)v - shift;
            s1 += d;
            s2 += d * d;
            got += 1;
        }
        moments_add(mom, got, shift, s1, s2);
    }
}

static PyObject *
hk_bin(PyObject *self, PyObject *args)
{
    PyObject *ox, *osafe, *ostart, *ofactor, *onear, *oedges, *ocounts, *omean, *ostd;
    Py_ssize_t rows, n, bins;
    if (!PyArg_ParseTuple(args, "OnnnOOOOOOOO:bin", &ox, &rows, &n, &bins, &osafe, &ostart,
                          &ofactor, &onear, &oedges, &ocounts, &omean, &ostd))
        return NULL;
    if (check_shape(rows, n) < 0)
        return NULL;
    if (bins < 1 || bins > MAX_BINS) {
        PyErr_Format(PyExc_ValueError, "bins must be in [1, %d], got %zd", MAX_BINS, bins);
        return NULL;
    }
    if (rows > PY_SSIZE_T_MAX / 8 / (bins + 2)) {
        PyErr_SetString(PyExc_ValueError, "rows * (bins + 2) is too large");
        return NULL;
    }
    Py_buffer bx, bs, bst, bf, bn, be, bc, bmean, bstd;
    if (get_buffer(ox, &bx, "x", "f", 4, rows * n, 0) < 0)
        return NULL;
    if (get_buffer(osafe, &bs, "safe", "?", 1, rows, 0) < 0)
        goto e0;
    if (get_buffer(ostart, &bst, "start", "f", 4, rows, 0) < 0)
        goto e1;
    if (get_buffer(ofactor, &bf, "factor", "f", 4, rows, 0) < 0)
        goto e2;
    if (get_buffer(onear, &bn, "near", "f", 4, rows, 0) < 0)
        goto e3;
    if (get_buffer(oedges, &be, "edges", "d", 8, rows * (bins + 1), 0) < 0)
        goto e4;
    if (get_buffer(ocounts, &bc, "counts", I64, 8, rows * (bins + 2), 1) < 0)
        goto e5;
    if (get_buffer(omean, &bmean, "mean", "d", 8, rows, 1) < 0)
        goto e6;
    if (get_buffer(ostd, &bstd, "std", "d", 8, rows, 1) < 0)
        goto e7;
    {
        uint32_t *sub = PyMem_Malloc(sizeof(uint32_t) * 4 * (size_t)(bins + 2));
        if (sub == NULL) {
            PyErr_NoMemory();
            goto e8;
        }
        const float *x = (const float *)bx.buf;
        const unsigned char *safe = (const unsigned char *)bs.buf;
        const float *start = (const float *)bst.buf, *factor = (const float *)bf.buf;
        const float *near = (const float *)bn.buf;
        const double *edges = (const double *)be.buf;
        int64_t *counts = (int64_t *)bc.buf;
        double *mean = (double *)bmean.buf, *std = (double *)bstd.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t r = 0; r < rows; r++) {
            if (!safe[r])
                continue;
            const float *row = x + r * n;
            int64_t *c = counts + r * (bins + 2);
            const double *e = edges + r * (bins + 1);
            Moments mom = {0, 0, 0};
            int clean = 1;
            for (Py_ssize_t i = 0; i < n; i++)
                clean &= fabsf(row[i]) <= FLT_MAX;
            memset(c, 0, sizeof(int64_t) * (size_t)(bins + 2));
            if (clean)
                bin_clean(row, n, bins, start[r], factor[r], near[r], e, sub, c, &mom);
            else
                bin_dirty(row, n, bins, start[r], factor[r], near[r], e, c, &mom);
            mean[r] = mom.count > 0 ? mom.mean : NAN;
            std[r] = mom.count > 0 ? sqrt(mom.m2 / mom.count) : NAN;
        }
        Py_END_ALLOW_THREADS
        PyMem_Free(sub);
    }
    PyBuffer_Release(&bstd);
    PyBuffer_Release(&bmean);
    PyBuffer_Release(&bc);
    PyBuffer_Release(&be);
    PyBuffer_Release(&bn);
    PyBuffer_Release(&bf);
    PyBuffer_Release(&bst);
    PyBuffer_Release(&bs);
    PyBuffer_Release(&bx);
    Py_RETURN_NONE;
e8:
    PyBuffer_Release(&bstd);
e7:
    PyBuffer_Release(&bmean);
e6:
    PyBuffer_Release(&bc);
e5:
    PyBuffer_Release(&be);
e4:
    PyBuffer_Release(&bn);
e3:
    PyBuffer_Release(&bf);
e2:
    PyBuffer_Release(&bst);
e1:
    PyBuffer_Release(&bs);
e0:
    PyBuffer_Release(&bx);
    return NULL;
}

static PyMethodDef methods[] = {
    {"scan", hk_scan, METH_VARARGS,
     "scan(x, rows, n, lo, hi, zeros, nan, posinf, neginf): per-row finite min/max and counts"},
    {"bin", hk_bin, METH_VARARGS,
     "bin(x, rows, n, bins, safe, start, factor, near, edges, counts, mean, std): linear bins"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_histkernel",
    "C kernel for linear-bin histograms of float32 rows (see _histogram_cpu.py).", -1, methods,
};

PyMODINIT_FUNC
PyInit__histkernel(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "API", API_VERSION) < 0 ||
        PyModule_AddIntConstant(m, "BUILT_FOR", PY_VERSION_HEX >> 16) < 0 ||
        PyModule_AddIntConstant(m, "MAX_BINS", MAX_BINS) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
