//! How close a computed tensor is to a reference, in the terms that float32 rounding bounds.
//!
//! Two float32 computations of one function that sum in different orders (another BLAS or oneDNN kernel,
//! thread count, vendor or instruction set) differ by rounding proportional to the magnitudes summed, not
//! to each output element: an element that is a small difference of large terms can be off by far more than
//! its own ulp. So a result is compared with its reference as the largest absolute difference over the
//! reference's largest magnitude, the *normalised error*. Each chained float32 reduction of length `K`
//! contributes about `sqrt(K) * u` to it (`u` = [`UNIT_ROUNDOFF`]), whatever the machine, while a wrong
//! weight moves it by orders of magnitude more; the tests derive their bounds from that.

use tch::{Kind, Tensor};

/// float32's unit roundoff, 2^-24: the largest relative error of one rounding.
pub const UNIT_ROUNDOFF: f64 = 5.960_464_477_539_063e-8;

/// How far a tensor is from a reference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Deviation {
    /// Largest absolute difference between the two.
    pub max_abs: f64,
    /// Largest magnitude of the reference.
    pub scale: f64,
}

impl Deviation {
    /// `got` against `want`, which must have the same shape; both are compared in float64.
    pub fn between(got: &Tensor, want: &Tensor) -> Self {
        assert_eq!(got.size(), want.size(), "shapes differ");
        let (got, want) = (got.to_kind(Kind::Double), want.to_kind(Kind::Double));
        let max = |t: Tensor| if t.numel() == 0 { 0.0 } else { t.abs().max().double_value(&[]) };
        Self { max_abs: max(&got - &want), scale: max(want) }
    }

    /// `max_abs / scale`; a reference of zeros makes any difference infinitely large.
    pub fn normalised(&self) -> f64 {
        if self.max_abs == 0.0 {
            0.0
        } else if self.scale == 0.0 {
            f64::INFINITY
        } else {
            self.max_abs / self.scale
        }
    }
}

/// Panics, naming `what` and both figures, unless `got`'s normalised error against `want` is at most `bound`
/// (NaN anywhere fails); returns the deviation for reports.
pub fn assert_close(got: &Tensor, want: &Tensor, bound: f64, what: &str) -> Deviation {
    let deviation = Deviation::between(got, want);
    let error = deviation.normalised();
    assert!(
        error <= bound,
        "{what}: normalised error {error:.3e} (max abs {:.3e} on values up to {:.3e}) over the bound {bound:.1e}",
        deviation.max_abs,
        deviation.scale
    );
    deviation
}

/// `t` with every element moved to a neighbouring value of its type (one ulp, a relative change between u
/// and 2u), up or down in a fixed pattern that looks random (the signs of sines of multiples of the golden
/// angle): the size of change that another kernel's rounding makes to a computation, for showing that a bound
/// tolerates it.
pub fn nudge_by_one_ulp(t: &Tensor) -> Tensor {
    let index = Tensor::arange(t.numel() as i64, (Kind::Double, t.device())).reshape(t.size());
    let towards = ((index * 2.399_963_229_728_653 + 0.5).sin().sign() * f64::INFINITY).to_kind(t.kind());
    t.nextafter(&towards)
}

/// The largest of named errors (a NaN counts as the largest), for naming the worst module or stage of a
/// network in a parity report; `("", 0.0)` when there are none.
pub fn worst(errors: impl IntoIterator<Item = (String, f64)>) -> (String, f64) {
    errors.into_iter().fold((String::new(), 0.0), |a, b| if b.1 > a.1 || b.1.is_nan() { b } else { a })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalised_error_is_relative_to_the_reference_magnitude() {
        let want = Tensor::from_slice(&[100.0f32, -0.001, 3.0]);
        let got = Tensor::from_slice(&[100.0f32, 0.001, 3.0]);
        let d = Deviation::between(&got, &want);
        assert!((d.max_abs - 0.002).abs() < 1e-9 && d.scale == 100.0, "{d:?}");
        assert!((d.normalised() - 2e-5).abs() < 1e-10);
        assert_eq!(Deviation::between(&want, &want).normalised(), 0.0);
        let zeros = Tensor::zeros([2], (Kind::Float, tch::Device::Cpu));
        assert_eq!(
            Deviation::between(&Tensor::ones([2], (Kind::Float, tch::Device::Cpu)), &zeros).normalised(),
            f64::INFINITY
        );
    }

    #[test]
    fn a_nudge_moves_every_element_by_about_one_ulp_both_ways() {
        let t = Tensor::from_slice(&[1.0f32, 1.5, -3.0, 0.75, 2.0, 1.25]);
        let nudged = nudge_by_one_ulp(&t);
        let relative = Vec::<f64>::try_from((&nudged - &t).to_kind(Kind::Double) / t.to_kind(Kind::Double)).unwrap();
        assert!(relative.iter().all(|r| r.abs() > 0.0 && r.abs() <= 2.0 * UNIT_ROUNDOFF), "{relative:?}");
        assert!(relative.iter().any(|&r| r > 0.0) && relative.iter().any(|&r| r < 0.0), "{relative:?}");
    }

    #[test]
    fn the_worst_error_is_the_largest_and_a_nan_stays_worst() {
        let named = |v: &[f64]| v.iter().enumerate().map(|(i, &e)| (i.to_string(), e)).collect::<Vec<_>>();
        assert_eq!(worst(named(&[1e-7, 3e-6, 2e-6])), ("1".to_string(), 3e-6));
        assert!(worst(named(&[1e-7, f64::NAN, 5.0])).1.is_nan());
        assert_eq!(worst(Vec::new()), (String::new(), 0.0));
    }

    #[test]
    #[should_panic(expected = "over the bound")]
    fn a_nan_fails() {
        let want = Tensor::from_slice(&[1.0f32, 2.0]);
        assert_close(&Tensor::from_slice(&[1.0f32, f32::NAN]), &want, 1.0, "nan");
    }

    #[test]
    #[should_panic(expected = "shapes differ")]
    fn shapes_must_agree() {
        Deviation::between(
            &Tensor::zeros([2], (Kind::Float, tch::Device::Cpu)),
            &Tensor::zeros([3], (Kind::Float, tch::Device::Cpu)),
        );
    }
}
