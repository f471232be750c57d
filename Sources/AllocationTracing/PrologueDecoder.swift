/// Decodes the encodings `PrologueInstruction` supports from untrusted bytes; every access is
/// bounds-checked, so any input yields an instruction or nil.
struct PrologueDecoder {
    private let bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    private func byte(_ index: Int) -> UInt8? { index < bytes.count ? bytes[index] : nil }

    private func instruction(_ operation: PrologueInstruction.Operation, length: Int) -> PrologueInstruction? {
        guard length <= bytes.count else { return nil }
        return PrologueInstruction(operation, bytes: bytes[0..<length])
    }

    func decode() -> PrologueInstruction? {
        guard let first = byte(0) else { return nil }
        switch first {
        case 0xF3:
            guard byte(1) == 0x0F, byte(2) == 0x1E, byte(3) == 0xFA else { return nil }
            return instruction(.endbr64, length: 4)
        case 0x90:
            return instruction(.nop, length: 1)
        case 0xEB:
            guard let displacement = byte(1) else { return nil }
            return instruction(.jump(displacement: Int32(Int8(bitPattern: displacement))), length: 2)
        case 0xE9:
            guard let displacement = int32(at: 1) else { return nil }
            return instruction(.jump(displacement: displacement), length: 5)
        case 0x66:
            if byte(1) == 0x90 { return instruction(.nop, length: 2) }
            return multiByteNop(at: 1)
        case 0x0F:
            return multiByteNop(at: 0)
        case 0x40...0x4F:
            return withOpcode(at: 1, rex: first)
        default:
            return withOpcode(at: 0, rex: nil)
        }
    }

    /// `0f 1f /0` at `start` with its ModRM, SIB and displacement.
    private func multiByteNop(at start: Int) -> PrologueInstruction? {
        guard byte(start) == 0x0F, byte(start + 1) == 0x1F, let modrm = byte(start + 2), (modrm >> 3) & 7 == 0 else {
            return nil
        }
        let mod = modrm >> 6
        let rm = modrm & 7
        var length = start + 3
        if mod != 3, rm == 4 {  // SIB
            guard let sib = byte(length) else { return nil }
            length += 1
            if mod == 0, sib & 7 == 5 { length += 4 }  // no base: disp32
        }
        switch mod {
        case 0 where rm == 5: length += 4  // rip + disp32
        case 1: length += 1
        case 2: length += 4
        default: break
        }
        return instruction(.nop, length: length)
    }

