import Introspection
import X86

/// One of the sixteen 64-bit general registers, numbered as x86-64 encodes them (ModRM/REX).
public enum GeneralRegisterName: UInt8, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case rax, rcx, rdx, rbx, rsp, rbp, rsi, rdi
    case r8, r9, r10, r11, r12, r13, r14, r15

    /// The register with encoding `number` (0–15), or nil.
    public init?(number: UInt8) { self.init(rawValue: number) }

    /// The AT&T/Intel name without a sigil: `rax`, …, `r15`.
    public var description: String {
        switch self {
        case .rax: "rax"
        case .rcx: "rcx"
        case .rdx: "rdx"
        case .rbx: "rbx"
        case .rsp: "rsp"
        case .rbp: "rbp"
        case .rsi: "rsi"
        case .rdi: "rdi"
        case .r8: "r8"
        case .r9: "r9"
        case .r10: "r10"
        case .r11: "r11"
        case .r12: "r12"
        case .r13: "r13"
        case .r14: "r14"
        case .r15: "r15"
        }
    }

    /// The register's value in `registers`.
    public func value(in registers: GeneralRegisters) -> UInt64 {
        switch self {
        case .rax: registers.rax
        case .rcx: registers.rcx
        case .rdx: registers.rdx
        case .rbx: registers.rbx
        case .rsp: registers.rsp
        case .rbp: registers.rbp
        case .rsi: registers.rsi
        case .rdi: registers.rdi
        case .r8: registers.r8
        case .r9: registers.r9
        case .r10: registers.r10
        case .r11: registers.r11
        case .r12: registers.r12
        case .r13: registers.r13
        case .r14: registers.r14
        case .r15: registers.r15
        }
    }

    /// Stores `value` into this register of `registers`.
    public func set(_ value: UInt64, in registers: inout GeneralRegisters) {
        switch self {
        case .rax: registers.rax = value
        case .rcx: registers.rcx = value
        case .rdx: registers.rdx = value
        case .rbx: registers.rbx = value
        case .rsp: registers.rsp = value
        case .rbp: registers.rbp = value
        case .rsi: registers.rsi = value
        case .rdi: registers.rdi = value
        case .r8: registers.r8 = value
        case .r9: registers.r9 = value
        case .r10: registers.r10 = value
        case .r11: registers.r11 = value
        case .r12: registers.r12 = value
        case .r13: registers.r13 = value
        case .r14: registers.r14 = value
        case .r15: registers.r15 = value
        }
    }
}
