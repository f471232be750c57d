import Foundation
import Testing

@testable import DebugInfo

@Suite(.enabled(if: DebugInfoFixtures.gccAvailable, "needs gcc"))
struct DebugInfoELFTests {
    @Test func headerSegmentsAndBuildIDOfAPIE() throws {
        let scratch = try DebugInfoScratch()
        let path = try scratch.build("symbols.c", output: "symbols", flags: ["-g", "-O1"])
        let file = try ELFFile(path: path)
        #expect(file.elfClass == .elf64)
        #expect(file.objectType == .sharedObject)
        #expect(file.machine == 62)
        let loads = file.loadSegments
        #expect(!loads.isEmpty)
        #expect(loads.contains { $0.isExecutable && $0.isReadable && !$0.isWritable })
        #expect(loads.contains { $0.isWritable && $0.memorySize >= $0.fileSize })
        #expect(loads.first?.offset == 0)
        // The entry point is _start, inside an executable segment.
        let table = try file.symbolTable()
        #expect(table.address(of: "_start") == file.entry)
        #expect(loads.contains { $0.isExecutable && (($0.virtualAddress)..<($0.virtualAddress + $0.memorySize)).contains(file.entry) })
        // Build ID as readelf reports it.
        let notes = try DebugInfoShell.check("readelf", ["-n", path])
        let reported = notes.split(separator: "\n").first { $0.contains("Build ID:") }?
            .split(separator: " ").last.map(String.init)
        #expect(file.buildID.map { $0.map { String(format: "%02x", $0) }.joined() } == reported)
        #expect(file.buildID?.count == 20)
    }

    @Test func fixedAddressExecutableAndLoadBias() throws {
        let scratch = try DebugInfoScratch()
        let exec = try ELFFile(path: scratch.build("symbols.c", output: "exec", flags: ["-g", "-O1", "-no-pie"]))
        #expect(exec.objectType == .executable)
        let firstLoad = try #require(exec.loadSegments.first)
        #expect(exec.loadBias(mappingStart: firstLoad.virtualAddress & ~0xFFF) == 0)
        let pie = try ELFFile(path: scratch.build("symbols.c", output: "pie", flags: ["-g", "-O1"]))
        #expect(pie.loadBias(mappingStart: 0x5555_5555_4000) == 0x5555_5555_4000)
        let text = try #require(pie.loadSegments.first { $0.isExecutable })
        #expect(pie.loadBias(mappingStart: 0x5555_5555_5000, fileOffset: text.offset & ~0xFFF) == 0x5555_5555_4000)
        #expect(pie.loadBias(mappingStart: 0x1000, fileOffset: 0x7777_0000) == nil)
    }

    @Test func symbolsOfEachKindAndBinding() throws {
        let scratch = try DebugInfoScratch()
        let file = try ELFFile(path: scratch.build("symbols.c", output: "symbols", flags: ["-g", "-O1"]))
        let symbols = try file.symbols()
        func named(_ name: String) -> Symbol? { symbols.first { $0.name == name } }
        let global = try #require(named("global_function"))
        #expect(global.kind == .function && global.binding == .global && global.size > 0)
        let local = try #require(named("local_function"))
        #expect(local.kind == .function && local.binding == .local)
        #expect(named("weak_function")?.binding == .weak)
        #expect(named("global_counter").map { ($0.kind, $0.binding, $0.size) } ?? (.other, .local, 0) == (.object, .global, 4))
        #expect(named("local_counter").map { ($0.kind, $0.binding) } ?? (.other, .global) == (.object, .local))
        let alias = try #require(named("local_alias"))
        #expect(alias.address == global.address && alias.binding == .local)
        // Undefined (imported) symbols and section/file symbols are not listed.
        #expect(named("__libc_start_main") == nil)
        #expect(named("symbols.c") == nil)

        let table = SymbolTable(symbols)
        let hit = try #require(table.lookup(global.address + 2))
        #expect(hit.symbol.name == "global_function")  // not the local alias at the same address
        #expect(hit.offset == 2)
        #expect(table.lookup(global.address + global.size)?.symbol.name != "global_function")
    }

