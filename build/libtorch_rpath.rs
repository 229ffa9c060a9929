// Shared by the build scripts (`include!`d): an absolute rpath to libtorch for every target of the crate,
// doctests included, which cargo links and runs from a temporary folder out of reach of the `$ORIGIN`
// rpaths in .cargo/config.toml. Resolving the `.libtorch` link also keeps a copied binary working.

/// The libtorch `lib` folder named by `LIBTORCH` (set by .cargo/config.toml), after emitting its rpath.
fn link_libtorch_rpath() -> Option<std::path::PathBuf> {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(libtorch) = std::env::var_os("LIBTORCH") else {
        println!("cargo:warning=LIBTORCH is not set; run scripts/setup.sh (it is read from .cargo/config.toml)");
        return None;
    };
    let lib = std::path::PathBuf::from(libtorch).join("lib").canonicalize().expect("LIBTORCH/lib exists");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    Some(lib)
}
