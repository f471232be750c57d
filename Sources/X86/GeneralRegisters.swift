/// The 64-bit general registers, instruction pointer and flags of a vCPU or a saved guest context.
public struct GeneralRegisters: Sendable, Equatable, Codable {
    public var rax: UInt64 = 0, rbx: UInt64 = 0, rcx: UInt64 = 0, rdx: UInt64 = 0
    public var rsi: UInt64 = 0, rdi: UInt64 = 0, rbp: UInt64 = 0, rsp: UInt64 = 0
    public var r8: UInt64 = 0, r9: UInt64 = 0, r10: UInt64 = 0, r11: UInt64 = 0
    public var r12: UInt64 = 0, r13: UInt64 = 0, r14: UInt64 = 0, r15: UInt64 = 0
    public var rip: UInt64 = 0, rflags: UInt64 = 0

    public init() {}

    /// The 16 general-purpose registers (not rip or rflags): what a conservative scan treats as roots.
    public var generalPurpose: [UInt64] {
        [rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8, r9, r10, r11, r12, r13, r14, r15]
    }
}