    @Test func sectionsByName() throws {
        let scratch = try DebugInfoScratch()
        let file = try ELFFile(path: scratch.build("symbols.c", output: "symbols", flags: ["-g", "-O1"]))
        let names = try file.sectionNames()
        #expect(names.contains(".text") && names.contains(".debug_info") && names.contains(".symtab"))
        let text = try #require(try file.section(named: ".text"))
        #expect(text.address != 0 && text.bytes.count == Int(text.size))
        let main = try #require(try file.symbolTable().symbol(named: "main"))
        #expect(text.address <= main.address && main.address < text.address + text.size)
        let bss = try #require(try file.section(named: ".bss"))
        #expect(bss.type == 8 && bss.bytes.isEmpty && bss.size > 0)
        let note = try #require(try file.section(named: ".note.gnu.build-id"))
        #expect(Array(note.bytes.suffix(20)) == file.buildID)
        // Not loaded into memory, like the kernel's .BTF.
        let debug = try #require(try file.section(named: ".debug_info"))
        #expect(debug.address == 0 && debug.bytes.count == Int(debug.size))
        #expect(try file.section(named: ".no-such-section") == nil)
    }

    @Test func compressedSectionsAreDecompressed() throws {
        let scratch = try DebugInfoScratch()
        let plain = try scratch.build("symbols.c", output: "plain", flags: ["-g", "-O1"])
        let compressed = scratch.path + "/compressed"
        try DebugInfoShell.check("objcopy", ["--compress-debug-sections=zlib", plain, compressed])
        let expected = try #require(try ELFFile(path: plain).section(named: ".debug_info"))
        let file = try ELFFile(path: compressed)
        let section = try #require(try file.section(named: ".debug_info"))
        #expect(section.bytes == expected.bytes)
        #expect(section.flags & (1 << 11) == 0)
    }

    @Test func dynamicSymbolsWhenThereIsNoSymtab() throws {
        let file = try ELFFile(path: "/bin/ls")
        #expect(try !file.sectionNames().contains(".symtab"))
        let symbols = try file.symbols()
        #expect(!symbols.isEmpty)
        #expect(symbols.allSatisfy { !$0.name.isEmpty })
        #expect(symbols.contains { $0.name == "_obstack_begin" && $0.kind == .function && $0.binding == .global })
        #expect(file.buildID != nil)
    }

    @Test func staticExecutable() throws {
        let scratch = try DebugInfoScratch()
        let file = try ELFFile(path: scratch.build("symbols.c", output: "static", flags: ["-g", "-O1", "-static"]))
        #expect(file.objectType == .executable)
        let table = try file.symbolTable()
        #expect(table.symbol(named: "global_function")?.kind == .function)
        #expect(table.symbol(named: "malloc") != nil)  // libc is linked in
    }
}

