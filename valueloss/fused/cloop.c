/* The fused pass of valueloss.fused as one plain C loop, for small CPU batches (see cloop.py).

   Included once per floating type by valueloss/fused/cloop.py, with T (float or double), I (a count type
   of T's width: int32_t or double) and NAME defined. Every value is
   the compiled pass's operation in T, so u and the counts are the same bits. Build with
   -ffp-contract=off (no fused multiply-add) and without -ffast-math; -fno-trapping-math only lets the
   compiler evaluate both sides of a select (results are unchanged), which the vectoriser needs.

   Per token (verl's per-token loss and the unit gradient u, see valueloss.fused.passes._per_token):
     lo, hi   = o - eps, o + eps
     v_clip   = maximum(minimum(v, hi), lo)     NaN-propagating; equal operands give the second,
                                                 as torch's vectorised minimum / maximum do
     L_u, L_c = (v - R)^2, (v_clip - R)^2
   Every condition is a select on one comparison, the form compilers turn into vector blends.
   Outputs: u, per-row sum(L_max * mask) in double and real-token counts (NULL: not written), and
   totals[5] = {sum of L_max over real tokens, clipped tokens, real tokens, tokens that need the exact
   backward, mask values other than 0 / 1}. */

#include <stdint.h>

void NAME(const T *restrict v, const T *restrict ret, const T *restrict old, const T *restrict mask, T eps,
          int64_t rows, int64_t cols, T *restrict u, double *restrict row_sums, int32_t *restrict row_tokens,
          double *restrict totals) {
    const T zero = 0, one = 1, two = 2;
    const T huge = (T)0x1p120, tiny = (T)0x1p-59;
    double loss_sum = 0;
    int64_t clipped = 0, tokens = 0, care = 0, bad = 0;
    for (int64_t i = 0; i < rows; ++i) {
        const T *vr = v + i * cols, *rr = ret + i * cols, *orow = old + i * cols, *mr = mask + i * cols;
        T *ur = u + i * cols;
        double row_sum = 0;
        I row_real = 0, row_clipped = 0, row_care = 0, row_bad = 0;
        /* the sums may be reordered (the compiled pass reorders them too); no other arithmetic is */
#pragma omp simd reduction(+ : loss_sum, row_sum, row_real, row_clipped, row_care, row_bad)
        for (int64_t j = 0; j < cols; ++j) {
            const T vj = vr[j], rj = rr[j], mj = mr[j];
            const T lo = orow[j] - eps, hi = orow[j] + eps;
            T inner = vj < hi ? vj : hi; /* minimum: NaN in hi falls through, NaN in v is kept */
            inner = vj != vj ? vj : inner;
            T v_clip = inner > lo ? inner : lo;
            v_clip = inner != inner ? inner : v_clip;
            const T d_u = vj - rj, d_c = v_clip - rj;
            const T loss_u = d_u * d_u, loss_c = d_c * d_c;
            T loss_max = loss_u > loss_c ? loss_u : loss_c;
            loss_max = loss_u != loss_u ? loss_u : loss_max;
            const T two_d = two * d_u;
            /* real tokens, upstream weight one: max's tie rule, then min / max of the clip */
            const T off_band = d_u == zero ? zero : d_u;
            T tie = vj > lo ? two_d : off_band;
            tie = vj < hi ? tie : off_band;
            T u_real = loss_u < loss_c ? zero : tie;
            u_real = loss_u > loss_c ? two_d : u_real;
            /* padding, upstream weight +0: autograd still multiplies 0 by 2d */
            T through = zero * (two * d_c);
            through = inner < lo ? zero : through;
            through = vj > hi ? zero : through;
            const T u_pad = zero * two_d + through;
            const T uj = mj != zero ? u_real : u_pad;
            ur[j] = uj;
            /* tokens the backward must recompute exactly: band edges, products near under/overflow */
            const T abs_u = uj < zero ? -uj : uj;
            I flag = (abs_u < tiny) ? 1 : 0;
            flag = uj == zero ? 0 : flag;
            flag = loss_max <= huge ? flag : 1;
            flag = vj == lo ? 1 : flag;
            flag = vj == hi ? 1 : flag;
            const I real = mj != zero ? 1 : 0;
            row_care += mj != zero ? flag : 0;
            row_clipped += loss_c > loss_u ? real : 0;
            row_real += real;
            I odd = mj != one ? real : 0;
            row_bad += odd;
            loss_sum += mj != zero ? (double)loss_max : 0.0;
            row_sum += (double)(loss_max * mj);
        }
        if (row_sums) row_sums[i] = row_sum;
        if (row_tokens) row_tokens[i] = (int32_t)row_real;
        tokens += (int64_t)row_real;
        clipped += (int64_t)row_clipped;
        care += (int64_t)row_care;
        bad += (int64_t)row_bad;
    }
    totals[0] = loss_sum;
    totals[1] = (double)clipped;
    totals[2] = (double)tokens;
    totals[3] = (double)care;
    totals[4] = (double)bad;
}

/* The backward's in-place scale u <- w * u (autograd's product grad * (2 d), with w already rounded
   to T). torch's mul_ costs ~10 us more as the first operation inside a backward. */
void SCALE_NAME(T *restrict u, int64_t n, T w) {
    for (int64_t j = 0; j < n; ++j) u[j] = w * u[j];
}
