fn main() {
    println!(
        "cargo:rustc-env=WORKER_BUILD_PROFILE={}",
        std::env::var("PROFILE").unwrap()
    );
    println!("cargo:rerun-if-changed=build.rs");
}