@Suite struct DebugInfoELFErrorTests {
    @Test func missingAndNonRegularFiles() {
        #expect(throws: DebugInfoError.cannotOpen(path: "/nonexistent/elf", errno: ENOENT)) {
            try ELFFile(path: "/nonexistent/elf")
        }
        #expect(throws: DebugInfoError.notRegularFile(path: "/tmp")) { try ELFFile(path: "/tmp") }
        #expect(DebugInfoError.cannotOpen(path: "/x", errno: ENOENT).description.contains("No such file"))
    }

    @Test func fifoIsRefusedWithoutBlocking() throws {
        let scratch = try DebugInfoScratch()
        let fifo = scratch.path + "/fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        #expect(throws: DebugInfoError.notRegularFile(path: fifo)) { try ELFFile(path: fifo) }
        #expect(throws: DebugInfoError.notRegularFile(path: fifo)) { try SystemMap(path: fifo) }
        let symbolizer = try Symbolizer()
        #expect(throws: DebugInfoError.notRegularFile(path: fifo)) {
            try symbolizer.addModule(name: "fifo", hostPath: fifo, loadBias: 0)
        }
    }

    @Test func nonELFFiles() throws {
        let scratch = try DebugInfoScratch()
        var generator = DeterministicRandom(seed: 1)
        let inputs: [(String, [UInt8])] = [
            ("empty", []),
            ("text", Array("#!/bin/sh\necho not an ELF file\n".utf8)),
            ("random", (0..<4096).map { _ in UInt8(truncatingIfNeeded: generator.next()) }),
            ("magic-only", [0x7F, 0x45, 0x4C, 0x46]),
        ]
        for (name, bytes) in inputs {
            let path = try scratch.write(bytes, to: name)
            #expect(throws: DebugInfoError.self) { try ELFFile(path: path) }
            do {
                _ = try ELFFile(path: path)
            } catch {
                switch error {
                case .notELF, .malformedELF: break
                default: Issue.record("\(name): unexpected \(error)")
                }
            }
        }
        #expect(throws: DebugInfoError.notELF(path: scratch.path + "/empty")) {
            try ELFFile(path: scratch.path + "/empty")
        }
    }

    @Test(.enabled(if: DebugInfoFixtures.gccAvailable, "needs gcc"))
    func truncatedELFFiles() throws {
        let scratch = try DebugInfoScratch()
        let path = try scratch.build("symbols.c", output: "symbols", flags: ["-g", "-O1"])
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        // Section headers come last: every truncation cuts a header table and is refused on opening.
        for length in [20, 64, 100, 600, 4096, bytes.count / 2, bytes.count - 100, bytes.count - 1] {
            let truncated = try scratch.write(Array(bytes.prefix(length)), to: "truncated-\(length)")
            #expect(throws: DebugInfoError.self, "\(length) bytes") { try ELFFile(path: truncated) }
            exerciseWithoutCrashing(truncated)
        }
        #expect(throws: DebugInfoError.notELF(path: scratch.path + "/truncated-20")) {
            try ELFFile(path: scratch.path + "/truncated-20")
        }
        do {
            _ = try ELFFile(path: scratch.path + "/truncated-100")
        } catch {
            guard case .malformedELF(_, let reason) = error else {
                Issue.record("unexpected \(error)")
                return
            }
            #expect(reason.contains("program headers"))
        }
    }

    @Test(.enabled(if: DebugInfoFixtures.gccAvailable, "needs gcc"))
    func corruptedHeaderFields() throws {
        let scratch = try DebugInfoScratch()
        let path = try scratch.build("symbols.c", output: "symbols", flags: ["-g", "-O1"])
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        // (offset, width) of e_phoff, e_shoff, e_phnum, e_shnum, e_shstrndx, e_phentsize, e_shentsize.
        let fields: [(Int, Int)] = [(32, 8), (40, 8), (56, 2), (60, 2), (62, 2), (54, 2), (58, 2)]
        for (offset, width) in fields {
            for value: UInt64 in [0, 1, 0xFFFF, 0x7FFF_FFFF, UInt64(original.count) - 8, .max] {
                var bytes = original
                for i in 0..<width { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))) }
                exerciseWithoutCrashing(try scratch.write(bytes, to: "field-\(offset)-\(value)"))
            }
        }
    }

    @Test(.enabled(if: DebugInfoFixtures.gccAvailable, "needs gcc"))
    func randomlyCorruptedFiles() throws {
        let scratch = try DebugInfoScratch()
        let path = try scratch.build("symbols.c", output: "symbols", flags: ["-g", "-O1"])
        let original = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var generator = DeterministicRandom(seed: 42)
        for round in 0..<150 {
            var bytes = original
            for _ in 0..<(1 + Int(generator.next() % 16)) {
                // Bias toward the headers at both ends of the file.
                let span = generator.next() % 2 == 0 ? min(bytes.count, 1024) : bytes.count
                let index = generator.next() % 2 == 0 ? Int(generator.next() % UInt64(span))
                    : bytes.count - 1 - Int(generator.next() % UInt64(span))
                bytes[index] = UInt8(truncatingIfNeeded: generator.next())
            }
            exerciseWithoutCrashing(try scratch.write(bytes, to: "mutant-\(round)"))
        }
    }

    /// Opens `path` and reads everything ELFFile offers; errors are fine, crashes and hangs are not.
    private func exerciseWithoutCrashing(_ path: String) {
        guard let file = try? ELFFile(path: path) else { return }
        _ = file.loadSegments
        _ = file.loadBias(mappingStart: 0x1000)
        _ = try? file.symbols()
        if let names = try? file.sectionNames() {
            for name in names.prefix(64) { _ = try? file.section(named: name) }
        }
    }
}
