import Foundation
import Testing

@testable import DebugInfo

@Suite struct DebugInfoSymbolTableTests {
    private func symbol(
        _ name: String, _ address: UInt64, size: UInt64 = 0, kind: SymbolKind = .function,
        binding: SymbolBinding = .global
    ) -> Symbol {
        Symbol(name: name, address: address, size: size, kind: kind, binding: binding)
    }

    @Test func nearestPrecedingSymbolRespectingSize() {
        let table = SymbolTable([
            symbol("c", 0x3000),
            symbol("a", 0x1000, size: 0x100),
            symbol("b", 0x2000, size: 0x10),
        ])
        #expect(table.symbols.map(\.name) == ["a", "b", "c"])
        #expect(table.lookup(0xFFF) == nil)
        #expect(table.lookup(0x1000).map { ($0.symbol.name, $0.offset) } ?? ("", 0) == ("a", 0))
        #expect(table.lookup(0x10FF).map { ($0.symbol.name, $0.offset) } ?? ("", 0) == ("a", 0xFF))
        #expect(table.lookup(0x1100) == nil)  // past a's end, before b
        #expect(table.lookup(0x200F)?.symbol.name == "b")
        #expect(table.lookup(0x2010) == nil)
        // No size: covers everything up to the next symbol and beyond the last.
        #expect(table.lookup(0xFFFF_FFFF_0000).map { ($0.symbol.name, $0.offset) } ?? ("", 0) == ("c", 0xFFFF_FFFF_0000 - 0x3000))
        #expect(SymbolTable([]).lookup(0x1000) == nil)
    }

    @Test func preferredSymbolAtOneAddress() {
        let table = SymbolTable([
            symbol("local_alias", 0x1000, size: 0x20, binding: .local),
            symbol("data_label", 0x1000, size: 0x20, kind: .object, binding: .global),
            symbol("weak_name", 0x1000, size: 0x20, binding: .weak),
            symbol("the_function", 0x1000, size: 0x20),
            symbol("marker", 0x1000, kind: .other),
        ])
        #expect(table.lookup(0x1010)?.symbol.name == "the_function")
        // The unsized symbol still covers what the sized ones do not.
        #expect(table.lookup(0x1030)?.symbol.name == "marker")
    }

    @Test func addressOfNamePrefersGlobalFunctions() {
        let table = SymbolTable([
            symbol("helper", 0x1000, binding: .local),
            symbol("helper", 0x5000, binding: .global),
            symbol("helper", 0x3000, kind: .object, binding: .global),
            symbol("only", 0x7000, binding: .local),
        ])
        #expect(table.address(of: "helper") == 0x5000)
        #expect(table.address(of: "only") == 0x7000)
        #expect(table.address(of: "missing") == nil)
        #expect(table.count == 4)
    }

    @Test func systemMapParsing() {
        let text = """
            ffffffff81000000 T _text
            ffffffff81000000 T startup_64
            ffffffff81001000 t early_helper

            ffffffff81002000 W weak_text
            ffffffff82000000 D init_task
            ffffffff82100000 b local_bss
            ffffffff82200000 R rodata_thing
            0000000000000000 A fixed_percpu_data
            ffffffffc0000000 t module_function\t[some_module]
            this line is not a symbol
            ffffffff81000000 T
            zzzzzzzzzzzzzzzz T bad_address
            ffffffff81000000 TT two_letters
            1ffffffff81000000 T too_long
            ffffffff81000000 T name extra
            """
        let map = SystemMap(text: text)
        #expect(map.malformedLineCount == 6)
        let table = map.table
        #expect(table.count == 9)
        #expect(table.address(of: "_text") == 0xFFFF_FFFF_8100_0000)
        #expect(table.lookup(0xFFFF_FFFF_8100_0123).map { ($0.symbol.name, $0.offset) } ?? ("", 0) == ("_text", 0x123))
        #expect(table.lookup(0xFFFF_FFFF_8100_1004)?.symbol.name == "early_helper")
        #expect(table.symbol(named: "early_helper").map { ($0.kind, $0.binding) } ?? (.other, .global) == (.function, .local))
        #expect(table.symbol(named: "weak_text")?.binding == .weak)
        #expect(table.symbol(named: "init_task")?.kind == .object)
        #expect(table.symbol(named: "local_bss").map { ($0.kind, $0.binding) } ?? (.other, .global) == (.object, .local))
        #expect(table.symbol(named: "fixed_percpu_data")?.kind == .other)
        #expect(table.address(of: "module_function") == 0xFFFF_FFFF_C000_0000)
    }