    /// The instruction whose opcode is at `index`, after an optional REX prefix.
    private func withOpcode(at index: Int, rex: UInt8?) -> PrologueInstruction? {
        guard let opcode = byte(index) else { return nil }
        let prefix = rex ?? 0
        let wide = prefix & 0x8 != 0
        let extendReg = (prefix >> 2) & 1
        let extendRM = prefix & 1
        switch opcode {
        case 0xB8...0xBF where !wide:
            guard let register = GeneralRegisterName(number: (opcode - 0xB8) | extendRM << 3), let immediate = int32(at: index + 1) else { return nil }
            return instruction(.moveImmediate(register, UInt32(bitPattern: immediate)), length: index + 5)
        case 0x8D where wide:
            // lea r64, [base + disp8|disp32], no SIB (r/m 4) and no rip-relative form
            guard let modrm = byte(index + 1), modrm >> 6 == 1 || modrm >> 6 == 2, modrm & 7 != 4,
                  let destination = GeneralRegisterName(number: (modrm >> 3) & 7 | extendReg << 3),
                  let base = GeneralRegisterName(number: modrm & 7 | extendRM << 3) else { return nil }
            if modrm >> 6 == 1 {
                guard let displacement = byte(index + 2) else { return nil }
                return instruction(.loadEffectiveAddress(destination: destination, base: base, displacement: Int32(Int8(bitPattern: displacement))),
                                   length: index + 3)
            }
            guard let displacement = int32(at: index + 2) else { return nil }
            return instruction(.loadEffectiveAddress(destination: destination, base: base, displacement: displacement), length: index + 6)
        case 0x50...0x57:
            guard let register = GeneralRegisterName(number: (opcode - 0x50) | extendRM << 3) else { return nil }
            return instruction(.push(register), length: index + 1)
        case 0x8B where wide && byte(index + 1).map({ $0 >> 6 == 0 && $0 & 7 == 5 }) == true:
            // mov r64, [rip + disp32]
            guard let modrm = byte(index + 1), let destination = GeneralRegisterName(number: (modrm >> 3) & 7 | extendReg << 3),
                  let displacement = int32(at: index + 2) else { return nil }
            return instruction(.loadRIPRelative(destination: destination, displacement: displacement), length: index + 6)
        case 0x31, 0x33:
            guard let modrm = byte(index + 1), modrm >> 6 == 3,
                  let reg = GeneralRegisterName(number: (modrm >> 3) & 7 | extendReg << 3),
                  let rm = GeneralRegisterName(number: modrm & 7 | extendRM << 3) else { return nil }
            let width: PrologueInstruction.OperandWidth = wide ? .qword : .dword
            let (destination, source) = opcode == 0x31 ? (rm, reg) : (reg, rm)
            return instruction(.exclusiveOr(destination: destination, source: source, width: width), length: index + 2)
        case 0x81 where byte(index + 1).map({ $0 >> 6 == 3 && ($0 >> 3) & 7 == 7 }) == true,
             0x83 where byte(index + 1).map({ $0 >> 6 == 3 && ($0 >> 3) & 7 == 7 }) == true:
            // cmp r/m, imm32 | imm8 with a register operand
            guard let modrm = byte(index + 1), let register = GeneralRegisterName(number: modrm & 7 | extendRM << 3) else { return nil }
            let width: PrologueInstruction.OperandWidth = wide ? .qword : .dword
            if opcode == 0x83 {
                guard let immediate = byte(index + 2) else { return nil }
                return instruction(.compareRegister(register, immediate: Int32(Int8(bitPattern: immediate)), width: width), length: index + 3)
            }
            guard let immediate = int32(at: index + 2) else { return nil }
            return instruction(.compareRegister(register, immediate: immediate, width: width), length: index + 6)
        case 0x89, 0x8B, 0x85:
            guard let modrm = byte(index + 1), modrm >> 6 == 3,
                let reg = GeneralRegisterName(number: (modrm >> 3) & 7 | extendReg << 3),
                let rm = GeneralRegisterName(number: modrm & 7 | extendRM << 3)
            else { return nil }
            switch opcode {
            case 0x89:
                guard wide else { return nil }
                return instruction(.move(destination: rm, source: reg), length: index + 2)
            case 0x8B:
                guard wide else { return nil }
                return instruction(.move(destination: reg, source: rm), length: index + 2)
            default:
                return instruction(.test(rm, reg, width: wide ? .qword : .dword), length: index + 2)
            }
        case 0x80 where rex == nil && byte(index + 1) == 0x3D, 0x83 where rex == nil && byte(index + 1) == 0x3D:
            guard let displacement = int32(at: index + 2), let immediate = byte(index + 6) else { return nil }
            let width: PrologueInstruction.OperandWidth = opcode == 0x80 ? .byte : .dword
            return instruction(
                .compareRIPRelative(width: width, displacement: displacement, immediate: Int8(bitPattern: immediate)),
                length: index + 7)
        case 0x83 where wide && extendRM == 0 && byte(index + 1) == 0xEC:
            guard let immediate = byte(index + 2) else { return nil }
            return instruction(.subtractFromStackPointer(Int64(Int8(bitPattern: immediate))), length: index + 3)
        case 0x81 where wide && extendRM == 0 && byte(index + 1) == 0xEC:
            guard let immediate = int32(at: index + 2) else { return nil }
            return instruction(.subtractFromStackPointer(Int64(immediate)), length: index + 6)
        default:
            return nil
        }
    }

    /// The little-endian 32-bit signed value at `index`, if all four bytes are present.
    private func int32(at index: Int) -> Int32? {
        guard index >= 0, index + 4 <= bytes.count else { return nil }
        var value: UInt32 = 0
        for offset in 0..<4 { value |= UInt32(bytes[index + offset]) << (8 * offset) }
        return Int32(bitPattern: value)
    }
}
