//! Every variable of a network is made here, so that a network built to load a file is allocated at the
//! shapes the file stores and never larger.
//!
//! A model file says how large its network is twice: in its config (layer counts, widths, condition
//! tokens) and in its header (the shape of every stored tensor). The config alone cannot be trusted with
//! an allocation: `condition_tokens = 1e12` in a 3 MB file would ask for 4 TB before a single stored shape
//! was looked at. So loaders build the network inside [`with_stored_shapes`], a plan in force on the
//! current thread for the duration of a closure (as [`super::lora::with_adapters`] is): each variable a
//! constructor asks for is allocated only if the file stores a tensor of that name with exactly that
//! shape. A variable stored with another shape stops the build at once with
//! [`CheckpointError::ShapeMismatch`]; a variable not stored gets an empty placeholder and is listed in
//! [`CheckpointError::Keys`]; after [`MAX_MISSING`] of them the build stops
//! ([`CheckpointError::TooManyMissing`]), so a config of a billion layers stops too. The memory of a load is thus bounded by the file's own tensors, whatever its config
//! says.
//!
//! [`check_parameter_limit`] bounds a network that no file stores yet (a new model from a training config)
//! the same way: its variables are counted, without allocating any, against a stated limit.
//!
//! Outside a plan the helpers are the variable store's own calls.

use std::cell::RefCell;
use std::collections::HashSet;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use sana_sr_core::{nn, Kind, Tensor};

use crate::checkpoint::{CheckpointError, Shapes};

/// Variables missing from a file after which a build stops: more than any real mismatch lists, and
/// few enough to stop a config of absurd depth at once.
pub const MAX_MISSING: usize = 10_000;

/// The largest size a config may give one dimension (channels, widths, heads, tokens, kernels): 2^20, 400
/// times SANA 1600M's widest (2304 caption channels), and small enough that products of two never overflow.
pub const MAX_CONFIG_SIZE: i64 = 1 << 20;

/// The most layers or blocks a config may stack (and stages a DC-AE may have 16 of): 1024, fifty times
/// SANA 1600M's 20 layers and RRDBNet's 23 blocks. A stack is built as a vector of that length, so its
/// length is checked before the stored shapes can be.
pub const MAX_CONFIG_DEPTH: i64 = 1 << 10;

/// Checks that every named size lies in `1..=`[`MAX_CONFIG_SIZE`]; the error names the first that does not.
pub fn check_sizes(sizes: &[(&str, i64)]) -> Result<(), String> {
    match sizes.iter().find(|(_, size)| !(1..=MAX_CONFIG_SIZE).contains(size)) {
        Some((name, size)) => Err(format!("`{name}` is {size}, outside 1..={MAX_CONFIG_SIZE} (MAX_CONFIG_SIZE)")),
        None => Ok(()),
    }
}

/// Checks that every named depth (a count of layers or blocks) lies in `0..=`[`MAX_CONFIG_DEPTH`].
pub fn check_depths(depths: &[(&str, i64)]) -> Result<(), String> {
    match depths.iter().find(|(_, depth)| !(0..=MAX_CONFIG_DEPTH).contains(depth)) {
        Some((name, depth)) => Err(format!("`{name}` is {depth}, outside 0..={MAX_CONFIG_DEPTH} (MAX_CONFIG_DEPTH)")),
        None => Ok(()),
    }
}

/// The largest network built without a file to check it against: 20 G parameters, 80 GB in float32, more
/// than ten times SANA 1600M (every model sana-sr trains is far smaller).
pub const MAX_NEW_PARAMETERS: u64 = 20_000_000_000;

enum Plan {
    /// Loading: the shapes a file stores, by variable name.
    Stored { shapes: Shapes, requested: HashSet<String>, missing: Vec<String>, problem: Option<CheckpointError> },
    /// Counting: nothing is allocated, the parameters are summed and each variable's name and shape listed.
    Count { parameters: u64, limit: u64, planned: Vec<(String, Vec<i64>)> },
}

thread_local! {
    static PLAN: RefCell<Option<Plan>> = const { RefCell::new(None) };
}

/// The payload a plan stops a build with (caught by the plan, never seen outside this module).
struct Stop;

/// Builds a network with `build` while the variables it asks for are checked against `shapes`, the shapes
/// a file stores by name (see the module docs). `build`'s own error comes first; then a shape mismatch,
/// then missing variables (with the stored tensors no variable asked for). A network built without either
/// has every variable at its stored shape; whether the file stores more is for the loader's copy
/// ([`crate::checkpoint::copy_into`]) to say.
pub fn with_stored_shapes<T, E: From<CheckpointError>>(
    shapes: Shapes,
    build: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let plan = Plan::Stored { shapes, requested: HashSet::new(), missing: Vec::new(), problem: None };
    let (built, plan) = run(plan, build);
    let Plan::Stored { shapes, requested, missing, problem } = plan else { unreachable!("the plan given") };
    let built = built?;
    if let Some(problem) = problem {
        return Err(problem.into());
    }
    if missing.len() >= MAX_MISSING {
        // Stopped part-way: which stored tensors the rest of the network would have used is unknown.
        return Err(CheckpointError::TooManyMissing { missing }.into());
    }
    if !missing.is_empty() {
        let mut unexpected: Vec<String> = shapes.into_keys().filter(|k| !requested.contains(k)).collect();
        unexpected.sort();
        return Err(CheckpointError::Keys { missing, unexpected }.into());
    }
    Ok(built.expect("a build that was not stopped returns"))
}

