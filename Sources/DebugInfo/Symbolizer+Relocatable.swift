import CElfDW

private let sectionFlagAlloc: UInt64 = 2

/// Where libdwfl placed the allocated sections of a relocatable file (a Linux kernel module
/// `.ko`) reported with `Symbolizer.addRelocatableModule`: section name → address range in the
/// symbolizer's address space.
public struct RelocatableLayout: Sendable, Equatable {
    public var sections: [String: Range<UInt64>]

    public init(sections: [String: Range<UInt64>]) {
        self.sections = sections
    }

    /// The symbolizer address of `offset` bytes into section `name`, if the section has that many.
    public func address(section name: String, offset: UInt64) -> UInt64? {
        guard let range = sections[name], offset < UInt64(range.count) else { return nil }
        return range.lowerBound &+ offset
    }
}

extension Symbolizer {
    /// Reports an `ET_REL` file (a kernel module): libdwfl lays its `SHF_ALLOC` sections out one
    /// after the other from `base` and relocates its DWARF to match. The answer says where each
    /// section went, so a caller that knows where a section really is (a loaded module's section
    /// addresses) translates an address into this layout before `symbolize(pc:)`. The caller
    /// picks `base` away from the modules already added (the layout spans the sections' sizes).
    @discardableResult
    public func addRelocatableModule(name: String, hostPath: String, base: UInt64) throws(DebugInfoError) -> RelocatableLayout {
        let file = try ELFFile(path: hostPath)
        guard file.objectType == .relocatable else {
            throw .moduleRejected(name: name, path: hostPath, reason: "not a relocatable (ET_REL) file")
        }
        let module = try session.report(name: name, path: hostPath, bias: base)
        var start: Dwarf_Addr = 0
        var end: Dwarf_Addr = 0
        _ = dwfl_module_info(module, nil, &start, &end, nil, nil, nil, nil)
        var bias: Dwarf_Addr = 0
        guard let elf = dwfl_module_getelf(module, &bias) else {
            throw .moduleRejected(name: name, path: hostPath, reason: dwflMessage())
        }
        let layout = try Self.allocatedSections(elf, bias: bias, path: hostPath)
        modules.append(SymbolizerModule(name: name, hostPath: hostPath, start: start, end: end, loadBias: bias))
        return layout
    }

    /// The `SHF_ALLOC` sections of `elf` as libdwfl laid them out (it writes the addresses into
    /// the section headers of its own copy), plus `bias`.
    static func allocatedSections(_ elf: OpaquePointer, bias: UInt64, path: String) throws(DebugInfoError) -> RelocatableLayout {
        var count = 0
        var namesIndex = 0
        guard elf_getshdrnum(elf, &count) == 0, elf_getshdrstrndx(elf, &namesIndex) == 0 else {
            throw .malformedELF(path: path, reason: "section headers: \(libelfMessage())")
        }
        var sections: [String: Range<UInt64>] = [:]
        var section: OpaquePointer? = nil
        for _ in 0..<count {
            guard let next = elf_nextscn(elf, section) else { break }
            section = next
            var header = GElf_Shdr()
            guard gelf_getshdr(next, &header) != nil, header.sh_flags & sectionFlagAlloc != 0, header.sh_size > 0,
                  let name = elf_strptr(elf, namesIndex, Int(header.sh_name)) else { continue }
            let low = header.sh_addr &+ bias
            let (high, overflow) = low.addingReportingOverflow(header.sh_size)
            guard !overflow else { continue }
            sections[String(cString: name)] = low..<high
        }
        return RelocatableLayout(sections: sections)
    }
}
