import CElfDW
import Glibc

/// Symbolizes program counters of one address space (a guest process) with libdwfl: the ELF files
/// mapped in it are reported with their load bias, then addresses resolve to module, function,
/// offset and, where the file has DWARF, source file and line. Files without debug information
/// still give function names from `.symtab` / `.dynsym`.
///
/// Owns a libdwfl session (freed on release). Not thread-safe: use an instance, and any
/// `StackUnwinder` made from it, from one thread at a time.
public final class Symbolizer {
    let session: DwflSession
    public internal(set) var modules: [SymbolizerModule] = []

    /// - Parameter debugDirectories: directories laid out like `/usr/lib/debug` where a file
    ///   without DWARF finds its separate debug file by build ID (Debian's `-dbgsym` packages).
    public init(debugDirectories: [String] = []) throws(DebugInfoError) {
        session = try DwflSession(debugDirectories: debugDirectories)
    }

    /// Reports the host file `hostPath` as mapped in the address space with `loadBias` = runtime
    /// address − link-time address (for `/proc/PID/maps` see `ELFFile.loadBias(mappingStart:)`).
    /// For an ET_EXEC file the bias is always 0 and the argument is ignored. The file is checked
    /// with `ELFFile` first; a module overlapping one already added is refused, so every address
    /// has at most one module.
    @discardableResult
    public func addModule(name: String, hostPath: String, loadBias: UInt64) throws(DebugInfoError) -> SymbolizerModule {
        let file = try ELFFile(path: hostPath)
        guard let range = file.loadedAddressRange(loadBias: loadBias) else {
            throw .moduleRejected(name: name, path: hostPath, reason: "no loadable segments at this bias")
        }
        if let other = modules.first(where: { range.overlaps($0.start..<$0.end) }) {
            throw .moduleRejected(
                name: name, path: hostPath,
                reason: "\(hex(range.lowerBound))-\(hex(range.upperBound)) overlaps module \(other.name) "
                    + "at \(hex(other.start))-\(hex(other.end))")
        }
        let module = try session.report(name: name, path: hostPath, bias: loadBias)
        var start: Dwarf_Addr = 0
        var end: Dwarf_Addr = 0
        _ = dwfl_module_info(module, nil, &start, &end, nil, nil, nil, nil)
        var bias: Dwarf_Addr = 0
        let actualBias = dwfl_module_getelf(module, &bias) != nil ? bias : loadBias
        let record = SymbolizerModule(name: name, hostPath: hostPath, start: start, end: end, loadBias: actualBias)
        modules.append(record)
        return record
    }

    /// The module, function and source position of `pc`, or nil if no module covers it. For a
    /// return address use `StackFrame.lookupAddress` (pc − 1) or `symbolize(frame:)`.
    public func symbolize(pc: UInt64) -> SymbolizedLocation? {
        guard let module = session.module(containing: pc) else { return nil }
        let moduleName = dwfl_module_info(module, nil, nil, nil, nil, nil, nil, nil).map { String(cString: $0) } ?? ""
        var offset: GElf_Off = 0
        var symbol = GElf_Sym()
        let function = dwfl_module_addrinfo(module, pc, &offset, &symbol, nil, nil, nil).map { String(cString: $0) }
        var file: String?
        var line: Int?
        var column: Int?
        if let record = dwfl_module_getsrc(module, pc) {
            var lineNumber: Int32 = 0
            var columnNumber: Int32 = 0
            if let name = dwfl_lineinfo(record, nil, &lineNumber, &columnNumber, nil, nil) {
                file = String(cString: name)
                line = lineNumber > 0 ? Int(lineNumber) : nil
                column = columnNumber > 0 ? Int(columnNumber) : nil
            }
        }
        let inline = Self.inlineScope(module: module, pc: pc)
        return SymbolizedLocation(
            address: pc, module: moduleName, function: function, functionOffset: function == nil ? 0 : offset,
            file: file, line: line, column: column, isInline: inline.isInline, inlinedFunction: inline.name,
            outerFile: inline.callFile, outerLine: inline.callLine)
    }

    /// `symbolize(pc:)` at the frame's lookup address (pc − 1 for return addresses).
    public func symbolize(frame: StackFrame) -> SymbolizedLocation? {
        symbolize(pc: frame.lookupAddress)
    }