/// Checks, before any of it is allocated, that the network `build` makes has at most `limit` parameters:
/// `build` runs with every variable an empty placeholder, counting (build into a store of its own and
/// drop the result; LoRA plans attach nothing meanwhile), and stops as soon as the count is over.
pub fn check_parameter_limit<T, E: From<CheckpointError>>(
    limit: u64,
    build: impl FnOnce() -> Result<T, E>,
) -> Result<(), E> {
    let (counted, plan) = run(Plan::Count { parameters: 0, limit, planned: Vec::new() }, build);
    let Plan::Count { parameters, .. } = plan else { unreachable!("the plan given") };
    drop(counted?);
    if parameters > limit {
        return Err(CheckpointError::TooManyParameters { parameters, limit }.into());
    }
    Ok(())
}

/// The variables `build` would make, by full name with their shapes, in the order asked for; nothing is
/// allocated, so a released config of billions of parameters is checked in milliseconds.
pub fn planned_variables<T, E>(build: impl FnOnce() -> Result<T, E>) -> Result<Vec<(String, Vec<i64>)>, E> {
    let (built, plan) = run(Plan::Count { parameters: 0, limit: u64::MAX, planned: Vec::new() }, build);
    let Plan::Count { planned, .. } = plan else { unreachable!("the plan given") };
    drop(built?);
    Ok(planned)
}

/// Whether variables are being counted rather than made ([`check_parameter_limit`]).
pub(crate) fn counting() -> bool {
    PLAN.with_borrow(|plan| matches!(plan, Some(Plan::Count { .. })))
}

/// Runs `build` under `plan`; its result (`None` when the plan stopped it) and the plan as it ended.
/// Plans nest: the one in force before is restored after.
fn run<T, E>(plan: Plan, build: impl FnOnce() -> Result<T, E>) -> (Result<Option<T>, E>, Plan) {
    let previous = PLAN.with_borrow_mut(|slot| slot.replace(plan));
    let result = catch_unwind(AssertUnwindSafe(build));
    let plan = PLAN.with_borrow_mut(|slot| std::mem::replace(slot, previous)).expect("the plan is in force");
    match result {
        Ok(built) => (built.map(Some), plan),
        Err(payload) if payload.is::<Stop>() => (Ok(None), plan),
        Err(payload) => resume_unwind(payload),
    }
}

/// Whether the variable `name` of `shape` under `p` may be allocated; under a plan that has seen enough,
/// the build stops here.
fn admit(p: &nn::Path, name: &str, shape: &[i64]) -> bool {
    let (admitted, stop) = PLAN.with_borrow_mut(|plan| match plan {
        None => (true, false),
        Some(Plan::Stored { shapes, requested, missing, problem }) => {
            let key = p.path(name);
            match shapes.get(&key) {
                Some(stored) if stored == shape => {
                    requested.insert(key);
                    (true, false)
                }
                Some(stored) => {
                    let found = stored.clone();
                    *problem = Some(CheckpointError::ShapeMismatch { key, expected: shape.to_vec(), found });
                    (false, true)
                }
                None => {
                    missing.push(key);
                    (false, missing.len() >= MAX_MISSING)
                }
            }
        }
        Some(Plan::Count { parameters, limit, planned }) => {
            planned.push((p.path(name), shape.to_vec()));
            let numel = shape.iter().try_fold(1u64, |n, &d| u64::try_from(d).ok().and_then(|d| n.checked_mul(d)));
            *parameters = numel.and_then(|n| parameters.checked_add(n)).unwrap_or(u64::MAX);
            (false, *parameters > *limit)
        }
    });
    if stop {
        resume_unwind(Box::new(Stop));
    }
    admitted
}

/// What a variable that may not be allocated is instead: empty, so that nothing built from it is large.
fn placeholder(p: &nn::Path) -> Tensor {
    Tensor::zeros([0], (Kind::Float, p.device()))
}

/// A trainable variable, [`nn::Path::var`] under the plan in force. Under [`with_stored_shapes`] an
/// admitted variable is left uninitialised: the loader's strict copy overwrites every one of them or fails
/// (and the network is dropped), so drawing its random init would only cost time (seconds for SANA 1.6B).
pub fn var(p: &nn::Path, name: &str, shape: &[i64], init: nn::Init) -> Tensor {
    match admit(p, name, shape) {
        true if loading() => p.add(name, Tensor::empty(shape, (p.kind(), p.device())), true),
        true => p.var(name, shape, init),
        false => placeholder(p),
    }
}

