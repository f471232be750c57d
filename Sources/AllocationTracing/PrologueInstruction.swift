/// One x86-64 instruction of the few kinds allocator functions start with, decoded so the monitor
/// can execute it in place of the `int3` that covers its first byte.
///
/// Only these encodings decode (any other bytes, including other prefixes, give nil):
/// `endbr64`; `nop` (`90`, `66 90`, `[66] 0f 1f /0`); `push r64` (`[REX] 50+r`);
/// `mov r64, r64` (`REX.W 89 /r`, `REX.W 8b /r`, register operands); `test r64, r64` /
/// `test r32, r32` (`[REX] 85 /r`, register operands); `cmp byte|dword [rip+disp32], imm8`
/// (`80 3d`, `83 3d`); `sub rsp, imm8|imm32` (`REX.W 83 ec`, `REX.W 81 ec`); and, for jemalloc,
/// tcmalloc and mimalloc: `cmp r64|r32, imm8|imm32` (`[REX] 83 /7`, `[REX] 81 /7`, register
/// operand), `xor r32|r64, r32|r64` (`[REX] 31 /r`, `[REX] 33 /r`, register operands),
/// `mov r64, [rip+disp32]` (`REX.W 8b /r`, mod 0, r/m 5), `mov r32, imm32` (`[REX.B] b8+r`),
/// `lea r64, [r64+disp8|disp32]` (`REX.W 8d /r`, mod 1 or 2, no SIB) and `jmp rel8|rel32`
/// (`eb`, `e9`).
/// REX bits the CPU ignores for an encoding are accepted.
public struct PrologueInstruction: Sendable, Equatable, CustomStringConvertible {
    /// What the instruction does.
    public enum Operation: Sendable, Equatable {
        /// `endbr64`: a no-op outside CET indirect-branch tracking.
        case endbr64
        /// Any of the accepted no-op encodings.
        case nop
        /// `push r64`: store the register at rsp − 8, then rsp −= 8.
        case push(GeneralRegisterName)
        /// `mov destination, source` on 64-bit registers.
        case move(destination: GeneralRegisterName, source: GeneralRegisterName)
        /// `test first, second` on 32- or 64-bit registers: flags of `first & second`.
        case test(GeneralRegisterName, GeneralRegisterName, width: OperandWidth)
        /// `cmp [rip + displacement], immediate` on a byte or dword; the immediate is sign-extended
        /// to the operand width and rip is the address of the next instruction.
        case compareRIPRelative(width: OperandWidth, displacement: Int32, immediate: Int8)
        /// `sub rsp, immediate` (sign-extended to 64 bits).
        case subtractFromStackPointer(Int64)
        /// `cmp register, immediate` on a 32- or 64-bit register (the immediate sign-extended).
        case compareRegister(GeneralRegisterName, immediate: Int32, width: OperandWidth)
        /// `xor destination, source` on 32- or 64-bit registers (a 32-bit result is zero-extended).
        case exclusiveOr(destination: GeneralRegisterName, source: GeneralRegisterName, width: OperandWidth)
        /// `mov destination, qword [rip + displacement]`, rip being the next instruction's address.
        case loadRIPRelative(destination: GeneralRegisterName, displacement: Int32)
        /// `jmp rel8|rel32`: to the next instruction's address plus the displacement.
        case jump(displacement: Int32)
        /// `mov r32, imm32`: the register gets the immediate, zero-extended.
        case moveImmediate(GeneralRegisterName, UInt32)
        /// `lea destination, [base + displacement]` (64-bit): no memory access, no flags.
        case loadEffectiveAddress(destination: GeneralRegisterName, base: GeneralRegisterName, displacement: Int32)
    }

    /// Operand size in bits.
    public enum OperandWidth: Int, Sendable {
        case byte = 8, dword = 32, qword = 64
    }

    public let operation: Operation
    /// The instruction's encoding; its count is the instruction's length.
    public let bytes: [UInt8]

    /// The length in bytes (1–9).
    public var length: Int { bytes.count }

    init(_ operation: Operation, bytes: ArraySlice<UInt8>) {
        self.operation = operation
        self.bytes = Array(bytes)
    }

    /// The instruction at the start of `bytes` (trailing bytes are ignored), or nil if `bytes`
    /// does not start with a complete instruction of the supported kinds.
    public static func decode(_ bytes: [UInt8]) -> PrologueInstruction? {
        PrologueDecoder(bytes).decode()
    }

    /// Intel syntax, such as `push r12` or `cmp byte ptr [rip+0x140e71], 0x0`.
    public var description: String {
        switch operation {
        case .endbr64: return "endbr64"
        case .nop: return "nop"
        case .push(let register): return "push \(register)"
        case .move(let destination, let source): return "mov \(destination), \(source)"
        case .test(let first, let second, let width):
            return "test \(Self.name(first, width)), \(Self.name(second, width))"
        case .compareRIPRelative(let width, let displacement, let immediate):
            let size = width == .byte ? "byte" : "dword"
            let value = UInt64(bitPattern: Int64(immediate)) & ArithmeticFlags.widthMask(width.rawValue)
            return "cmp \(size) ptr [rip\(Self.signedHex(displacement))], 0x\(String(value, radix: 16))"
        case .subtractFromStackPointer(let immediate):
            return "sub rsp, 0x\(String(UInt64(bitPattern: immediate), radix: 16))"
        case .compareRegister(let register, let immediate, let width):
            let value = UInt64(bitPattern: Int64(immediate)) & ArithmeticFlags.widthMask(width.rawValue)
            return "cmp \(Self.name(register, width)), 0x\(String(value, radix: 16))"
        case .exclusiveOr(let destination, let source, let width):
            return "xor \(Self.name(destination, width)), \(Self.name(source, width))"
        case .loadRIPRelative(let destination, let displacement):
            return "mov \(destination), qword ptr [rip\(Self.signedHex(displacement))]"
        case .jump(let displacement):
            return "jmp $\(Self.signedHex(displacement &+ Int32(length)))"
        case .moveImmediate(let register, let immediate):
            return "mov \(Self.name(register, .dword)), 0x\(String(immediate, radix: 16))"
        case .loadEffectiveAddress(let destination, let base, let displacement):
            return "lea \(destination), [\(base)\(Self.signedHex(displacement))]"
        }
    }

    private static func signedHex(_ value: Int32) -> String {
        value < 0 ? "-0x" + String(value.magnitude, radix: 16) : "+0x" + String(value, radix: 16)
    }

    private static func name(_ register: GeneralRegisterName, _ width: OperandWidth) -> String {
        guard width == .dword else { return register.description }
        let legacy = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"]
        return register.rawValue < 8 ? legacy[Int(register.rawValue)] : "\(register)d"
    }
}

/// Saved as its bytes and decoded again when read, so a saved instruction is one the decoder accepts.
extension PrologueInstruction: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let bytes = try container.decode([UInt8].self)
        guard let instruction = Self.decode(bytes), instruction.length == bytes.count else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a prologue instruction: \(bytes)")
        }
        self = instruction
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(bytes)
    }
}
