import GuestMemory
@testable import Introspection
import Testing

/// `loadedModules()` and `moduleDetails(of:)` over crafted guest memory: the real kernel's
/// symbols and `struct module` layout from its BTF, a module list written by the test. Loops,
/// runaway counts and bad layouts are typed errors.
@Suite(.enabled(if: CraftedKernelMemory.realKernel.isSuccess, "needs the default guest image's vmlinux"))
struct KernelModuleWalkTests {
    static let moduleStruct: UInt64 = 0xFFFF_FFFF_C010_0000
    static let coreBase: UInt64 = 0xFFFF_FFFF_C000_0000
    static let tables: UInt64 = 0xFFFF_FFFF_C004_0000

    struct Guest {
        var crafted: CraftedKernelMemory
        let m: KernelLayout.Module
        let head: UInt64

        func write(_ bytes: [UInt8], at virtual: UInt64) throws { try crafted.memory.write(bytes, at: try crafted.physical(virtual)) }
    }

    /// One module "lv_test" on the list: core region of 0x50000 bytes (text 0x2000, rodata 0x1000,
    /// ro_after_init 0x1000, then data, which holds its kallsyms tables), two symbols, two sections.
    func guest() throws -> Guest {
        var crafted = try CraftedKernelMemory(size: 16 << 20)
        let m = try crafted.kernel.layout.module.get()
        let head = try #require(crafted.kernel.symbols.address(of: "modules"))
        try crafted.map(head, to: 0x20_0000)
        try crafted.map(Self.coreBase, to: 0x40_0000)
        let g = Guest(crafted: crafted, m: m, head: head)
        let mod = Self.moduleStruct
        try crafted.put64(mod + UInt64(m.list), at: head)
        try crafted.put64(head, at: mod + UInt64(m.list))
        try g.write(Array("lv_test".utf8) + [0], at: mod + UInt64(m.name))
        try crafted.put64(Self.coreBase, at: mod + UInt64(m.core.base))
        for (offset, value) in [(m.core.size, 0x5_0000), (m.core.textSize, 0x2000), (m.core.roSize, 0x3000),
                                (m.core.roAfterInitSize, 0x4000)] as [(Int, UInt32)] {
            try crafted.put32(value, at: mod + UInt64(offset))
        }
        // mod_kallsyms at `tables`; symtab, strtab and typetab after it, inside the core region.
        let kallsyms = Self.tables, symtab = Self.tables + 0x100, strtab = Self.tables + 0x200, typetab = Self.tables + 0x300
        try crafted.put64(kallsyms, at: mod + UInt64(m.kallsyms))
        try crafted.put64(symtab, at: kallsyms + UInt64(m.symtab))
        try crafted.put32(2, at: kallsyms + UInt64(m.symbolCount))
        try crafted.put64(strtab, at: kallsyms + UInt64(m.strtab))
        try crafted.put64(typetab, at: kallsyms + UInt64(m.typetab))
        try g.write(KernelModuleDecodingTests.symbol(name: 1, value: Self.coreBase, size: 0x100)
                    + KernelModuleDecodingTests.symbol(name: 10, value: Self.coreBase + 0x100, size: 0x40), at: symtab)
        try g.write(Array("\0lv_alpha\0lv_beta\0".utf8), at: strtab)
        try g.write(Array("tt".utf8), at: typetab)
        // sect_attrs with .text and .data.
        let attrs = Self.tables + 0x1000
        try crafted.put64(attrs, at: mod + UInt64(m.sectionAttributes))
        try crafted.put32(2, at: attrs + UInt64(m.sectionCount))
        for (i, (name, address)) in [(".text", Self.coreBase), (".data", Self.coreBase + 0x4000)].enumerated() {
            let entry = attrs + UInt64(m.sectionArray + i * m.sectionStride)
            let namePointer = Self.tables + 0x2000 + UInt64(i * 16)
            try g.write(Array(name.utf8) + [0], at: namePointer)
            try crafted.put64(namePointer, at: entry + UInt64(m.sectionName))
            try crafted.put64(address, at: entry + UInt64(m.sectionAddress))
        }
        return g
    }

