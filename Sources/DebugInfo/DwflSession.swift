import CElfDW
import Glibc

/// Owns one libdwfl session (`Dwfl *`, the modules of one address space) and the callback table it
/// points to; lazily attaches the unwind state shared by every `StackUnwinder` of the session.
/// Not thread-safe: used from one thread at a time.
final class DwflSession {
    let dwfl: OpaquePointer
    private let callbacks: UnsafeMutablePointer<Dwfl_Callbacks>
    private var unwindAttachment: UnwindAttachment?
    /// Number of modules reported so far.
    private(set) var moduleCount = 0

    init() throws(DebugInfoError) {
        DebugInfo.ensureLibraryInitialised()
        // SAFETY: dwfl_begin keeps this pointer, so the table lives in its own allocation until deinit, after dwfl_end.
        callbacks = .allocate(capacity: 1)
        // Modules come from dwfl_report_elf, so find_elf is never needed; DWARF is read from the
        // module's own file only (no separate debug files, no debuginfod network lookups).
        callbacks.initialize(
            to: Dwfl_Callbacks(
                find_elf: { _, _, _, _, _, _ in -1 },
                find_debuginfo: { _, _, _, _, _, _, _, _ in -1 },
                section_address: dwfl_offline_section_address,
                debuginfo_path: nil))
        guard let handle = dwfl_begin(callbacks) else {
            callbacks.deinitialize(count: 1)
            callbacks.deallocate()
            throw .libraryFailure(operation: "dwfl_begin", reason: dwflMessage())
        }
        dwfl = handle
    }

    deinit {
        // dwfl_end runs the detach callbacks, so the attachment must outlive it.
        dwfl_end(dwfl)
        unwindAttachment = nil
        callbacks.deinitialize(count: 1)
        callbacks.deallocate()
    }

    /// Reports the ELF file at `path` placed with `bias` (ignored by libdwfl for ET_EXEC).
    /// libdwfl opens the file itself (blocking, mapped): a FIFO would hang it, so only regular files
    /// are passed on.
    func report(name: String, path: String, bias: UInt64) throws(DebugInfoError) -> OpaquePointer {
        var status = stat()
        guard stat(path, &status) == 0 else { throw .cannotOpen(path: path, errno: errno) }
        guard status.st_mode & S_IFMT == S_IFREG else { throw .notRegularFile(path: path) }
        dwfl_report_begin_add(dwfl)
        let module = dwfl_report_elf(dwfl, name, path, -1, bias, true)
        let reason = module == nil ? dwflMessage() : ""
        guard dwfl_report_end(dwfl, nil, nil) == 0 else {
            throw .moduleRejected(name: name, path: path, reason: dwflMessage())
        }
        guard let module else { throw .moduleRejected(name: name, path: path, reason: reason) }
        moduleCount += 1
        return module
    }

    /// The module containing `address`, if any.
    func module(containing address: UInt64) -> OpaquePointer? {
        dwfl_addrmodule(dwfl, address)
    }

    /// Whether `.eh_frame` or `.debug_frame` of the module containing `address` has an FDE for it,
    /// i.e. whether libdw unwinds a frame at `address` with CFI rather than its frame-pointer guess.
    func hasCallFrameInformation(at address: UInt64) -> Bool {
        guard let module = module(containing: address) else { return false }
        var bias: Dwarf_Addr = 0
        if let table = dwfl_module_eh_cfi(module, &bias), Self.table(table, covers: address &- bias) { return true }
        if let table = dwfl_module_dwarf_cfi(module, &bias), Self.table(table, covers: address &- bias) { return true }
        return false
    }

    private static func table(_ table: OpaquePointer, covers address: Dwarf_Addr) -> Bool {
        var frame: OpaquePointer?
        guard dwarf_cfi_addrframe(table, address, &frame) == 0 else { return false }
        // SAFETY: dwarf_cfi_addrframe malloc'd `frame` for the caller to free; it is not used after.
        free(UnsafeMutableRawPointer(frame))
        return true
    }

    /// The unwind state attached to this session, attaching it on first use.
    func attachedUnwindState() throws(DebugInfoError) -> UnwindAttachment {
        if let unwindAttachment { return unwindAttachment }
        let attachment = try UnwindAttachment(dwfl: dwfl)
        unwindAttachment = attachment
        return attachment
    }
}
