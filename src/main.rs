fn main() -> std::process::ExitCode {
    chunkfs::cli::main()
}
