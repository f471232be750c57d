import AllocationLedger
import AllocationTracing
import BTF
import Foundation
import Introspection
import LeakAnalysis
import Testing

/// The default image's kernel as introspection sees it: kallsyms + BTF from the vmlinux file.
@Suite struct GuestKernelTests {
    @Test func loadsSymbolsAndLayoutsFromTheImage() throws {
        let kernel = try GuestKernel.load(vmlinux: TestKernelImage.path)
        #expect(kernel.symbols.count > 50_000)
        #expect(kernel.symbols.address(of: "init_task") != nil)
        #expect(kernel.symbols.perCPUOffset(of: "current_task") != nil)
        let layout = kernel.layout
        #expect(layout.ptRegs.size == 168)
        #expect(layout.ptRegs.offsets["ip"] == 128 && layout.ptRegs.offsets["sp"] == 152)
        #expect(layout.task.commLength == 16)
        #expect(layout.maple.range.pivotCount == 15 && layout.maple.range.slotCount == 16)
        #expect(layout.maple.arange.pivotCount == 9 && layout.maple.arange.slotCount == 10)
        #expect(layout.maple.typeLeaf64 == 1 && layout.maple.typeRange64 == 2 && layout.maple.typeArange64 == 3)
        // Symbolizing a link-time address inside a function names that function.
        let entry = try #require(kernel.symbols.address(of: "entry_SYSCALL_64"))
        let found = try #require(kernel.symbols.symbol(containing: entry + 5))
        #expect(found.symbol.name == "entry_SYSCALL_64" && found.offset == 5)
    }

    @Test func readsTheORCUnwindTables() throws {
        let kernel = try GuestKernel.load(vmlinux: TestKernelImage.path)
        let orc = try #require(kernel.orc)
        #expect(orc.count > 100_000)
        // Inside an ordinary C function: a call frame whose CFA is computed from SP.
        let schedule = try #require(kernel.symbols.address(of: "schedule"))
        let entry = try #require(orc.entry(for: schedule + 0x20))
        #expect(entry.kind == .call)
        #expect(entry.spOffset > 0 && entry.spOffset % 8 == 0)
        // Before the kernel's text there is no entry.
        #expect(orc.entry(for: 0xFFFF_FFFF_8000_0000) == nil)
    }

    @Test func aFileWithoutKernelSegmentsIsATypedError() throws {
        #expect(throws: IntrospectionError.self) { try GuestKernel.load(vmlinux: "/bin/true") }
        #expect(throws: IntrospectionError.self) { try GuestKernel.load(vmlinux: "/nonexistent/vmlinux") }
    }
}

/// `--kernel-symbols`: a System.map replaces kallsyms; Debian's stub System.map is refused.
@Suite struct KernelSymbolFileTests {
    func write(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("lv-systemmap-\(UUID().uuidString)").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test func aFullSystemMapIsUsed() throws {
        var text = "0000000000000000 D fixed_percpu_data\n000000000001fb80 D current_task\n"
        for i in 0..<2000 { text += String(format: "ffffffff81%06x T function_%d\n", i * 16, i) }
        text += "ffffffff81c00080 T entry_SYSCALL_64\n"
        let path = try write(text)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let kernel = try GuestKernel.load(vmlinux: TestKernelImage.path, symbolFile: path)
        #expect(kernel.symbols.address(of: "entry_SYSCALL_64") == 0xFFFF_FFFF_81C0_0080)
        #expect(kernel.symbols.perCPUOffset(of: "current_task") == 0x1FB80)
        #expect(kernel.symbols.symbol(containing: 0xFFFF_FFFF_8100_0013)?.symbol.name == "function_1")
        #expect(kernel.debugFile == nil)
    }

    @Test func debiansStubSystemMapIsRefused() throws {
        let path = try write("ffffffffffffffff B The real System.map is in the linux-image-<version>-dbg package\n")
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: IntrospectionError.self) { try GuestKernel.load(vmlinux: TestKernelImage.path, symbolFile: path) }
    }
}
