/* Fused CPU kernels for the multi-class margin losses (HEM, HEM+ and MM); the equations are in docs/losses-and-margins.md.
 *
 * Logits are addressed as (N, C, S) with element strides (sn, sc, ss): NCHW segmentation logits have
 * ss == 1 (the samples of one class are contiguous); (N, C) classification logits and channels-last
 * logits are passed as (1, C, N*S) with sc == 1 and ss == C. Work goes in blocks of up to BLOCK
 * consecutive samples of one image: a block is read from memory once, then re-read from cache class by
 * class, so the inner loops run over samples and vectorise. The backward recomputes the errors instead
 * of storing them.
 *
 * For a sample with true class l and margins mu: e_i = max(0, y_i - y_l + mu_i), e_l = 0 (on_target == 0:
 * the margin of the competing class i) or e_i = max(0, y_i - (y_l - mu_l)) (on_target == 1: the margin of
 * the true class, computed by lowering y_l once per sample so the class loops stay the same), and
 *   MM  (hard == 0): loss = (1/C) sum_i e_i;
 *   HEM (hard == 1): t = (1/C) sum_i e_i, loss = mean of the e_i >= t (0 when t == 0).
 * With per-class weights cw (NULL: none) a sample's loss, its share of the count a mean divides by and
 * its gradient are multiplied by cw[l], the weight of its true class; the threshold and selection are not.
 * Built without -ffast-math, so forward and backward recompute bit-identical errors and thresholds.
 */
#ifndef T
#include <stdint.h>

#define BLOCK 256
#define CAT(a, b) a##_##b
#define XCAT(a, b) CAT(a, b)
#define NAME(f) XCAT(f, SUFFIX)

/* The kernels below are written once and instantiated for float and double by including this file. */
#define T float
#define SUFFIX f32
#include __FILE__
#undef T
#undef SUFFIX
#define T double
#define SUFFIX f64
#include __FILE__

#else
/* Load a block's targets (-1 when ignored) and true-class logits, sum its errors and, for HEM, count
 * and sum the errors at or above the mean. Returns 0, or 1 + the position of a target out of range. */
static inline int64_t NAME(block_stats)(const T *x, int64_t sc, int64_t ss, int64_t C, int64_t len,
                                           const int64_t *target, int64_t ignore, const T *mu, int hard,
                                           int on_target, T *yl, int32_t *tb, T *thr, T *ksel, T *lsel) {
    for (int64_t j = 0; j < len; j++) {
        const int64_t t = target[j];
        if (t == ignore) {
            tb[j] = -1;
            yl[j] = 0;
        } else if (t < 0 || t >= C) {
            return j + 1;
        } else {
            tb[j] = (int32_t)t;
            yl[j] = on_target ? x[t * sc + j * ss] - mu[t] : x[t * sc + j * ss];
        }
        thr[j] = 0;
        ksel[j] = 0;
        lsel[j] = 0;
    }
    for (int64_t c = 0; c < C; c++) {
        const T *xc = x + c * sc;
        const T m = on_target ? (T)0 : mu[c];
        const int32_t ci = (int32_t)c;
        for (int64_t j = 0; j < len; j++) {
            const T e = xc[j * ss] - yl[j] + m;
            /* NaN errors are kept, so that NaN logits give a NaN loss as in cross-entropy */
            thr[j] += (((e > 0) | (e != e)) & (tb[j] != ci)) ? e : (T)0;
        }
    }
    for (int64_t j = 0; j < len; j++) thr[j] = tb[j] >= 0 ? thr[j] / (T)C : (T)0; /* as torch's mean */
    if (!hard) return 0;
    for (int64_t c = 0; c < C; c++) {
        const T *xc = x + c * sc;
        const T m = on_target ? (T)0 : mu[c];
        const int32_t ci = (int32_t)c;
        for (int64_t j = 0; j < len; j++) {
            const T e = xc[j * ss] - yl[j] + m;
            /* e >= thr implies e > 0 whenever the sample has a loss (thr > 0) */
            const T sel = (T)((e >= thr[j]) & (tb[j] != ci));
            ksel[j] += sel;
            lsel[j] += sel * e;
        }
    }
    return 0;
}

static inline int64_t NAME(forward_range)(const T *x, int64_t C, int64_t S, int64_t sn, int64_t sc,
                                             int64_t ss, const int64_t *target, int64_t ignore,
                                             const T *mu, const T *cw, int hard, int on_target, int64_t p0,
                                             int64_t p1, T *loss_out, double *total, double *count) {
    T yl[BLOCK], thr[BLOCK], ksel[BLOCK], lsel[BLOCK];
    int32_t tb[BLOCK];
    double sum = 0, cnt = 0;
    for (int64_t p = p0; p < p1;) {
        const int64_t n = p / S, s = p % S;
        int64_t len = S - s;
        if (len > p1 - p) len = p1 - p;
        if (len > BLOCK) len = BLOCK;
        const int64_t bad = NAME(block_stats)(x + n * sn + s * ss, sc, ss, C, len, target + p, ignore,
                                                 mu, hard, on_target, yl, tb, thr, ksel, lsel);
        if (bad) return p + bad;
        for (int64_t j = 0; j < len; j++) {
            /* thr is 0 (no error), positive, or NaN */
            const T l = hard ? (thr[j] > 0 ? lsel[j] / ksel[j] : thr[j]) : thr[j];
            const T wl = (cw && tb[j] >= 0) ? cw[tb[j]] : (T)1;
            const int counted = hard ? (l > 0) : (tb[j] >= 0);
            if (loss_out) loss_out[p + j] = cw ? wl * l : l;
            sum += cw ? wl * l : l;
            cnt += counted ? (double)wl : 0.0;
        }
        p += len;
    }
    *total = sum;
    *count = cnt;
    return 0;
}