/// Whether a network is being built at a file's stored shapes, to be loaded from it.
fn loading() -> bool {
    PLAN.with_borrow(|plan| matches!(plan, Some(Plan::Stored { .. })))
}

/// A variable that does not train, all zeros (a running mean).
pub fn zeros_no_train(p: &nn::Path, name: &str, shape: &[i64]) -> Tensor {
    if admit(p, name, shape) {
        p.zeros_no_train(name, shape)
    } else {
        placeholder(p)
    }
}

/// A variable that does not train, all ones (a running variance).
pub fn ones_no_train(p: &nn::Path, name: &str, shape: &[i64]) -> Tensor {
    if admit(p, name, shape) {
        p.ones_no_train(name, shape)
    } else {
        placeholder(p)
    }
}

/// A scalar integer counter that does not train (BatchNorm's `num_batches_tracked`).
pub fn counter(p: &nn::Path, name: &str) -> Tensor {
    if admit(p, name, &[]) {
        p.add(name, Tensor::zeros([], (Kind::Int64, p.device())), false)
    } else {
        placeholder(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::Layer;
    use sana_sr_core::Device;

    fn shapes(pairs: &[(&str, &[i64])]) -> Shapes {
        pairs.iter().map(|(k, s)| (k.to_string(), s.to_vec())).collect()
    }

    #[test]
    fn a_network_larger_than_its_file_stops_before_anything_is_allocated() {
        let vs = nn::VarStore::new(Device::Cpu);
        // 10^6 x 10^6 floats would be 4 TB: the stored shape stops it first.
        let stored = shapes(&[("proj.weight", &[3, 2]), ("proj.bias", &[3])]);
        let built = with_stored_shapes(stored, || {
            Ok::<_, CheckpointError>(Layer::linear(vs.root() / "proj", 1_000_000, 1_000_000, true))
        });
        let err = built.unwrap_err();
        assert!(matches!(&err, CheckpointError::ShapeMismatch { key, .. } if key == "proj.weight"), "{err}");
        assert_eq!(vs.len(), 0, "nothing was allocated");
    }

    #[test]
    fn stored_shapes_build_and_missing_variables_are_listed_with_the_unexpected() {
        let vs = nn::VarStore::new(Device::Cpu);
        let stored = shapes(&[("a.weight", &[3, 2]), ("a.bias", &[3]), ("old.weight", &[1])]);
        let built = with_stored_shapes(stored.clone(), || {
            Ok::<_, CheckpointError>((
                Layer::linear(vs.root() / "a", 2, 3, true),
                Layer::linear(vs.root() / "b", 2, 3, false),
            ))
        });
        match built.unwrap_err() {
            CheckpointError::Keys { missing, unexpected } => {
                assert_eq!(missing, ["b.weight"]);
                assert_eq!(unexpected, ["old.weight"]);
            }
            other => panic!("{other}"),
        }
        let vs = nn::VarStore::new(Device::Cpu);
        let layer = with_stored_shapes(stored, || Ok::<_, CheckpointError>(Layer::linear(vs.root() / "a", 2, 3, true)));
        assert_eq!(layer.unwrap().weight.size(), [3, 2]);
    }

    #[test]
    fn an_absurdly_deep_config_stops_after_the_missing_limit() {
        let vs = nn::VarStore::new(Device::Cpu);
        let built = with_stored_shapes(Shapes::new(), || {
            let mut layers = Vec::new();
            for i in 0..u64::MAX {
                layers.push(Layer::linear(vs.root() / i, 1, 1, false));
            }
            Ok::<_, CheckpointError>(layers)
        });
        match built.unwrap_err() {
            CheckpointError::TooManyMissing { missing } => assert_eq!(missing.len(), MAX_MISSING),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_new_network_is_counted_against_the_limit_without_allocating() {
        let vs = nn::VarStore::new(Device::Cpu);
        let huge = || Ok::<_, CheckpointError>(Layer::linear(vs.root() / "x", 1 << 20, 1 << 20, true));
        let err = check_parameter_limit(1 << 30, huge).unwrap_err();
        assert!(matches!(err, CheckpointError::TooManyParameters { parameters, .. } if parameters > 1 << 30), "{err}");
        assert!(err.to_string().contains("over the limit of 1073741824"), "{err}");
        let small = || Ok::<_, CheckpointError>(Layer::linear(vs.root() / "y", 4, 4, true));
        check_parameter_limit(20, small).unwrap();
        assert_eq!(vs.len(), 0, "counting allocates nothing");
        let overflow = || Ok::<_, CheckpointError>(Layer::linear(vs.root() / "z", i64::MAX, i64::MAX, false));
        assert!(check_parameter_limit(u64::MAX - 1, overflow).is_err());
    }

    #[test]
    fn panics_of_the_build_pass_through_and_plans_are_restored() {
        let caught = std::panic::catch_unwind(|| {
            with_stored_shapes(Shapes::new(), || -> Result<(), CheckpointError> { panic!("a bug") })
        });
        assert!(caught.is_err());
        assert!(PLAN.with_borrow(Option::is_none));
    }
}