    @Test func systemMapFromFile() throws {
        let scratch = try DebugInfoScratch()
        let path = try scratch.write(Array("ffffffff81000000 T _text\nnonsense\n".utf8), to: "System.map")
        let map = try SystemMap(path: path)
        #expect(map.table.address(of: "_text") == 0xFFFF_FFFF_8100_0000)
        #expect(map.malformedLineCount == 1)
        #expect(throws: DebugInfoError.cannotOpen(path: scratch.path + "/absent", errno: ENOENT)) {
            try SystemMap(path: scratch.path + "/absent")
        }
        #expect(throws: DebugInfoError.notRegularFile(path: scratch.path)) { try SystemMap(path: scratch.path) }
        // Binary garbage parses to nothing useful, without failing.
        var generator = DeterministicRandom(seed: 7)
        let garbage = try scratch.write((0..<65536).map { _ in UInt8(truncatingIfNeeded: generator.next()) }, to: "garbage")
        #expect(try SystemMap(path: garbage).table.count == 0)
    }
}

@Suite struct DebugInfoSymbolSearchPathTests {
    @Test func candidateOrderAndHostilePaths() {
        let search = SymbolSearchPath(directories: ["/syms", "/other/"])
        #expect(
            search.candidates(forGuestPath: "/usr/bin/prog") == [
                "/syms/usr/bin/prog", "/syms/prog", "/other/usr/bin/prog", "/other/prog",
            ])
        #expect(search.candidates(forGuestPath: "/prog") == ["/syms/prog", "/other/prog"])
        #expect(search.candidates(forGuestPath: "/usr/./bin//prog").first == "/syms/usr/bin/prog")
        #expect(search.candidates(forGuestPath: "/../../etc/shadow").isEmpty)
        #expect(search.candidates(forGuestPath: "/usr/bin/..").isEmpty)
        #expect(search.candidates(forGuestPath: "/").isEmpty)
        #expect(search.candidates(forGuestPath: "/bin/a\u{0}b").isEmpty)
    }

    @Test func findsFilesAndChecksBuildIDs() throws {
        let scratch = try DebugInfoScratch()
        let first = scratch.path + "/first"
        let second = scratch.path + "/second"
        try FileManager.default.createDirectory(atPath: first + "/usr/bin", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: second, withIntermediateDirectories: true)
        // first/usr/bin/ls is a different ELF file than /bin/ls; second/ls is a copy of it.
        try FileManager.default.copyItem(atPath: "/bin/true", toPath: first + "/usr/bin/ls")
        try FileManager.default.copyItem(atPath: "/bin/ls", toPath: second + "/ls")
        let search = SymbolSearchPath(directories: [first, second])
        #expect(search.hostFile(forGuestPath: "/usr/bin/ls") == first + "/usr/bin/ls")
        let buildID = try #require(try ELFFile(path: "/bin/ls").buildID)
        #expect(search.hostFile(forGuestPath: "/usr/bin/ls", buildID: buildID) == second + "/ls")
        #expect(search.hostFile(forGuestPath: "/usr/bin/ls", buildID: [1, 2, 3]) == nil)
        #expect(search.hostFile(forGuestPath: "/usr/bin/absent") == nil)
        #expect(search.hostFile(forGuestPath: "/usr") == nil)  // a directory, not a file
    }
}
