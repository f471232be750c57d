import Foundation
import Testing

@testable import DebugInfo

@Suite(.enabled(if: DebugInfoFixtures.gccAvailable, "needs gcc"))
struct DebugInfoSymbolizerTests {
    private let bias: UInt64 = 0x5555_0000_0000

    @Test func functionFileAndLineOfARelocatedPIE() throws {
        let scratch = try DebugInfoScratch()
        let path = try scratch.build("symbols.c", output: "symbols", flags: ["-g", "-O1"])
        let table = try ELFFile(path: path).symbolTable()
        let function = try #require(table.symbol(named: "global_function"))
        let symbolizer = try Symbolizer()
        let module = try symbolizer.addModule(name: "/usr/bin/symbols", hostPath: path, loadBias: bias)
        #expect(module.loadBias == bias)
        #expect(module.start <= bias + function.address && bias + function.address < module.end)
        #expect(symbolizer.modules == [module])

        let location = try #require(symbolizer.symbolize(pc: bias + function.address))
        #expect(location.module == "/usr/bin/symbols")
        #expect(location.function == "global_function")
        #expect(location.functionOffset == 0)
        #expect(location.file.map { URL(fileURLWithPath: $0).lastPathComponent } == "symbols.c")
        // At -O1 the function's first instruction is already its body.
        #expect(location.line == (try DebugInfoFixtures.line(of: "global-function", in: "symbols.c")))
        #expect(!location.isInline)
        let inside = try #require(symbolizer.symbolize(pc: bias + function.address + 3))
        #expect(inside.function == "global_function" && inside.functionOffset == 3)

        #expect(symbolizer.symbolize(pc: function.address) == nil)  // the unrelocated address is unmapped
        #expect(symbolizer.symbolize(pc: 0) == nil)
    }

    /// A stripped file whose DWARF lies in a `-dbgsym`-style tree (`usr/lib/debug/.build-id/xx/rest.debug`):
    /// file and line come back with the tree given, function names only without it.
    @Test func separateDebugFileFoundByBuildID() throws {
        let scratch = try DebugInfoScratch()
        let path = try scratch.build("symbols.c", output: "symbols", flags: ["-g", "-O1", "-Wl,--build-id"])
        let function = try #require(try ELFFile(path: path).symbolTable().symbol(named: "global_function"))
        let id = try #require(try ELFFile(path: path).buildID).map { String(format: "%02x", $0) }.joined()
        let root = scratch.path + "/symbols-root"
        let directory = root + "/usr/lib/debug/.build-id/" + id.prefix(2)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try DebugInfoShell.check("objcopy", ["--only-keep-debug", path, directory + "/" + id.dropFirst(2) + ".debug"])
        try DebugInfoShell.check("strip", ["--strip-debug", path])
        #expect(try ELFFile(path: path).section(named: ".debug_info") == nil)

        let wanted = try DebugInfoFixtures.line(of: "global-function", in: "symbols.c")
        let withTree = try Symbolizer(debugDirectories: [root + "/usr/lib/debug"])
        try withTree.addModule(name: "/usr/bin/symbols", hostPath: path, loadBias: bias)
        let found = try #require(withTree.symbolize(pc: bias + function.address))
        #expect(found.function == "global_function")
        #expect(found.line == wanted)
        #expect(found.file.map { URL(fileURLWithPath: $0).lastPathComponent } == "symbols.c")

        let without = try Symbolizer()
        try without.addModule(name: "/usr/bin/symbols", hostPath: path, loadBias: bias)
        #expect(without.symbolize(pc: bias + function.address)?.line == nil)
        #expect(without.symbolize(pc: bias + function.address)?.function == "global_function")
        // Relative or colon-holding directories are never searched.
        let refused = try Symbolizer(debugDirectories: ["usr/lib/debug", root + "/usr/lib/debug:/etc"])
        try refused.addModule(name: "/usr/bin/symbols", hostPath: path, loadBias: bias)
        #expect(refused.symbolize(pc: bias + function.address)?.line == nil)
    }

    @Test func inlinedCodeIsReported() throws {
        let scratch = try DebugInfoScratch()
        let path = try scratch.build("symbols.c", output: "symbols", flags: ["-g", "-O1"])
        let caller = try #require(try ELFFile(path: path).symbolTable().symbol(named: "uses_inline"))
        let symbolizer = try Symbolizer()
        try symbolizer.addModule(name: "symbols", hostPath: path, loadBias: bias)
        let inlineLine = try DebugInfoFixtures.line(of: "inlined-body", in: "symbols.c")
        let locations = (caller.address..<(caller.address + caller.size)).compactMap { symbolizer.symbolize(pc: bias + $0) }
        #expect(locations.allSatisfy { $0.function == "uses_inline" })
        let inlined = locations.filter(\.isInline)
        #expect(!inlined.isEmpty)
        #expect(inlined.allSatisfy { $0.inlinedFunction == "inlined_helper" })
        #expect(inlined.contains { $0.line == inlineLine })
    }

