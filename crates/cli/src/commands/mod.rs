//! One module per subcommand: its clap `Args` and a `run`.

pub mod bench;
pub mod data;
pub mod degrade;
pub mod eval;
