@testable import Introspection
import Testing

/// The pure parts of loaded-module introspection over byte buffers: a module's kallsyms tables,
/// its layout split into ranges, and its ORC table at run-time addresses. Every input is what a
/// hostile guest could write.
@Suite struct KernelModuleDecodingTests {
    /// An `Elf64_Sym`: st_name, st_info, st_other, st_shndx, st_value, st_size (little-endian).
    static func symbol(name: UInt32, info: UInt8 = 0x12, section: UInt16 = 2, value: UInt64, size: UInt64 = 0) -> [UInt8] {
        func le<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        return le(name) + [info, 0] + le(section) + le(value) + le(size)
    }

    static let base: UInt64 = 0xFFFF_FFFF_C000_1000

    @Test func symbolsDecodeWithTheirNamesTypesAndSizes() {
        let strtab = Array("\0lv_alpha\0lv_beta\0".utf8)
        let symtab = Self.symbol(name: 0, info: 0, section: 0, value: 0)  // the null symbol
            + Self.symbol(name: 1, value: Self.base, size: 0x40)
            + Self.symbol(name: 10, info: 0x11, value: Self.base + 0x1000, size: 8)
        let decoded = ModuleSymbolDecoder.decode(symtab: symtab, strtab: strtab, typetab: Array("?td".utf8))
        #expect(decoded == [KernelModuleSymbol(name: "lv_alpha", address: Self.base, size: 0x40, type: "t"),
                            KernelModuleSymbol(name: "lv_beta", address: Self.base + 0x1000, size: 8, type: "d")])
        #expect(ModuleSymbolDecoder.largestNameOffset(symtab) == 10)
    }

    @Test func sectionAndFileSymbolsUndefinedOnesAndBadNamesAreDropped() {
        let strtab = Array("\0good\0sect\0".utf8) + Array("unterminated".utf8)
        let symtab = Self.symbol(name: 1, value: Self.base)
            + Self.symbol(name: 6, info: 0x03, value: Self.base)            // STT_SECTION
            + Self.symbol(name: 6, info: 0x04, value: Self.base)            // STT_FILE
            + Self.symbol(name: 6, section: 0, value: Self.base)            // undefined
            + Self.symbol(name: 11, value: Self.base + 8)                   // runs off the table
            + Self.symbol(name: 0xFFFF_FFFF, value: Self.base + 16)         // past the table
            + Self.symbol(name: 0, value: Self.base + 24)                   // empty name
        let decoded = ModuleSymbolDecoder.decode(symtab: symtab, strtab: strtab, typetab: [])
        #expect(decoded.map(\.name) == ["good"])
        #expect(decoded.first?.type == "?")  // no type table: no type, no trap
    }

    @Test func aNameLongerThanKSYMNameLengthIsDropped() {
        let strtab = [0] + [UInt8](repeating: 0x61, count: ModuleSymbolDecoder.maximumNameLength) + [0]
        #expect(ModuleSymbolDecoder.decode(symtab: Self.symbol(name: 1, value: Self.base), strtab: strtab, typetab: []).isEmpty)
        let fits = [0] + [UInt8](repeating: 0x61, count: ModuleSymbolDecoder.maximumNameLength - 1) + [0]
        #expect(ModuleSymbolDecoder.decode(symtab: Self.symbol(name: 1, value: Self.base), strtab: fits, typetab: []).count == 1)
    }

    @Test func aTruncatedSymbolTableDecodesItsWholeEntriesOnly() {
        let symtab = Self.symbol(name: 1, value: Self.base) + [1, 2, 3]
        #expect(ModuleSymbolDecoder.decode(symtab: symtab, strtab: Array("\0a\0".utf8), typetab: []).count == 1)
        #expect(ModuleSymbolDecoder.largestNameOffset([1, 2, 3]) == nil)
    }

    @Test func lookupFindsTheNearestSymbolInsideTheModuleRegionOnly() {
        let table = KernelModuleSymbols([
            KernelModuleSymbol(name: "lv_second", address: Self.base + 0x100, size: 0x20, type: "t"),
            KernelModuleSymbol(name: "lv_first", address: Self.base, size: 0, type: "t"),
            KernelModuleSymbol(name: "lv_label", address: Self.base + 0x100, size: 0, type: "t"),
        ])
        let region = Self.base..<(Self.base + 0x1000)
        #expect(table.symbol(containing: Self.base + 0x10, within: region)?.symbol.name == "lv_first")
        #expect(table.symbol(containing: Self.base + 0x10, within: region)?.offset == 0x10)
        // A sized function wins over a label at its address; past its size is nothing.
        #expect(table.symbol(containing: Self.base + 0x104, within: region)?.symbol.name == "lv_second")
        #expect(table.symbol(containing: Self.base + 0x120, within: region) == nil)
        #expect(table.symbol(containing: Self.base - 1, within: region) == nil)
        #expect(table.symbol(containing: Self.base + 0x10, within: (Self.base + 0x800)..<(Self.base + 0x1000)) == nil)
        #expect(table.address(of: "lv_second") == Self.base + 0x100)
    }

    @Test func aModuleLayoutSplitsIntoItsParts() throws {
        let r = try LoadedKernelModule.regions(base: Self.base, size: 0x5000, textSize: 0x2000, roSize: 0x3000,
                                               roAfterInitSize: 0x3000, what: "test")
        #expect(r.all == Self.base..<(Self.base + 0x5000))
        #expect(r.text == Self.base..<(Self.base + 0x2000))
        #expect(r.rodata == (Self.base + 0x2000)..<(Self.base + 0x3000))
        #expect(r.roAfterInit.isEmpty)
        #expect(r.data == (Self.base + 0x3000)..<(Self.base + 0x5000))
    }

    @Test func implausibleModuleLayoutsAreTypedErrors() {
        let cases: [(String, UInt64, UInt64, UInt64, UInt64, UInt64)] = [
            ("text past ro", Self.base, 0x5000, 0x4000, 0x3000, 0x3000),
            ("ro_after_init past size", Self.base, 0x5000, 0x1000, 0x2000, 0x6000),
            ("over 1 GiB", Self.base, 1 << 31, 0, 0, 0),
            ("wraps past 2^64", UInt64.max - 0xFFF, 0x2000, 0x1000, 0x1000, 0x1000),
            ("user-space base", 0x40_0000, 0x2000, 0x1000, 0x1000, 0x1000),
        ]
        for (name, base, size, text, ro, roAfterInit) in cases {
            #expect(throws: IntrospectionError.self, "\(name)") {
                try LoadedKernelModule.regions(base: base, size: size, textSize: text, roSize: ro, roAfterInitSize: roAfterInit, what: name)
            }
        }
    }

    @Test func aModuleORCTableIsLookedUpAtRunTimeAddresses() throws {
        // Three entries whose s32 offsets (relative to each slot) point at base, base+0x40, base+0x80.
        let ipAddress: UInt64 = 0xFFFF_FFFF_C000_8000
        var ips: [UInt8] = []
        for (i, target) in [Self.base, Self.base + 0x40, Self.base + 0x80].enumerated() {
            let relative = Int32(truncatingIfNeeded: Int64(bitPattern: target &- (ipAddress + UInt64(4 * i))))
            ips += withUnsafeBytes(of: relative.littleEndian) { Array($0) }
        }
        // sp_offset 8/16/24, sp_reg = SP (5), type call (0).
        let entries: [UInt8] = [8, 0, 0, 0, 0x05, 0, 16, 0, 0, 0, 0x05, 0, 24, 0, 0, 0, 0x05, 0]
        let orc = try KernelORC(ipSection: ips, ipAddress: ipAddress, entrySection: entries, layout: HostileKernelImageTests.orcLayout)
        #expect(orc.entry(for: Self.base - 1) == nil)
        #expect(orc.entry(for: Self.base)?.spOffset == 8)
        #expect(orc.entry(for: Self.base + 0x7F)?.spOffset == 16)
        #expect(orc.entry(for: Self.base + 0x80)?.spOffset == 24)
        #expect(orc.entry(for: Self.base + 0x80)?.kind == .call)
    }

    @Test func describingAKernelAddressNamesItsModule() {
        #expect(KernelAddressSymbol(name: "lv_kmod_block", offset: 0x2a, module: "lv_leak_kmod").description
                == "lv_kmod_block+0x2a [lv_leak_kmod]")
        #expect(KernelAddressSymbol(name: "schedule", offset: 0, module: nil).description == "schedule")
    }
}
