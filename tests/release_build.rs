//! `cargo build --release` makes the small binary itself: the release profile strips debug info
//! (`strip = "debuginfo"` in Cargo.toml; it was 72 MB with it), and `[profile.profiling]` is the
//! one that keeps it, for bench/profile.py. Checked on the binary the tests run, when they run
//! in release (as `scripts/test` does); a debug build keeps its debug info on purpose.

mod common;

/// The names of an ELF64 little-endian file's sections.
fn section_names(elf: &[u8]) -> Vec<String> {
    let u16_at = |o: usize| u16::from_le_bytes(elf[o..o + 2].try_into().unwrap()) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap()) as usize;
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    assert_eq!(&elf[..6], b"\x7fELF\x02\x01", "an ELF64 little-endian file");
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let header = |i: usize| shoff + i * shentsize;
    let strtab = u64_at(header(shstrndx) + 0x18);
    (0..shnum)
        .map(|i| {
            let start = strtab + u32_at(header(i));
            let end = start + elf[start..].iter().position(|&b| b == 0).unwrap();
            String::from_utf8_lossy(&elf[start..end]).into_owned()
        })
        .collect()
}

#[test]
fn release_binary_has_no_debug_info() {
    if cfg!(debug_assertions) {
        eprintln!("not a release build: skipped (scripts/test runs cargo test --release)");
        return;
    }
    let elf = std::fs::read(common::jes_bin()).unwrap();
    let names = section_names(&elf);
    assert!(names.iter().any(|n| n == ".text"), "{names:?}");
    let debug: Vec<&String> = names.iter().filter(|n| n.starts_with(".debug")).collect();
    assert!(
        debug.is_empty(),
        "debug sections in the release binary: {debug:?}"
    );
    assert!(
        elf.len() < 25 * 1024 * 1024,
        "the release binary is {} bytes",
        elf.len()
    );
}
