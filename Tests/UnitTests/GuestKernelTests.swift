import Introspection
import Testing

/// The default image's kernel as introspection sees it: kallsyms + BTF from the vmlinux file.
@Suite struct GuestKernelTests {
    @Test func loadsSymbolsAndLayoutsFromTheImage() throws {
        let kernel = try GuestKernel.load(vmlinux: TestKernelImage.path)
        #expect(kernel.symbols.count > 50_000)
        #expect(kernel.symbols.address(of: "init_task") != nil)
        #expect(kernel.symbols.perCPU["current_task"] != nil)
        let layout = kernel.layout
        #expect(layout.ptRegs.size == 168)
        #expect(layout.ptRegs.offsets["ip"] == 128 && layout.ptRegs.offsets["sp"] == 152)
        #expect(layout.task.commLength == 16)
        #expect(layout.maple.rangePivotCount == 15 && layout.maple.rangeSlotCount == 16)
        #expect(layout.maple.arangePivotCount == 9 && layout.maple.arangeSlotCount == 10)
        #expect(layout.maple.typeLeaf64 == 1 && layout.maple.typeRange64 == 2 && layout.maple.typeArange64 == 3)
        // Symbolizing a link-time address inside a function names that function.
        let entry = try #require(kernel.symbols.address(of: "entry_SYSCALL_64"))
        let found = try #require(kernel.symbols.symbol(containing: entry + 5))
        #expect(found.symbol.name == "entry_SYSCALL_64" && found.offset == 5)
    }

    @Test func aFileWithoutKernelSegmentsIsATypedError() throws {
        #expect(throws: IntrospectionError.self) { try GuestKernel.load(vmlinux: "/bin/true") }
        #expect(throws: IntrospectionError.self) { try GuestKernel.load(vmlinux: "/nonexistent/vmlinux") }
    }
}
