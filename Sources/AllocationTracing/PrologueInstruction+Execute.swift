import AllocationLedger
import Introspection
import X86

extension PrologueInstruction {
    /// Executes the instruction as the CPU would in 64-bit user mode: `registers.rip` is the
    /// instruction's address on entry and the next instruction's (or the jump's target) on return;
    /// `test`, `xor`, `cmp` and `sub` set CF, PF, AF, ZF, SF and OF and leave the other RFLAGS bits
    /// unchanged (`test` and `xor` clear AF, which the architecture leaves undefined). Memory is addressed by user virtual address. No
    /// debug trap is raised for a set TF, as the CPU would after the instruction.
    ///
    /// Errors from `readMemory` or `writeMemory` propagate, and a read returning fewer bytes than
    /// asked throws `AllocationTrackingError.shortMemoryRead`; `registers` is then unchanged.
    public func execute(
        _ registers: inout GeneralRegisters,
        readMemory: (UInt64, Int) throws -> [UInt8],
        writeMemory: (UInt64, [UInt8]) throws -> Void
    ) throws {
        var next = registers
        next.rip = registers.rip &+ UInt64(length)
        switch operation {
        case .endbr64, .nop:
            break
        case .push(let register):
            let value = register.value(in: registers)  // push rsp stores rsp before the decrement
            let top = registers.rsp &- 8
            try writeMemory(top, (0..<8).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) })
            next.rsp = top
        case .move(let destination, let source):
            destination.set(source.value(in: registers), in: &next)
        case .test(let first, let second, let width):
            let flags = ArithmeticFlags.logical(first.value(in: registers) & second.value(in: registers), width: width.rawValue)
            next.rflags = flags.applied(to: registers.rflags)
        case .compareRIPRelative(let width, let displacement, let immediate):
            let value = try Self.readValue(at: next.rip &+ UInt64(bitPattern: Int64(displacement)), count: width.rawValue / 8, readMemory)
            let operand = UInt64(bitPattern: Int64(immediate)) & ArithmeticFlags.widthMask(width.rawValue)
            let flags = ArithmeticFlags.subtraction(value, operand, width: width.rawValue).flags
            next.rflags = flags.applied(to: registers.rflags)
        case .subtractFromStackPointer(let immediate):
            let (result, flags) = ArithmeticFlags.subtraction(registers.rsp, UInt64(bitPattern: immediate), width: 64)
            next.rsp = result
            next.rflags = flags.applied(to: registers.rflags)
        case .compareRegister(let register, let immediate, let width):
            let mask = ArithmeticFlags.widthMask(width.rawValue)
            let operand = UInt64(bitPattern: Int64(immediate)) & mask
            let flags = ArithmeticFlags.subtraction(register.value(in: registers) & mask, operand, width: width.rawValue).flags
            next.rflags = flags.applied(to: registers.rflags)
        case .exclusiveOr(let destination, let source, let width):
            let result = (destination.value(in: registers) ^ source.value(in: registers)) & ArithmeticFlags.widthMask(width.rawValue)
            destination.set(result, in: &next)   // a 32-bit result clears the upper half
            next.rflags = ArithmeticFlags.logical(result, width: width.rawValue).applied(to: registers.rflags)
        case .loadRIPRelative(let destination, let displacement):
            destination.set(try Self.readValue(at: next.rip &+ UInt64(bitPattern: Int64(displacement)), count: 8, readMemory), in: &next)
        case .jump(let displacement):
            next.rip = next.rip &+ UInt64(bitPattern: Int64(displacement))
        case .moveImmediate(let register, let immediate):
            register.set(UInt64(immediate), in: &next)
        case .loadEffectiveAddress(let destination, let base, let displacement):
            destination.set(base.value(in: registers) &+ UInt64(bitPattern: Int64(displacement)), in: &next)
        }
        registers = next
    }

    /// The `count` bytes at `address` as a little-endian value; a short read throws
    /// `AllocationTrackingError.shortMemoryRead`.
    private static func readValue(at address: UInt64, count: Int, _ readMemory: (UInt64, Int) throws -> [UInt8]) throws -> UInt64 {
        let data = try readMemory(address, count)
        guard data.count == count else {
            throw AllocationTrackingError.shortMemoryRead(address: address, requested: count, received: data.count)
        }
        return data.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) }
    }
}