    /// Whether `pc` is in an inlined subroutine (innermost DWARF scope before the enclosing
    /// subprogram), its name, and the call site of the outermost inlined scope (the line in the
    /// enclosing function itself: `DW_AT_call_file` / `DW_AT_call_line`).
    private static func inlineScope(module: OpaquePointer, pc: UInt64)
        -> (isInline: Bool, name: String?, callFile: String?, callLine: Int?)
    {
        var bias: Dwarf_Addr = 0
        guard let unit = dwfl_module_addrdie(module, pc, &bias) else { return (false, nil, nil, nil) }
        // SAFETY: dwarf_getscopes malloc()s an array of `count` DIEs (freed by the defer); only
        // indices below `count` are read.
        var scopes: UnsafeMutablePointer<Dwarf_Die>?
        let count = dwarf_getscopes(unit, pc &- bias, &scopes)
        defer { free(scopes) }
        guard count > 0, let scopes else { return (false, nil, nil, nil) }
        var name: String?
        var outermost: Int?
        for index in 0..<Int(count) {
            // SAFETY: dwarf_getscopes returned `count` DIEs at `scopes` (freed after the loop); index < count.
            let tag = dwarf_tag(scopes + index)
            if tag == Int32(DW_TAG_subprogram) { break }
            if tag == Int32(DW_TAG_inlined_subroutine) {
                if outermost == nil { name = dwarf_diename(scopes + index).map { String(cString: $0) } }
                outermost = index
            }
        }
        guard let outermost else { return (false, nil, nil, nil) }
        // dwarf_getscopes follows an inlined instance into its abstract definition, so a nest of
        // inlined calls (kzalloc → kmalloc) shows only the innermost: the call site in the
        // function itself comes from the concrete nest under the CU, when it can be walked.
        // SAFETY: outermost < count (set inside the loop above).
        var site = (scopes + outermost).pointee
        if let concrete = outermostInlinedInstance(unit: unit, pc: pc &- bias) { site = concrete }
        return withUnsafeMutablePointer(to: &site) { callSite(of: $0, unit: unit, name: name) }
    }

    /// The outermost `DW_TAG_inlined_subroutine` containing `pc` under the subprogram that
    /// contains it, found by walking the CU's concrete DIE tree (bounded: depth 64, 200,000 DIEs).
    private static func outermostInlinedInstance(unit: UnsafeMutablePointer<Dwarf_Die>, pc: UInt64) -> Dwarf_Die? {
        var current = unit.pointee
        var visited = 0
        var inSubprogram = false
        for _ in 0..<64 {
            var child = Dwarf_Die()
            guard dwarf_child(&current, &child) == 0 else { return nil }
            var next: Dwarf_Die?
            repeat {
                visited += 1
                guard visited <= 200_000 else { return nil }
                let tag = dwarf_tag(&child)
                let scoped = tag == Int32(DW_TAG_subprogram) || tag == Int32(DW_TAG_inlined_subroutine) || tag == Int32(DW_TAG_lexical_block)
                if scoped, dwarf_haspc(&child, pc) == 1 {
                    if inSubprogram, tag == Int32(DW_TAG_inlined_subroutine) { return child }
                    if tag == Int32(DW_TAG_subprogram) { inSubprogram = true }
                    next = child
                    break
                }
                var sibling = Dwarf_Die()
                guard dwarf_siblingof(&child, &sibling) == 0 else { break }
                child = sibling
            } while true
            guard let next else { return nil }
            current = next
        }
        return nil
    }

    /// `DW_AT_call_file` and `DW_AT_call_line` of an inlined instance.
    private static func callSite(of site: UnsafeMutablePointer<Dwarf_Die>, unit: UnsafeMutablePointer<Dwarf_Die>, name: String?)
        -> (isInline: Bool, name: String?, callFile: String?, callLine: Int?)
    {
        var attribute = Dwarf_Attribute()
        var value: Dwarf_Word = 0
        var callLine: Int?
        if dwarf_attr_integrate(site, UInt32(DW_AT_call_line), &attribute) != nil, dwarf_formudata(&attribute, &value) == 0,
           value > 0, value < 1 << 31 {
            callLine = Int(value)
        }
        var callFile: String?
        var files: OpaquePointer?
        var fileCount = 0
        if dwarf_attr_integrate(site, UInt32(DW_AT_call_file), &attribute) != nil, dwarf_formudata(&attribute, &value) == 0,
           dwarf_getsrcfiles(unit, &files, &fileCount) == 0, let files, value < UInt64(fileCount) {
            callFile = dwarf_filesrc(files, Int(value), nil, nil).map { String(cString: $0) }
        }
        return (true, name, callFile, callLine)
    }
}
