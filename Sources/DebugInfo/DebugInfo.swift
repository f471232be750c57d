import CElfDW

/// Namespace for ELF and DWARF access through elfutils (libelf, libdw).
public enum DebugInfo {
    /// Initialises libelf for the current ELF version; safe to call more than once.
    public static func ensureLibraryInitialised() {
        _ = elf_version(UInt32(EV_CURRENT))
    }
}
