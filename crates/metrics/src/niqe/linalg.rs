//! The pseudo-inverse NIQE's distance needs (`np.linalg.pinv`), for the symmetric matrices it is used on.

/// Moore-Penrose pseudo-inverse of the symmetric `n x n` row-major matrix `a`: eigen-decomposition by cyclic
/// Jacobi rotations, eigenvalues below `1e-15 * max |eigenvalue|` treated as zero (numpy's default `rcond`; for a
/// symmetric matrix the singular values are the absolute eigenvalues).
pub(super) fn symmetric_pinv(a: &[f64], n: usize) -> Vec<f64> {
    let mut a = a.to_vec();
    let mut v: Vec<f64> = (0..n * n).map(|i| if i / n == i % n { 1.0 } else { 0.0 }).collect();
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|p| (0..n).filter(move |&q| q != p).map(move |q| (p, q)))
            .map(|(p, q)| a[p * n + q] * a[p * n + q])
            .sum();
        let diag: f64 = (0..n).map(|p| a[p * n + p] * a[p * n + p]).sum();
        if off <= f64::EPSILON * f64::EPSILON * diag {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq == 0.0 {
                    continue;
                }
                // The rotation that zeroes a[p][q] (Numerical Recipes, `jacobi`).
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    let eigen: Vec<f64> = (0..n).map(|p| a[p * n + p]).collect();
    let cutoff = 1e-15 * eigen.iter().fold(0.0f64, |m, e| m.max(e.abs()));
    let mut inverse = vec![0.0; n * n];
    for (k, &e) in eigen.iter().enumerate() {
        if e.abs() <= cutoff {
            continue;
        }
        for i in 0..n {
            for j in 0..n {
                inverse[i * n + j] += v[i * n + k] * v[j * n + k] / e;
            }
        }
    }
    inverse
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
        (0..n * n).map(|ij| (0..n).map(|k| a[ij / n * n + k] * b[k * n + ij % n]).sum()).collect()
    }

    #[test]
    fn inverts_a_full_rank_symmetric_matrix() {
        let n = 5;
        // B^T B + I with a fixed B: symmetric positive definite.
        let b: Vec<f64> = (0..n * n).map(|i| ((i * 7 + 3) % 11) as f64 - 5.0).collect();
        let bt: Vec<f64> = (0..n * n).map(|i| b[i % n * n + i / n]).collect();
        let mut a = matmul(&bt, &b, n);
        (0..n).for_each(|i| a[i * n + i] += 1.0);
        let product = matmul(&a, &symmetric_pinv(&a, n), n);
        for (i, v) in product.iter().enumerate() {
            let expected = if i / n == i % n { 1.0 } else { 0.0 };
            assert!((v - expected).abs() < 1e-10, "{i}: {v}");
        }
    }

    #[test]
    fn pseudo_inverts_a_singular_matrix() {
        // [[1, 1], [1, 1]] has pseudo-inverse [[1, 1], [1, 1]] / 4.
        let inverse = symmetric_pinv(&[1.0, 1.0, 1.0, 1.0], 2);
        for v in inverse {
            assert!((v - 0.25).abs() < 1e-14, "{v}");
        }
    }
}