    @Test func fixedAddressExecutableIgnoresBias() throws {
        let scratch = try DebugInfoScratch()
        let path = try scratch.build("symbols.c", output: "exec", flags: ["-g", "-O1", "-no-pie"])
        let function = try #require(try ELFFile(path: path).symbolTable().symbol(named: "weak_function"))
        let symbolizer = try Symbolizer()
        let module = try symbolizer.addModule(name: "exec", hostPath: path, loadBias: 0x1000)
        #expect(module.loadBias == 0)
        #expect(symbolizer.symbolize(pc: function.address)?.function == "weak_function")
    }

    @Test func functionNamesWithoutDebugInfo() throws {
        let scratch = try DebugInfoScratch()
        let built = try scratch.build("symbols.c", output: "symbols", flags: ["-g", "-O1"])
        let stripped = scratch.path + "/stripped"
        try DebugInfoShell.check("objcopy", ["--strip-debug", built, stripped])
        let function = try #require(try ELFFile(path: stripped).symbolTable().symbol(named: "local_function"))
        let symbolizer = try Symbolizer()
        try symbolizer.addModule(name: "stripped", hostPath: stripped, loadBias: bias)
        let location = try #require(symbolizer.symbolize(pc: bias + function.address + 1))
        #expect(location.function == "local_function" && location.functionOffset == 1)
        #expect(location.file == nil && location.line == nil)
    }

    @Test func severalModulesInOneAddressSpace() throws {
        let scratch = try DebugInfoScratch()
        let program = try scratch.build("symbols.c", output: "symbols", flags: ["-g", "-O1"])
        let symbolizer = try Symbolizer()
        try symbolizer.addModule(name: "symbols", hostPath: program, loadBias: bias)
        let lsBias: UInt64 = 0x7F00_0000_0000
        try symbolizer.addModule(name: "ls", hostPath: "/bin/ls", loadBias: lsBias)
        let obstack = try #require(try ELFFile(path: "/bin/ls").symbolTable().symbol(named: "_obstack_begin"))
        let location = try #require(symbolizer.symbolize(pc: lsBias + obstack.address))
        #expect(location.module == "ls" && location.function == "_obstack_begin")
        #expect(symbolizer.symbolize(pc: bias + 0x1000)?.module == "symbols")
        #expect(symbolizer.modules.map(\.name) == ["symbols", "ls"])
    }

    @Test func rejectedModules() throws {
        let scratch = try DebugInfoScratch()
        let symbolizer = try Symbolizer()
        let absent = scratch.path + "/absent"
        #expect(throws: DebugInfoError.cannotOpen(path: absent, errno: ENOENT)) {
            try symbolizer.addModule(name: "absent", hostPath: absent, loadBias: 0)
        }
        let garbage = try scratch.write(Array(repeating: 0x41, count: 4096), to: "garbage")
        #expect(throws: DebugInfoError.notELF(path: garbage)) {
            try symbolizer.addModule(name: "garbage", hostPath: garbage, loadBias: 0)
        }
        // An object file has no segments to place.
        let object = try scratch.build("symbols.c", output: "symbols.o", flags: ["-c", "-g", "-O1"])
        do {
            try symbolizer.addModule(name: "object", hostPath: object, loadBias: 0x1000)
            Issue.record("object file accepted as a module")
        } catch {
            guard case .moduleRejected(let name, _, let reason) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(name == "object" && reason.contains("no loadable segments"))
        }
        #expect(symbolizer.modules.isEmpty)
    }

    @Test func overlappingModulesAreRefused() throws {
        let scratch = try DebugInfoScratch()
        let path = try scratch.build("symbols.c", output: "symbols", flags: ["-g", "-O1"])
        let file = try ELFFile(path: path)
        let function = try #require(try file.symbolTable().symbol(named: "global_function"))
        let span = try #require(file.loadedAddressRange(loadBias: 0)).upperBound
        let symbolizer = try Symbolizer()
        try symbolizer.addModule(name: "first", hostPath: path, loadBias: bias)
        for (name, overlapping) in [("same", bias), ("above", bias + 0x800), ("below", bias - 0x800)] {
            do {
                try symbolizer.addModule(name: name, hostPath: path, loadBias: overlapping)
                Issue.record("\(name) accepted")
            } catch {
                guard case .moduleRejected(_, _, let reason) = error else {
                    Issue.record("unexpected \(error)")
                    continue
                }
                #expect(reason.contains("overlaps module first"))
            }
        }
        // Adjacent (page-aligned, right after the first) is fine.
        let next = bias + (span + 0xFFF) & ~0xFFF
        try symbolizer.addModule(name: "next", hostPath: path, loadBias: next)
        #expect(symbolizer.symbolize(pc: bias + function.address)?.module == "first")
        #expect(symbolizer.symbolize(pc: next + function.address)?.module == "next")
        #expect(symbolizer.modules.map(\.name) == ["first", "next"])
    }
}
