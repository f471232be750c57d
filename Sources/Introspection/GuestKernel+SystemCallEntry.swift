import X86

extension GuestKernel {
    /// IA32_LSTAR as this kernel sets it, worked out from the run-time address of its #BP handler
    /// (`asm_exc_int3`, read from the IDT): both move by the same KASLR slide. For backends that
    /// cannot read MSRs (a gdbstub). Nil when the image lacks either symbol or the slide is not
    /// page-aligned (another kernel runs).
    public func systemCallEntry(breakpointHandler: UInt64) -> UInt64? {
        guard let handler = symbols.address(of: "asm_exc_int3"), let entry = symbols.address(of: "entry_SYSCALL_64") else { return nil }
        let slide = breakpointHandler &- handler
        guard slide & 0xFFF == 0 else { return nil }
        return entry &+ slide
    }
}
