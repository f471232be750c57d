import CElfDW
import Glibc

/// Owns one libdwfl session (`Dwfl *`, the modules of one address space) and the callback table it
/// points to; lazily attaches the unwind state shared by every `StackUnwinder` of the session.
/// Not thread-safe: used from one thread at a time.
final class DwflSession {
    let dwfl: OpaquePointer
    private let callbacks: UnsafeMutablePointer<Dwfl_Callbacks>
    private var unwindAttachment: UnwindAttachment?
    /// What `debuginfo_path` points to: the colon-separated directories, owned by the session; nil
    /// without separate debug files.
    private let debugPath: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
    /// Number of modules reported so far.
    private(set) var moduleCount = 0

    /// - Parameter debugDirectories: absolute directories laid out like `/usr/lib/debug`, where a
    ///   module without DWARF of its own finds it by build ID (`.build-id/xx/rest.debug`, Debian's
    ///   `-dbgsym` layout). Without them DWARF is read from the module's own file only. Never
    ///   debuginfod: nothing is fetched over the network.
    init(debugDirectories: [String] = []) throws(DebugInfoError) {
        DebugInfo.ensureLibraryInitialised()
        // SAFETY: libdwfl keeps these pointers for the session's life; they are freed in deinit
        // only after dwfl_end.
        callbacks = .allocate(capacity: 1)
        let directories = debugDirectories.filter { $0.hasPrefix("/") && !$0.contains(":") }
        if directories.isEmpty {
            debugPath = nil
        } else {
            let slot = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: 1)
            slot.initialize(to: strdup(directories.joined(separator: ":")))
            debugPath = slot
        }
        // Modules come from dwfl_report_elf, so find_elf is never needed.
        if debugPath == nil {
            callbacks.initialize(
                to: Dwfl_Callbacks(
                    find_elf: { _, _, _, _, _, _ in -1 }, find_debuginfo: { _, _, _, _, _, _, _, _ in -1 },
                    section_address: dwfl_offline_section_address, debuginfo_path: nil))
        } else {
            callbacks.initialize(
                to: Dwfl_Callbacks(
                    find_elf: { _, _, _, _, _, _ in -1 }, find_debuginfo: dwfl_build_id_find_debuginfo,
                    section_address: dwfl_offline_section_address, debuginfo_path: debugPath))
        }
        guard let handle = dwfl_begin(callbacks) else {
            Self.release(callbacks, debugPath)
            throw .libraryFailure(operation: "dwfl_begin", reason: dwflMessage())
        }
        dwfl = handle
    }

    private static func release(_ callbacks: UnsafeMutablePointer<Dwfl_Callbacks>,
                                _ debugPath: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) {
        callbacks.deinitialize(count: 1)
        callbacks.deallocate()
        if let debugPath {
            free(debugPath.pointee)
            debugPath.deinitialize(count: 1)
            debugPath.deallocate()
        }
    }

    deinit {
        // dwfl_end runs the detach callbacks, so the attachment must outlive it.
        dwfl_end(dwfl)
        unwindAttachment = nil
        Self.release(callbacks, debugPath)
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
        // SAFETY: dwarf_cfi_addrframe malloc()s the frame and leaves it to the caller to free.
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
