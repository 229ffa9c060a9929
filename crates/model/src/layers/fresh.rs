//! Elementwise steps that write over an intermediate result nothing else holds (a layer's fresh output) instead
//! of into a new buffer, while no gradient is recorded: the same values, one buffer fewer per step. In a
//! one-shot upscale every buffer beyond the heap's high-water mark is first touched page by page, and those page
//! faults cost more than the steps themselves. Where a gradient is recorded (training), or where the result
//! would not fit the operand's kind or shape, the step makes a new tensor as usual.
//!
//! Callers pass ownership of a tensor they made and did not share; a view or a shallow clone of something
//! else must not be passed.

use sana_sr_core::{Kind, Tensor};

/// Whether `a op= b` leaves in `a` what `a op b` returns: `a` has the result's kind (its own, or float32
/// beside a lower-precision operand, as type promotion gives) and `b` broadcasts to `a`'s shape.
fn in_place(a: &Tensor, b: &Tensor) -> bool {
    let kind = a.kind() == b.kind() || (a.kind() == Kind::Float && matches!(b.kind(), Kind::BFloat16 | Kind::Half));
    let (a_size, b_size) = (a.size(), b.size());
    let broadcasts =
        b_size.len() <= a_size.len() && b_size.iter().rev().zip(a_size.iter().rev()).all(|(&b, &a)| b == a || b == 1);
    !a.requires_grad() && !b.requires_grad() && kind && broadcasts
}

/// `a + b`.
pub fn add(a: Tensor, b: &Tensor) -> Tensor {
    binary(a, b, |a, b| a + b, |a, b| *a += b)
}

/// `a * b`.
pub fn mul(a: Tensor, b: &Tensor) -> Tensor {
    binary(a, b, |a, b| a * b, |a, b| *a *= b)
}

/// `a / b`.
pub fn div(a: Tensor, b: &Tensor) -> Tensor {
    binary(a, b, |a, b| a / b, |a, b| *a /= b)
}

/// `input + a * b`.
pub fn addcmul(a: Tensor, input: &Tensor, b: &Tensor) -> Tensor {
    if in_place(&a, input) && in_place(&a, b) {
        input.addcmul_out(&a, &a, b)
    } else {
        input.addcmul(&a, b)
    }
}

/// `silu(a)`.
pub fn silu(a: Tensor) -> Tensor {
    unary(a, Tensor::silu, Tensor::silu_)
}

/// `relu(a)`.
pub fn relu(a: Tensor) -> Tensor {
    unary(a, Tensor::relu, Tensor::relu_)
}

fn binary(
    mut a: Tensor,
    b: &Tensor,
    new: impl FnOnce(&Tensor, &Tensor) -> Tensor,
    over: impl FnOnce(&mut Tensor, &Tensor),
) -> Tensor {
    if in_place(&a, b) {
        over(&mut a, b);
        a
    } else {
        new(&a, b)
    }
}

fn unary(mut a: Tensor, new: fn(&Tensor) -> Tensor, over: fn(&mut Tensor) -> Tensor) -> Tensor {
    if a.requires_grad() {
        new(&a)
    } else {
        let _ = over(&mut a);
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sana_sr_core::Device;

    type Step = fn(Tensor, &Tensor) -> Tensor;

    fn randn(shape: &[i64], kind: Kind) -> Tensor {
        Tensor::randn(shape, (Kind::Float, Device::Cpu)).to_kind(kind)
    }

    #[test]
    fn in_place_steps_equal_the_out_of_place_ones_bit_for_bit() {
        for (a_kind, b_kind) in
            [(Kind::Float, Kind::Float), (Kind::Float, Kind::BFloat16), (Kind::BFloat16, Kind::BFloat16)]
        {
            let a = randn(&[2, 3, 4, 5], a_kind);
            let b = randn(&[4, 1], b_kind);
            let cases: [(Step, Tensor); 3] = [(add, &a + &b), (mul, &a * &b), (div, &a / &b)];
            for (step, want) in cases {
                let operand = a.copy();
                let data = operand.data_ptr();
                let got = step(operand, &b);
                assert_eq!(got.data_ptr(), data, "{a_kind:?} with {b_kind:?}: written in place");
                assert!(got.equal(&want), "{a_kind:?} with {b_kind:?}");
            }
        }
        let a = randn(&[3, 7], Kind::Float);
        for (step, want) in [(silu as fn(Tensor) -> Tensor, a.silu()), (relu, a.relu())] {
            let operand = a.copy();
            let data = operand.data_ptr();
            let got = step(operand);
            assert_eq!(got.data_ptr(), data);
            assert!(got.equal(&want));
        }
        let (input, b) = (randn(&[7], Kind::Float), randn(&[3, 1], Kind::Float));
        let operand = a.copy();
        let data = operand.data_ptr();
        let got = addcmul(operand, &input, &b);
        assert_eq!(got.data_ptr(), data);
        assert!(got.equal(&input.addcmul(&a, &b)));
    }

    #[test]
    fn results_of_another_kind_or_shape_and_recorded_gradients_get_new_tensors() {
        let a = randn(&[4, 1], Kind::BFloat16);
        // bfloat16 + float32 is float32; [4, 1] + [2, 4, 5] is [2, 4, 5]: neither fits `a`.
        for b in [randn(&[4, 1], Kind::Float), randn(&[2, 4, 5], Kind::BFloat16)] {
            let operand = a.copy();
            let data = operand.data_ptr();
            let got = add(operand, &b);
            assert_ne!(got.data_ptr(), data);
            assert!(got.equal(&(&a + &b)));
        }
        // With autograd on, the operands' values stay for the backward pass.
        let leaf = randn(&[3, 5], Kind::Float).set_requires_grad(true);
        let a = &leaf * 2.0;
        let b = randn(&[3, 5], Kind::Float);
        let got = mul(a.shallow_clone(), &b);
        assert_ne!(got.data_ptr(), a.data_ptr());
        got.sum(Kind::Float).backward();
        assert!(leaf.grad().equal(&(&b * 2.0)));
    }
}
