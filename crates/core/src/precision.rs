//! Mixed precision: float32 weights, convolutions and matrix products in bfloat16.
//!
//! This is torch's autocast done by hand, because tch can switch autocast on but cannot choose its dtype (it
//! is float16 on CUDA, and bfloat16 is what training wants: float32's range, no loss scaling). Inside
//! [`with_compute_kind`], every weight layer (`sana_sr_model::layers::Layer`) casts its input, weight and bias
//! to the compute kind; the casts are differentiable, so gradients reach the float32 weights as float32.
//! Norms and the linear-attention sums run in float32 as they do under autocast. Inference picks its
//! [`Precision`] the same way.

use std::cell::Cell;

use tch::{Device, Kind};

thread_local! {
    static COMPUTE_KIND: Cell<Option<Kind>> = const { Cell::new(None) };
    static CAST_IN_PLACE: Cell<bool> = const { Cell::new(false) };
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

/// Whether frozen weight layers convert their weights to the compute kind in place on this thread.
pub fn weights_cast_in_place() -> bool {
    CAST_IN_PLACE.with(Cell::get)
}

/// Runs `f` with frozen weight layers converting their weights to the compute kind in place, the float32
/// values freed, instead of keeping a cast copy beside them (which lets one loaded model serve any precision,
/// at the cost of holding both). For a model that will only ever run in one precision: afterwards its layers
/// can no longer run in float32. Restored as [`with_compute_kind`] is.
pub fn with_weights_cast_in_place<T>(f: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            CAST_IN_PLACE.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CAST_IN_PLACE.with(|c| c.replace(true)));
    f()
}

/// The precision inference runs in (`--precision`): float32, or weight layers in bfloat16 or float16 (norms,
/// the linear-attention sums and the flow-matching step staying in float32, as [`with_compute_kind`] does).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// bfloat16 where the hardware makes it faster ([`native_bf16`]), float32 elsewhere.
    Auto,
    #[default]
    F32,
    Bf16,
    F16,
}

impl Precision {
    pub const NAMES: [&'static str; 4] = ["auto", "f32", "bf16", "f16"];

    /// The compute kind on `device`: `None` is float32.
    pub fn compute_kind(self, device: Device) -> Option<Kind> {
        match self {
            Self::F32 => None,
            Self::Bf16 => Some(Kind::BFloat16),
            Self::F16 => Some(Kind::Half),
            Self::Auto => native_bf16(device).then_some(Kind::BFloat16),
        }
    }

    /// What `auto` and the others come to on `device`, by name.
    pub fn resolved_name(self, device: Device) -> &'static str {
        match self.compute_kind(device) {
            None => "f32",
            Some(Kind::Half) => "f16",
            Some(_) => "bf16",
        }
    }
}

impl std::str::FromStr for Precision {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "auto" => Ok(Self::Auto),
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            "f16" => Ok(Self::F16),
            _ => Err(format!("`{name}` is not a precision (one of {})", Self::NAMES.join(", "))),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::F32 => "f32",
            Self::Bf16 => "bf16",
            Self::F16 => "f16",
        })
    }
}

/// Whether bfloat16 is faster than float32 on `device`: a CUDA device (bfloat16 tensor cores since Ampere;
/// older GPUs emulate it), a CPU with AMX, whose tile units oneDNN's bfloat16 kernels use, or an AMD CPU with
/// AVX-512 BF16 (Zen 4 and later). Read from the kernel's CPU description: Linux only, elsewhere `false`.
/// AVX-512 BF16 alone is not enough on Intel: on such a Xeon without AMX, bfloat16 was measured slower than
/// float32 (the 600 M DiT at 16×16 latents: 2.35 s against 1.93 s), with AMX twice as fast; on an AMD EPYC with
/// it, 1.85 times as fast (docs/benchmarks.md, "Precision").
pub fn native_bf16(device: Device) -> bool {
    match device {
        Device::Cuda(_) => true,
        Device::Cpu => cpu_has_fast_bf16(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default()),
        _ => false,
    }
}

/// [`native_bf16`] for the CPU that `cpuinfo` (the text of /proc/cpuinfo) describes.
fn cpu_has_fast_bf16(cpuinfo: &str) -> bool {
    let field = |name: &str| {
        let value = cpuinfo.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then_some(value)
        });
        value.unwrap_or_default().split_whitespace().collect::<Vec<_>>()
    };
    let flags = field("flags");
    flags.contains(&"amx_bf16") || (field("vendor_id") == ["AuthenticAMD"] && flags.contains(&"avx512_bf16"))
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

    #[test]
    fn precisions_read_their_names_and_resolve_on_a_device() {
        for name in Precision::NAMES {
            assert_eq!(name.parse::<Precision>().unwrap().to_string(), name);
        }
        assert!("fp16".parse::<Precision>().unwrap_err().contains("auto, f32, bf16, f16"));
        assert_eq!(Precision::Bf16.compute_kind(Device::Cpu), Some(Kind::BFloat16));
        assert_eq!(Precision::F32.compute_kind(Device::Cuda(0)), None);
        assert_eq!(Precision::Auto.compute_kind(Device::Cuda(0)), Some(Kind::BFloat16));
        let auto = Precision::Auto.resolved_name(Device::Cpu);
        assert_eq!(auto == "bf16", native_bf16(Device::Cpu));
    }

    #[test]
    fn bfloat16_is_native_on_amx_and_on_amd_with_avx512_bf16() {
        let cpu = |vendor: &str, flags: &str| format!("processor\t: 0\nvendor_id\t: {vendor}\nflags\t\t: {flags}\n");
        let intel = "GenuineIntel";
        assert!(cpu_has_fast_bf16(&cpu(intel, "fpu avx512f avx512_bf16 amx_bf16 amx_tile")));
        assert!(!cpu_has_fast_bf16(&cpu(intel, "fpu avx512f avx512_bf16")), "Intel without AMX");
        assert!(cpu_has_fast_bf16(&cpu("AuthenticAMD", "fpu avx512f avx512_bf16")));
        assert!(!cpu_has_fast_bf16(&cpu("AuthenticAMD", "fpu avx2 avx512_bf16x")), "a flag is a whole word");
        assert!(!cpu_has_fast_bf16(""), "no /proc/cpuinfo");
    }
}
