//! Mixed precision: float32 weights, convolutions and matrix products in bfloat16.
//!
//! This is torch's autocast done by hand, because tch can switch autocast on but cannot choose its dtype (it
//! is float16 on CUDA, and bfloat16 is what training wants: float32's range, no loss scaling). Inside
//! [`with_compute_kind`], every weight layer (`sana_sr_model::layers::Layer`) casts its input, weight and bias
//! to the compute kind; the casts are differentiable, so gradients reach the float32 weights as float32.
//! Norms and the linear-attention sums run in float32 as they do under autocast.

use std::cell::Cell;

use tch::Kind;

thread_local! {
    static COMPUTE_KIND: Cell<Option<Kind>> = const { Cell::new(None) };
}

/// The kind weight layers compute in on this thread, if mixed precision is on.
pub fn compute_kind() -> Option<Kind> {
    COMPUTE_KIND.with(Cell::get)
}

/// Runs `f` with weight layers computing in `kind` (`None`: in their weights' own kind), then restores the
/// previous setting, also when `f` panics.
pub fn with_compute_kind<T>(kind: Option<Kind>, f: impl FnOnce() -> T) -> T {
    struct Restore(Option<Kind>);
    impl Drop for Restore {
        fn drop(&mut self) {
            COMPUTE_KIND.with(|k| k.set(self.0));
        }
    }
    let _restore = Restore(COMPUTE_KIND.with(|k| k.replace(kind)));
    f()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_setting_nests_and_is_restored_after_a_panic() {
        assert_eq!(compute_kind(), None);
        with_compute_kind(Some(Kind::BFloat16), || {
            assert_eq!(compute_kind(), Some(Kind::BFloat16));
            with_compute_kind(None, || assert_eq!(compute_kind(), None));
            assert_eq!(compute_kind(), Some(Kind::BFloat16));
        });
        assert_eq!(compute_kind(), None);
        let caught = std::panic::catch_unwind(|| with_compute_kind(Some(Kind::Half), || panic!("inside")));
        assert!(caught.is_err());
        assert_eq!(compute_kind(), None);
        std::thread::spawn(|| with_compute_kind(Some(Kind::Half), || ())).join().unwrap();
        assert_eq!(compute_kind(), None, "the setting is per thread");
    }
}
