//! The `kustomer-mirror` binary: everything lives in the library; this only hands over to [`kustomer_mirror::cli`].

fn main() -> std::process::ExitCode {
    kustomer_mirror::cli::main()
}