static inline void NAME(backward_range)(const T *x, int64_t C, int64_t S, int64_t sn, int64_t sc,
                                           int64_t ss, const int64_t *target, int64_t ignore, const T *mu,
                                           const T *cw, int hard, int on_target, int64_t p0, int64_t p1,
                                           const T *w, int64_t w_step, T *grad) {
    T yl[BLOCK], thr[BLOCK], ksel[BLOCK], lsel[BLOCK], coef[BLOCK], gsum[BLOCK];
    int32_t tb[BLOCK];
    for (int64_t p = p0; p < p1;) {
        const int64_t n = p / S, s = p % S;
        int64_t len = S - s;
        if (len > p1 - p) len = p1 - p;
        if (len > BLOCK) len = BLOCK;
        const T *xb = x + n * sn + s * ss;
        T *gb = grad + n * sn + s * ss;
        NAME(block_stats)(xb, sc, ss, C, len, target + p, ignore, mu, hard, on_target, yl, tb, thr, ksel,
                          lsel);
        for (int64_t j = 0; j < len; j++) {
            const T wj = w[(p + j) * w_step] * ((cw && tb[j] >= 0) ? cw[tb[j]] : (T)1);
            /* HEM: each selected error gets w / K; MM: each positive error gets w / C (threshold 0) */
            coef[j] = hard ? (thr[j] > 0 ? wj / ksel[j] : (T)0) : (tb[j] >= 0 ? wj / (T)C : (T)0);
            if (!hard) thr[j] = 0;
            gsum[j] = 0;
        }
        for (int64_t c = 0; c < C; c++) {
            const T *xc = xb + c * sc;
            T *gc = gb + c * sc;
            const T m = on_target ? (T)0 : mu[c];
            const int32_t ci = (int32_t)c;
            for (int64_t j = 0; j < len; j++) {
                const T e = xc[j * ss] - yl[j] + m;
                const int sel = (e > 0) & (e >= thr[j]) & (tb[j] != ci);
                const T g = sel ? coef[j] : (T)0;
                gc[j * ss] = g;
                gsum[j] += g;
            }
        }
        for (int64_t j = 0; j < len; j++)
            if (tb[j] >= 0) gb[tb[j] * sc + j * ss] = -gsum[j];
        p += len;
    }
}

/* Per-sample losses over samples [p0, p1) of the flattened (N, S) grid, their sum and the count the
 * mean divides by (HEM: samples with loss > 0, the paper's; MM: valid samples), each times the sample's
 * class weight when cw is not NULL. loss_out (N*S) may be NULL.
 * Returns 0, or 1 + the flat position of the first target outside [0, C) that is not `ignore`. */
int64_t NAME(margin_forward)(const T *x, int64_t C, int64_t S, int64_t sn, int64_t sc, int64_t ss,
                                const int64_t *target, int64_t ignore, const T *mu, const T *cw, int hard,
                                int on_target, int64_t p0, int64_t p1, T *loss_out, double *total,
                                double *count) {
    if (ss == 1)
        return NAME(forward_range)(x, C, S, sn, sc, 1, target, ignore, mu, cw, hard, on_target, p0, p1,
                                      loss_out, total, count);
    return NAME(forward_range)(x, C, S, sn, sc, ss, target, ignore, mu, cw, hard, on_target, p0, p1,
                                  loss_out, total, count);
}

/* Gradient over samples [p0, p1): each sample's loss gradient times its weight w[p * w_step]
 * (w_step 0: one weight for all) and its class weight (cw, may be NULL). grad has the strides of x. */
void NAME(margin_backward)(const T *x, int64_t C, int64_t S, int64_t sn, int64_t sc, int64_t ss,
                              const int64_t *target, int64_t ignore, const T *mu, const T *cw, int hard,
                              int on_target, int64_t p0, int64_t p1, const T *w, int64_t w_step, T *grad) {
    if (ss == 1)
        NAME(backward_range)(x, C, S, sn, sc, 1, target, ignore, mu, cw, hard, on_target, p0, p1, w, w_step,
                             grad);
    else
        NAME(backward_range)(x, C, S, sn, sc, ss, target, ignore, mu, cw, hard, on_target, p0, p1, w,
                             w_step, grad);
}

#endif
