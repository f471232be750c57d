/// What symbolization and unwinding need of one loaded module, read from its `struct module`:
/// its kallsyms, its ORC tables (run-time addresses) and its section addresses (`sect_attrs`,
/// what `/sys/module/NAME/sections/` shows), for placing the host's `.ko` DWARF.
public struct KernelModuleDetails: Sendable {
    public let module: LoadedKernelModule
    public let symbols: KernelModuleSymbols
    public let orc: KernelORC?
    /// Section name → run-time address.
    public let sections: [String: UInt64]
}

extension KernelView {
    static let maximumModuleORCEntries = 1 << 20
    static let maximumModuleSections = 1024
    static let maximumSectionNameLength = 128

    /// Symbols, ORC and sections of `module`. An unformed module (still being loaded) has none yet.
    public func moduleDetails(of module: LoadedKernelModule) throws(IntrospectionError) -> KernelModuleDetails {
        guard module.state != .unformed else {
            return KernelModuleDetails(module: module, symbols: KernelModuleSymbols([]), orc: nil, sections: [:])
        }
        let m = try moduleLayout()
        return KernelModuleDetails(module: module, symbols: try moduleSymbols(of: module, layout: m),
                                   orc: try moduleORC(of: module, layout: m), sections: try moduleSections(of: module, layout: m))
    }

    /// `mod->kallsyms`: the full tables while the module initialises, `core_kallsyms` after.
    func moduleSymbols(of module: LoadedKernelModule, layout m: KernelLayout.Module) throws(IntrospectionError) -> KernelModuleSymbols {
        let what = "module \(module.name) kallsyms"
        let tables = try kernelPointer(try member(module.address, m.kallsyms, "module.kallsyms"), "module.kallsyms")
        let count = Int(try u32(try member(tables, m.symbolCount, "\(what).num_symtab"), "\(what).num_symtab"))
        guard count <= ModuleSymbolDecoder.maximumSymbols else {
            throw .inconsistent("\(what) claims \(count) symbols (at most \(ModuleSymbolDecoder.maximumSymbols))")
        }
        guard count > 0 else { return KernelModuleSymbols([]) }
        let symtabAddress = try kernelPointer(try member(tables, m.symtab, "\(what).symtab"), "\(what).symtab")
        let strtabAddress = try kernelPointer(try member(tables, m.strtab, "\(what).strtab"), "\(what).strtab")
        let typetabAddress = try kernelPointer(try member(tables, m.typetab, "\(what).typetab"), "\(what).typetab")
        let symtab = try bytes(symtabAddress, count * ModuleSymbolDecoder.entrySize, "\(what).symtab")
        // The string table has no recorded length: read up to the last name plus its longest
        // length, but not past the module region that holds it.
        let largest = ModuleSymbolDecoder.largestNameOffset(symtab) ?? 0
        var length = min(largest &+ ModuleSymbolDecoder.maximumNameLength, ModuleSymbolDecoder.maximumStringTable)
        guard let region = [module.coreRange, module.initRange].compactMap({ $0 }).first(where: { $0.contains(strtabAddress) }) else {
            throw .inconsistent("\(what).strtab 0x\(String(strtabAddress, radix: 16)) lies outside the module")
        }
        length = Int(min(UInt64(length), region.upperBound - strtabAddress))
        let strtab = try bytes(strtabAddress, length, "\(what).strtab")
        let typetab = (try? bytes(typetabAddress, count, "\(what).typetab")) ?? []
        return KernelModuleSymbols(ModuleSymbolDecoder.decode(symtab: symtab, strtab: strtab, typetab: typetab))
    }

    /// `mod->arch.orc_unwind_ip` / `orc_unwind` / `num_orcs` (sorted by the kernel at load time);
    /// nil when the kernel or the module has none.
    func moduleORC(of module: LoadedKernelModule, layout m: KernelLayout.Module) throws(IntrospectionError) -> KernelORC? {
        guard let countOffset = m.orcCount, let ipOffset = m.orcIPs, let entryOffset = m.orcEntries,
              let entryLayout = kernel.layout.orc else { return nil }
        let what = "module \(module.name) ORC"
        let count = Int(try u32(try member(module.address, countOffset, "\(what) num_orcs"), "\(what) num_orcs"))
        guard count > 0 else { return nil }
        guard count <= Self.maximumModuleORCEntries else {
            throw .inconsistent("\(what) claims \(count) entries (at most \(Self.maximumModuleORCEntries))")
        }
        let ipAddress = try kernelPointer(try member(module.address, ipOffset, "\(what) orc_unwind_ip"), "\(what) orc_unwind_ip")
        let entryAddress = try kernelPointer(try member(module.address, entryOffset, "\(what) orc_unwind"), "\(what) orc_unwind")
        let ips = try bytes(ipAddress, count * 4, "\(what) orc_unwind_ip")
        let entries = try bytes(entryAddress, count * entryLayout.size, "\(what) orc_unwind")
        return try KernelORC(ipSection: ips, ipAddress: ipAddress, entrySection: entries, layout: entryLayout)
    }

    /// `mod->sect_attrs`: each section's name and run-time address.
    func moduleSections(of module: LoadedKernelModule, layout m: KernelLayout.Module) throws(IntrospectionError) -> [String: UInt64] {
        let what = "module \(module.name) sect_attrs"
        let attributes = try u64(try member(module.address, m.sectionAttributes, "module.sect_attrs"), "module.sect_attrs")
        guard attributes != 0 else { return [:] }  // CONFIG_SYSFS off, or sysfs setup failed
        guard attributes >= KernelSymbols.kernelHalf else { throw .inconsistent("\(what) is not a kernel address") }
        let count = Int(try u32(try member(attributes, m.sectionCount, "\(what).nsections"), "\(what).nsections"))
        guard count <= Self.maximumModuleSections else {
            throw .inconsistent("\(what) claims \(count) sections (at most \(Self.maximumModuleSections))")
        }
        var sections: [String: UInt64] = [:]
        let array = try member(attributes, m.sectionArray, "\(what).attrs")
        for index in 0..<count {
            let entry = try member(array, index * m.sectionStride, "\(what).attrs[\(index)]")
            let namePointer = try kernelPointer(try member(entry, m.sectionName, "section name"), "\(what) section name")
            let address = try u64(try member(entry, m.sectionAddress, "section address"), "\(what) section address")
            guard let name = try sectionName(at: namePointer) else { continue }
            sections[name] = address
        }
        return sections
    }

    /// A NUL-terminated section name of at most `maximumSectionNameLength` bytes, read so as not
    /// to cross into the next page unless the name does.
    func sectionName(at address: UInt64) throws(IntrospectionError) -> String? {
        let toPageEnd = Int(4096 - (address & 4095))
        var raw = try bytes(address, min(toPageEnd, Self.maximumSectionNameLength), "section name")
        if !raw.contains(0), raw.count < Self.maximumSectionNameLength {
            raw += try bytes(address &+ UInt64(raw.count), Self.maximumSectionNameLength - raw.count, "section name")
        }
        guard let nul = raw.firstIndex(of: 0) else { return nil }
        return String(validating: raw[..<nul], as: UTF8.self)
    }
}