    @Test func theModuleListGivesNamesAndRanges() throws {
        let view = try guest().crafted.view()
        let modules = try view.loadedModules()
        #expect(modules.count == 1)
        let module = try #require(modules.first)
        #expect(module.name == "lv_test")
        #expect(module.state == .live)
        #expect(module.coreRange == Self.coreBase..<(Self.coreBase + 0x5_0000))
        #expect(module.textRange == Self.coreBase..<(Self.coreBase + 0x2000))
        #expect(module.dataRanges == [(Self.coreBase + 0x3000)..<(Self.coreBase + 0x4000), (Self.coreBase + 0x4000)..<(Self.coreBase + 0x5_0000)])
        #expect(module.initRange == nil)
        #expect(view.module(containing: Self.coreBase + 0x10, among: modules)?.name == "lv_test")
    }

    @Test func moduleAddressesResolveToTheModulesOwnSymbols() throws {
        let view = try guest().crafted.view()
        let details = try view.moduleDetails(of: try #require(try view.loadedModules().first))
        #expect(details.symbols.symbols.map(\.name) == ["lv_alpha", "lv_beta"])
        #expect(details.sections == [".text": Self.coreBase, ".data": Self.coreBase + 0x4000])
        #expect(details.orc == nil)
        #expect(view.locate(kernelAddress: Self.coreBase + 0x110)?.description == "lv_beta+0x10 [lv_test]")
        #expect(view.describe(kernelAddress: Self.coreBase + 0x10)?.name == "lv_alpha")
        let frame = try #require(view.kernelFrame(Self.coreBase + 0x20, isReturnAddress: true, method: "test", lines: nil))
        #expect(frame.module == "lv_test" && frame.function == "lv_alpha" && frame.offset == 0x20)
        #expect(frame.file == nil)  // no lv_test.ko on the host
    }

    @Test func aLoopingModuleListIsATypedError() throws {
        let g = try guest()
        try g.crafted.put64(Self.moduleStruct + UInt64(g.m.list), at: Self.moduleStruct + UInt64(g.m.list))
        #expect(throws: IntrospectionError.self) { try g.crafted.view().loadedModules() }
        // Symbolization then knows no modules, and says so with nil, not a trap.
        #expect(try g.crafted.view().locate(kernelAddress: Self.coreBase + 0x10) == nil)
    }

    @Test func aListPointerOutsideTheKernelIsATypedError() throws {
        let g = try guest()
        try g.crafted.put64(0x1234, at: Self.moduleStruct + UInt64(g.m.list))
        #expect(throws: IntrospectionError.self) { try g.crafted.view().loadedModules() }
    }

    @Test func sizesThatDoNotNestAreATypedError() throws {
        let g = try guest()
        try g.crafted.put32(0x9000, at: Self.moduleStruct + UInt64(g.m.core.textSize))
        #expect(throws: IntrospectionError.self) { try g.crafted.view().loadedModules() }
    }

    @Test func runawayCountsAreTypedErrors() throws {
        var g = try guest()
        try g.crafted.put32(UInt32.max, at: Self.tables + UInt64(g.m.symbolCount))
        var view = try g.crafted.view()
        var module = try #require(try view.loadedModules().first)
        #expect(throws: IntrospectionError.self) { try view.moduleDetails(of: module) }

        g = try guest()
        let attrs = try g.crafted.view().u64(Self.moduleStruct + UInt64(g.m.sectionAttributes), "sect_attrs")
        try g.crafted.put32(1 << 20, at: attrs + UInt64(g.m.sectionCount))
        view = try g.crafted.view()
        module = try #require(try view.loadedModules().first)
        #expect(throws: IntrospectionError.self) { try view.moduleDetails(of: module) }

        if let orcCount = g.m.orcCount {
            g = try guest()
            try g.crafted.put32(UInt32.max, at: Self.moduleStruct + UInt64(orcCount))
            view = try g.crafted.view()
            module = try #require(try view.loadedModules().first)
            #expect(throws: IntrospectionError.self) { try view.moduleDetails(of: module) }
        }
    }

    @Test func aStringTableOutsideTheModuleIsATypedError() throws {
        let g = try guest()
        try g.crafted.put64(0xFFFF_FFFF_C030_0000, at: Self.tables + UInt64(g.m.strtab))
        let view = try g.crafted.view()
        #expect(throws: IntrospectionError.self) { try view.moduleDetails(of: try #require(try view.loadedModules().first)) }
    }
}
