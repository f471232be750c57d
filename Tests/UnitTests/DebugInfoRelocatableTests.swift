import DebugInfo
import Foundation
import Testing

/// `Symbolizer.addRelocatableModule`: an `ET_REL` file (an object file, a kernel module `.ko`)
/// laid out by libdwfl, its DWARF relocated to that layout, addresses moved into it through
/// their section.
@Suite(.enabled(if: DebugInfoFixtures.gccAvailable, "needs gcc"))
struct DebugInfoRelocatableTests {
    @Test func eachFunctionSectionResolvesToItsFunctionAndSourceLine() throws {
        let scratch = try DebugInfoScratch()
        let object = try scratch.build("callchain.c", output: "callchain.o", flags: ["-c", "-g", "-O1", "-ffunction-sections"])
        let symbolizer = try Symbolizer()
        let layout = try symbolizer.addRelocatableModule(name: "callchain", hostPath: object, base: 0x100_0000_0000)
        // With -ffunction-sections every function is at offset 0 of its own section.
        for (function, marker) in [("inner", "inner-read"), ("middle", "middle-call"), ("outer", "outer-call")] {
            let section = try #require(layout.sections[".text." + function], "\(layout.sections.keys.sorted())")
            #expect(section.lowerBound >= 0x100_0000_0000)
            let pc = try #require(layout.address(section: ".text." + function, offset: 0))
            let location = try #require(symbolizer.symbolize(pc: pc))
            #expect(location.function == function)
            #expect(location.file?.hasSuffix("callchain.c") == true)
            let markLine = try DebugInfoFixtures.line(of: marker, in: "callchain.c")
            #expect((location.line ?? 0) > 0 && (location.line ?? 0) <= markLine, "\(function): \(location)")
        }
        // Sections do not overlap; an offset past a section's end is refused.
        let ranges = layout.sections.values.sorted { $0.lowerBound < $1.lowerBound }
        #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound <= $1.lowerBound })
        let inner = try #require(layout.sections[".text.inner"])
        #expect(layout.address(section: ".text.inner", offset: UInt64(inner.count)) == nil)
        #expect(layout.address(section: ".no-such-section", offset: 0) == nil)
    }

    @Test func anExecutableIsRefused() throws {
        let scratch = try DebugInfoScratch()
        let executable = try scratch.build("callchain.c", output: "callchain", flags: ["-g", "-O1"])
        #expect(throws: DebugInfoError.self) {
            try Symbolizer().addRelocatableModule(name: "callchain", hostPath: executable, base: 0x100_0000_0000)
        }
    }

    /// The image's test module, built with kbuild: its functions resolve to lv_leak_kmod.c.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: Self.kernelModule)))
    func theTestKernelModuleResolvesToItsSource() throws {
        let symbolizer = try Symbolizer()
        let layout = try symbolizer.addRelocatableModule(name: "lv_leak_kmod", hostPath: Self.kernelModule, base: 0x100_0000_0000)
        let symbols = try ELFFile(path: Self.kernelModule).symbolTable()
        for function in ["lv_kmod_block", "lv_leak_kmalloc", "lv_leak_chain"] {
            let offset = try #require(symbols.address(of: function))
            let pc = try #require(layout.address(section: ".text", offset: offset))
            let location = try #require(symbolizer.symbolize(pc: pc))
            #expect(location.function == function)
            #expect(location.file?.hasSuffix("lv_leak_kmod.c") == true && (location.line ?? 0) > 0, "\(location)")
        }
    }

    /// Code of the inline `kmalloc()` inside lv_leak_kmalloc, and of `kmalloc()` inlined into the
    /// inline `kzalloc()` inside lv_leak_kzalloc: the innermost line is in slab.h, the outer line
    /// is the module's allocating line (tags `LV-KALLOC kmalloc` / `kzalloc`), however deep the nest.
    @Test(.enabled(if: FileManager.default.fileExists(atPath: Self.kernelModule)), arguments: ["kmalloc", "kzalloc"])
    func inlinedAllocatorCodeNamesTheCallersLine(tag: String) throws {
        let symbolizer = try Symbolizer()
        let layout = try symbolizer.addRelocatableModule(name: "lv_leak_kmod", hostPath: Self.kernelModule, base: 0x100_0000_0000)
        let symbols = try ELFFile(path: Self.kernelModule).symbolTable()
        let start = try #require(symbols.address(of: "lv_leak_\(tag)"))
        let source = try String(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../guest-images/default/kmod/lv_leak_kmod.c").standardized, encoding: .utf8)
        let tagLine = try #require(source.split(separator: "\n", omittingEmptySubsequences: false)
            .firstIndex { $0.contains("/* LV-KALLOC \(tag) */") }) + 1
        var inlined = 0
        for offset in start..<(start + 0x40) {
            guard let pc = layout.address(section: ".text", offset: offset), let location = symbolizer.symbolize(pc: pc),
                  location.function == "lv_leak_\(tag)", location.isInline, location.inlinedFunction == "kmalloc" else { continue }
            inlined += 1
            #expect(location.file?.hasSuffix("slab.h") == true, "\(location)")
            #expect(location.outerLine == tagLine && location.outerFile?.hasSuffix("lv_leak_kmod.c") == true, "\(location)")
        }
        #expect(inlined > 0)
    }

    static var kernelModule: String {
        URL(fileURLWithPath: TestKernelImage.path).deletingLastPathComponent().appendingPathComponent("modules/lv_leak_kmod.ko").path
    }
}
