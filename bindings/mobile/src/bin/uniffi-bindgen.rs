//! uniffi's binding generator, pinned to the library's uniffi version: generates the Kotlin,
//! Swift (and Python) sources from the built library (`generate.sh` runs it).
//!
//! Host-only: on Android and iOS targets (where no one runs it) it only says so.

#[cfg(not(any(target_os = "android", target_os = "ios")))]
fn main() {
    uniffi::uniffi_bindgen_main()
}

#[cfg(any(target_os = "android", target_os = "ios"))]
fn main() {
    eprintln!("uniffi-bindgen runs on the build host, not on the device");
    std::process::exit(2);
}
