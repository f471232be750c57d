import AllocationLedger
import AllocationTracing
import Foundation
import GuestInterface
import Introspection
import LeakAnalysis
import Testing
import X86

/// RFLAGS status bits, as the CPU lays them out.
private enum Flag {
    static let cf: UInt64 = 1 << 0, pf: UInt64 = 1 << 2, af: UInt64 = 1 << 4
    static let zf: UInt64 = 1 << 6, sf: UInt64 = 1 << 7, of: UInt64 = 1 << 11
    static let status: UInt64 = cf | pf | af | zf | sf | of
    /// IF, the reserved bit 1 and DF: bits the emulator must leave alone.
    static let others: UInt64 = 0x202 | 1 << 10
}

/// A flat little guest memory for the emulator's callbacks, recording what it was asked.
private final class TestMemory {
    var bytes: [UInt64: UInt8] = [:]
    var reads: [(UInt64, Int)] = []
    var writes: [(UInt64, [UInt8])] = []
    var failWrites = false
    var shortReads = false

    struct Fault: Error, Equatable { let address: UInt64 }

    func read(_ address: UInt64, _ count: Int) throws -> [UInt8] {
        reads.append((address, count))
        let all = (0..<count).map { bytes[address &+ UInt64($0)] ?? 0 }
        return shortReads ? Array(all.dropLast()) : all
    }

    func write(_ address: UInt64, _ data: [UInt8]) throws {
        if failWrites { throw Fault(address: address) }
        writes.append((address, data))
        for (index, byte) in data.enumerated() { bytes[address &+ UInt64(index)] = byte }
    }

    func store(_ data: [UInt8], at address: UInt64) {
        for (index, byte) in data.enumerated() { bytes[address &+ UInt64(index)] = byte }
    }
}

private func decoded(_ bytes: [UInt8]) throws -> PrologueInstruction {
    try #require(PrologueInstruction.decode(bytes), "\(bytes) should decode")
}

/// Runs `bytes` at `rip` with `registers` and `memory`; returns the registers afterwards.
private func run(_ bytes: [UInt8], _ registers: GeneralRegisters, memory: TestMemory = TestMemory()) throws
    -> GeneralRegisters
{
    var state = registers
    try decoded(bytes).execute(&state, readMemory: memory.read, writeMemory: memory.write)
    return state
}

private func registers(rip: UInt64 = 0x7F12_3450_0930, rflags: UInt64 = Flag.others, _ set: (inout GeneralRegisters) -> Void = { _ in })
    -> GeneralRegisters
{
    var state = GeneralRegisters()
    state.rip = rip
    state.rflags = rflags
    state.rsp = 0x7FFC_0000_1000
    set(&state)
    return state
}

@Suite struct PrologueInstructionTests {
    // MARK: Decoding

    /// Every supported encoding: operation, length and Intel rendering.
    @Test(arguments: [
        ([0xF3, 0x0F, 0x1E, 0xFA], "endbr64"),
        ([0x90], "nop"),
        ([0x66, 0x90], "nop"),
        ([0x0F, 0x1F, 0x00], "nop"),
        ([0x0F, 0x1F, 0xC0], "nop"),
        ([0x0F, 0x1F, 0x40, 0x00], "nop"),
        ([0x0F, 0x1F, 0x44, 0x00, 0x00], "nop"),
        ([0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00], "nop"),
        ([0x0F, 0x1F, 0x05, 0x01, 0x02, 0x03, 0x04], "nop"),
        ([0x0F, 0x1F, 0x80, 0x00, 0x00, 0x00, 0x00], "nop"),
        ([0x0F, 0x1F, 0x04, 0x25, 0x00, 0x00, 0x00, 0x00], "nop"),
        ([0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00], "nop"),
        ([0x66, 0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00], "nop"),
        ([0x50], "push rax"),
        ([0x54], "push rsp"),
        ([0x55], "push rbp"),
        ([0x53], "push rbx"),
        ([0x48, 0x50], "push rax"),
        ([0x41, 0x54], "push r12"),
        ([0x41, 0x55], "push r13"),
        ([0x41, 0x57], "push r15"),
        ([0x41, 0x50], "push r8"),
        ([0x48, 0x89, 0xF0], "mov rax, rsi"),
        ([0x48, 0x89, 0xFD], "mov rbp, rdi"),
        ([0x48, 0x89, 0xE5], "mov rbp, rsp"),
        ([0x48, 0x8B, 0xEC], "mov rbp, rsp"),
        ([0x4C, 0x89, 0xE7], "mov rdi, r12"),
        ([0x49, 0x89, 0xFC], "mov r12, rdi"),
        ([0x4D, 0x89, 0xC8], "mov r8, r9"),
        ([0x4C, 0x8B, 0xC7], "mov r8, rdi"),
        ([0x49, 0x8B, 0xC7], "mov rax, r15"),
        ([0x48, 0x85, 0xFF], "test rdi, rdi"),
        ([0x48, 0x85, 0xF7], "test rdi, rsi"),
        ([0x4D, 0x85, 0xE4], "test r12, r12"),
        ([0x85, 0xFF], "test edi, edi"),
        ([0x45, 0x85, 0xC0], "test r8d, r8d"),
        ([0x80, 0x3D, 0x71, 0x0E, 0x14, 0x00, 0x00], "cmp byte ptr [rip+0x140e71], 0x0"),
        ([0x80, 0x3D, 0xF0, 0xFF, 0xFF, 0xFF, 0x7F], "cmp byte ptr [rip-0x10], 0x7f"),
        ([0x83, 0x3D, 0x10, 0x00, 0x00, 0x00, 0xFF], "cmp dword ptr [rip+0x10], 0xffffffff"),
        ([0x48, 0x83, 0xEC, 0x18], "sub rsp, 0x18"),
        ([0x48, 0x81, 0xEC, 0x00, 0x01, 0x00, 0x00], "sub rsp, 0x100"),
    ] as [([UInt8], String)])
    func decodesSupportedEncodings(bytes: [UInt8], text: String) throws {
        let instruction = try decoded(bytes + [0xCC, 0xC3])  // trailing bytes are not part of it
        #expect(instruction.length == bytes.count)
        #expect(instruction.bytes == bytes)
        #expect(instruction.description == text)
    }

    @Test func decodedOperationsCarryTheirOperands() throws {
        #expect(try decoded([0x41, 0x54]).operation == .push(.r12))
        #expect(try decoded([0x48, 0x89, 0xF0]).operation == .move(destination: .rax, source: .rsi))
        #expect(try decoded([0x48, 0x85, 0xFF]).operation == .test(.rdi, .rdi, width: .qword))
        #expect(try decoded([0x85, 0xFF]).operation == .test(.rdi, .rdi, width: .dword))
        #expect(
            try decoded([0x80, 0x3D, 0x71, 0x0E, 0x14, 0x00, 0x00]).operation
                == .compareRIPRelative(width: .byte, displacement: 0x140E71, immediate: 0))
        #expect(
            try decoded([0x83, 0x3D, 0xFC, 0xFF, 0xFF, 0xFF, 0x80]).operation
                == .compareRIPRelative(width: .dword, displacement: -4, immediate: -128))
        #expect(try decoded([0x48, 0x83, 0xEC, 0xF8]).operation == .subtractFromStackPointer(-8))
        #expect(try decoded([0x48, 0x81, 0xEC, 0x00, 0x00, 0x00, 0x80]).operation == .subtractFromStackPointer(-0x8000_0000))
    }

    /// Encodings outside the supported set, including near misses of supported ones.
    @Test(arguments: [
        [0xE8, 0x00, 0x00, 0x00, 0x00],  // call rel32
        [0x48, 0x8B, 0x04, 0x24],  // mov rax, [rsp]: memory operand through a SIB
        [0x48, 0x89, 0x45, 0xF8],  // mov [rbp-8], rax
        [0x48, 0x85, 0x07],  // test [rdi], rax
        [0x89, 0xE5],  // mov ebp, esp: 32-bit mov
        [0x8B, 0xEC],
        [0x41, 0x90],  // xchg r8, rax
        [0x48, 0x90],
        [0xF3, 0x90],  // pause
        [0xF3, 0x0F, 0x1E, 0xFB],  // endbr32
        [0x0F, 0x1F, 0x48, 0x00],  // 0f 1f /1
        [0x2E, 0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],  // cs-prefixed nop
        [0x66, 0x66, 0x90],
        [0x66, 0x50],  // push ax
        [0x40, 0x48, 0x50],  // two REX prefixes
        [0x48, 0x80, 0x3D, 0, 0, 0, 0, 0],  // REX on cmp
        [0x48, 0x83, 0x3D, 0, 0, 0, 0, 0],  // cmp qword
        [0x81, 0x3D, 0, 0, 0, 0, 0, 0, 0, 0],  // cmp dword, imm32
        [0x80, 0x3C, 0x25, 0, 0, 0, 0, 0],  // cmp byte [abs32]
        [0x80, 0x7D, 0x00, 0x00],  // cmp byte [rbp+0]
        [0x49, 0x83, 0xEC, 0x08],  // sub r12, 8
        [0x48, 0x83, 0xED, 0x08],  // sub rbp, 8
        [0x83, 0xEC, 0x08],  // sub esp, 8
        [0x48, 0x83, 0xC4, 0x08],  // add rsp, 8
        [0xC3], [0xCC], [0x0F, 0x05], [0x31, 0x00], [0x53 - 0x10],
    ] as [[UInt8]])
    func rejectsUnsupportedEncodings(bytes: [UInt8]) {
        #expect(PrologueInstruction.decode(bytes) == nil)
        #expect(PrologueInstruction.decode(bytes + [UInt8](repeating: 0, count: 12)) == nil)
    }

    /// Every proper prefix of a supported encoding is incomplete.
    @Test func truncatedEncodingsDoNotDecode() {
        let encodings: [[UInt8]] = [
            [0xF3, 0x0F, 0x1E, 0xFA], [0x66, 0x90], [0x41, 0x54], [0x48, 0x89, 0xF0], [0x85, 0xFF],
            [0x80, 0x3D, 0x71, 0x0E, 0x14, 0x00, 0x00], [0x83, 0x3D, 0, 0, 0, 0, 0],
            [0x48, 0x83, 0xEC, 0x18], [0x48, 0x81, 0xEC, 0, 1, 0, 0],
            [0x66, 0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00], [0x0F, 0x1F, 0x04, 0x25, 0, 0, 0, 0],
        ]
        for encoding in encodings {
            #expect(PrologueInstruction.decode(encoding) != nil)
            for length in 0..<encoding.count {
                #expect(PrologueInstruction.decode(Array(encoding.prefix(length))) == nil, "\(encoding.prefix(length))")
            }
        }
    }

    /// Hostile input: all one- and two-byte strings, every third byte after the opcodes that take
    /// operands, and seeded random strings of 0–20 bytes. Whatever decodes is a prefix of its
    /// input and decodes to itself.
    @Test func decodingArbitraryBytesNeverCrashes() {
        func check(_ bytes: [UInt8]) {
            guard let instruction = PrologueInstruction.decode(bytes) else { return }
            #expect((1...15).contains(instruction.length))
            #expect(instruction.bytes == Array(bytes.prefix(instruction.length)))
            #expect(PrologueInstruction.decode(instruction.bytes) == instruction)
            _ = instruction.description
        }
        check([])
        for a in 0...255 {
            check([UInt8(a)])
            for b in 0...255 {
                check([UInt8(a), UInt8(b)])
            }
        }
        for prefix in [[0x66, 0x0F], [0x0F, 0x1F], [0x48, 0x89], [0x48, 0x8B], [0x48, 0x85], [0x48, 0x83], [0x80, 0x3D]]
            as [[UInt8]]
        {
            for c in 0...255 { check(prefix + [UInt8(c)]) }
        }
        var generator = DeterministicRandom(seed: 0x1EA4_7150)
        for _ in 0..<200_000 {
            let count = Int(generator.next() % 21)
            check((0..<count).map { _ in UInt8(truncatingIfNeeded: generator.next()) })
        }
    }

    // MARK: Execution

    @Test func pushStoresTheRegisterLittleEndianBelowTheStackPointer() throws {
        let memory = TestMemory()
        let before = registers { $0.r12 = 0x1122_3344_5566_7788 }
        let after = try run([0x41, 0x54], before, memory: memory)
        #expect(memory.writes.count == 1)
        #expect(memory.writes.first?.0 == 0x7FFC_0000_0FF8)
        #expect(memory.writes.first?.1 == [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11])
        var expected = before
        expected.rsp = 0x7FFC_0000_0FF8
        expected.rip = before.rip + 2
        #expect(after == expected)
    }

    @Test func pushSelectsEveryRegisterWithAndWithoutREXB() throws {
        for number in 0..<16 {
            let register = try #require(GeneralRegisterName(number: UInt8(number)))
            let encoding: [UInt8] = number < 8 ? [0x50 + UInt8(number)] : [0x41, 0x50 + UInt8(number - 8)]
            let memory = TestMemory()
            var before = registers()
            for other in GeneralRegisterName.allCases where other != .rsp {
                other.set(0xAB00 + UInt64(other.rawValue), in: &before)
            }
            let after = try run(encoding, before, memory: memory)
            let pushed = register == .rsp ? before.rsp : 0xAB00 + UInt64(number)  // push rsp: the old value
            #expect(memory.writes.first?.1 == (0..<8).map { UInt8(truncatingIfNeeded: pushed >> (8 * $0)) }, "\(register)")
            #expect(after.rsp == before.rsp - 8)
            #expect(after.rip == before.rip + UInt64(encoding.count))
        }
    }

    @Test func pushWhoseWriteFailsPropagatesAndLeavesRegisters() throws {
        let memory = TestMemory()
        memory.failWrites = true
        let instruction = try decoded([0x55])
        var state = registers { $0.rbp = 5 }
        let before = state
        #expect(throws: TestMemory.Fault(address: 0x7FFC_0000_0FF8)) {
            try instruction.execute(&state, readMemory: memory.read, writeMemory: memory.write)
        }
        #expect(state == before)
    }

    @Test func moveCopiesBetweenRegistersOnly() throws {
        let before = registers { $0.rsi = 0xDEAD_BEEF_0000_0001; $0.rax = 7; $0.rflags = Flag.others | Flag.zf }
        let memory = TestMemory()
        let after = try run([0x48, 0x89, 0xF0], before, memory: memory)
        var expected = before
        expected.rax = 0xDEAD_BEEF_0000_0001
        expected.rip += 3
        #expect(after == expected)
        #expect(memory.reads.isEmpty && memory.writes.isEmpty)
        #expect(try run([0x4C, 0x89, 0xE7], registers { $0.r12 = 42 }).rdi == 42)
        #expect(try run([0x49, 0x8B, 0xC7], registers { $0.r15 = 43 }).rax == 43)
    }

    @Test func endbr64AndNopsOnlyAdvanceRIP() throws {
        for bytes: [UInt8] in [[0xF3, 0x0F, 0x1E, 0xFA], [0x90], [0x66, 0x90], [0x0F, 0x1F, 0x44, 0x00, 0x00]] {
            let before = registers { $0.rflags = Flag.others | Flag.status }
            var expected = before
            expected.rip += UInt64(bytes.count)
            #expect(try run(bytes, before) == expected)
        }
    }

    @Test func testOfRegistersSetsFlagsExactly() throws {
        let all = Flag.others | Flag.status
        func flags(_ bytes: [UInt8], _ set: @escaping (inout GeneralRegisters) -> Void) throws -> UInt64 {
            let after = try run(bytes, registers(rflags: all, set))
            #expect(after.rflags & Flag.others == Flag.others)
            return after.rflags & Flag.status
        }
        // test rdi, rdi
        #expect(try flags([0x48, 0x85, 0xFF]) { $0.rdi = 0 } == Flag.zf | Flag.pf)
        #expect(try flags([0x48, 0x85, 0xFF]) { $0.rdi = 0x80 } == 0)  // one bit set: odd parity
        #expect(try flags([0x48, 0x85, 0xFF]) { $0.rdi = 0x8000_0000_0000_0003 } == Flag.sf | Flag.pf)
        #expect(try flags([0x48, 0x85, 0xFF]) { $0.rdi = 0x5555_0000_0000 } == Flag.pf)  // low byte 0
        // test edi, edi: only the low 32 bits count.
        #expect(try flags([0x85, 0xFF]) { $0.rdi = 0x1_0000_0000 } == Flag.zf | Flag.pf)
        #expect(try flags([0x85, 0xFF]) { $0.rdi = 0x8000_0000 } == Flag.sf | Flag.pf)
        // test rdi, rsi: flags of the AND.
        #expect(try flags([0x48, 0x85, 0xF7]) { $0.rdi = 0xF0; $0.rsi = 0x0F } == Flag.zf | Flag.pf)
        // test leaves the operands alone.
        let after = try run([0x48, 0x85, 0xF7], registers { $0.rdi = 0xF0; $0.rsi = 0x0F })
        #expect(after.rdi == 0xF0 && after.rsi == 0x0F)
    }

    @Test func compareByteAtRIPRelativeAddressSetsFlagsExactly() throws {
        let instruction: [UInt8] = [0x80, 0x3D, 0x71, 0x0E, 0x14, 0x00]  // + immediate
        let rip: UInt64 = 0x7F12_3450_9610
        let target = rip + 7 + 0x140E71  // rip of the next instruction + displacement
        func flags(memory value: UInt8, immediate: UInt8) throws -> UInt64 {
            let memory = TestMemory()
            memory.store([value], at: target)
            let before = registers(rip: rip, rflags: Flag.others | Flag.status)
            let after = try run(instruction + [immediate], before, memory: memory)
            #expect(memory.reads.map(\.0) == [target] && memory.reads.map(\.1) == [1])
            #expect(memory.writes.isEmpty)
            var unchanged = after
            unchanged.rflags = before.rflags
            unchanged.rip = before.rip
            #expect(unchanged == before)
            #expect(after.rip == rip + 7)
            #expect(after.rflags & ~Flag.status == Flag.others)
            return after.rflags & Flag.status
        }
        #expect(try flags(memory: 0, immediate: 0) == Flag.zf | Flag.pf)
        #expect(try flags(memory: 1, immediate: 0) == 0)
        #expect(try flags(memory: 3, immediate: 0) == Flag.pf)
        #expect(try flags(memory: 0x80, immediate: 0) == Flag.sf)
        #expect(try flags(memory: 0, immediate: 1) == Flag.cf | Flag.pf | Flag.af | Flag.sf)  // 0xff
        #expect(try flags(memory: 0x80, immediate: 1) == Flag.of | Flag.af)  // 0x7f: signed overflow
        #expect(try flags(memory: 0x7F, immediate: 0xFF) == Flag.cf | Flag.of | Flag.sf)  // 127 − (−1) = 0x80
    }

    @Test func compareDwordSignExtendsTheImmediate() throws {
        let memory = TestMemory()
        let rip: UInt64 = 0x1000
        memory.store([0xFF, 0xFF, 0xFF, 0xFF], at: rip + 7 - 4)  // displacement −4
        let after = try run([0x83, 0x3D, 0xFC, 0xFF, 0xFF, 0xFF, 0xFF], registers(rip: rip), memory: memory)
        #expect(memory.reads.map(\.0) == [rip + 3] && memory.reads.map(\.1) == [4])
        #expect(after.rflags & Flag.status == Flag.zf | Flag.pf)  // 0xffffffff == (uint32)−1
        memory.store([0, 0, 0, 0], at: rip + 3)
        let below = try run([0x83, 0x3D, 0xFC, 0xFF, 0xFF, 0xFF, 0xFF], registers(rip: rip), memory: memory)
        #expect(below.rflags & Flag.status == Flag.cf | Flag.af)  // 0 − 0xffffffff = 1
    }

    @Test func ripRelativeAddressWrapsLikeTheCPU() throws {
        let memory = TestMemory()
        _ = try run([0x80, 0x3D, 0x00, 0x00, 0x00, 0x80, 0x00], registers(rip: 0x10), memory: memory)
        #expect(memory.reads.first?.0 == 0x17 &- 0x8000_0000)
    }

    @Test func shortOrFailedReadsThrowAndLeaveRegisters() throws {
        let memory = TestMemory()
        memory.shortReads = true
        let instruction = try decoded([0x83, 0x3D, 0x00, 0x00, 0x00, 0x00, 0x00])
        var state = registers(rip: 0x2000)
        let before = state
        #expect(throws: AllocationTrackingError.shortMemoryRead(address: 0x2007, requested: 4, received: 3)) {
            try instruction.execute(&state, readMemory: memory.read, writeMemory: memory.write)
        }
        #expect(state == before)
        struct Unmapped: Error {}
        #expect(throws: Unmapped.self) {
            try instruction.execute(&state, readMemory: { _, _ in throw Unmapped() }, writeMemory: memory.write)
        }
        #expect(state == before)
    }

    @Test func subtractFromStackPointerSetsRSPAndFlags() throws {
        let before = registers { $0.rsp = 0x7FFE_0000 }
        let after = try run([0x48, 0x83, 0xEC, 0x18], before)
        #expect(after.rsp == 0x7FFD_FFE8)
        #expect(after.rip == before.rip + 4)
        #expect(after.rflags & Flag.status == Flag.pf | Flag.af)
        #expect(try run([0x48, 0x81, 0xEC, 0x00, 0x10, 0x00, 0x00], before).rsp == 0x7FFD_F000)
    }

    /// The flags of every `cmp byte`, and of many `cmp dword`, `test` and `sub rsp` operand pairs,
    /// against what the host CPU computes for the same operations.
    @Test(.enabled(if: DebugInfoFixtures.gccAvailable, "needs gcc"))
    func flagsMatchTheHostCPU() throws {
        let scratch = try DebugInfoScratch()
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/allocation/cpuflags.c")
        try FileManager.default.copyItem(atPath: source.path, toPath: scratch.path + "/cpuflags.c")
        let program = try scratch.build("cpuflags.c", output: "cpuflags", flags: ["-O1"])
        let lines = try DebugInfoShell.check(program, []).split(separator: "\n")
        #expect(lines.count > 100_000)
        let rip: UInt64 = 0x40_0000
        var checked = 0
        for line in lines {
            let fields = line.split(separator: " ")
            guard fields.count == 4, let a = UInt64(fields[1], radix: 16), let b = UInt64(fields[2], radix: 16),
                let cpu = UInt64(fields[3], radix: 16)
            else {
                Issue.record("bad line \(line)")
                continue
            }
            var state = registers(rip: rip, rflags: Flag.others)
            let memory = TestMemory()
            let bytes: [UInt8]
            var mask = Flag.status
            switch fields[0] {
            case "cmp8":
                memory.store([UInt8(a)], at: rip + 7)
                bytes = [0x80, 0x3D, 0, 0, 0, 0, UInt8(b)]
            case "cmp32":
                memory.store((0..<4).map { UInt8(truncatingIfNeeded: a >> (8 * $0)) }, at: rip + 7)
                bytes = [0x83, 0x3D, 0, 0, 0, 0, UInt8(truncatingIfNeeded: b)]
                #expect(UInt64(UInt32(bitPattern: Int32(Int8(bitPattern: UInt8(truncatingIfNeeded: b))))) == b)
            case "test32", "test64":
                state.rdi = a
                state.rsi = b
                bytes = fields[0] == "test64" ? [0x48, 0x85, 0xF7] : [0x85, 0xF7]
                mask &= ~Flag.af  // undefined after TEST
            case "sub64":
                state.rsp = a
                let immediate = Int64(bitPattern: b)
                bytes = Int8(exactly: immediate).map { [0x48, 0x83, 0xEC, UInt8(bitPattern: $0)] }
                    ?? [0x48, 0x81, 0xEC] + (0..<4).map { UInt8(truncatingIfNeeded: b >> (8 * $0)) }
            default:
                Issue.record("unknown operation in \(line)")
                continue
            }
            let instruction = try decoded(bytes)
            try instruction.execute(&state, readMemory: memory.read, writeMemory: memory.write)
            #expect(state.rflags & mask == cpu & mask, "\(line): \(instruction)")
            if fields[0] == "sub64" { #expect(state.rsp == a &- b) }
            checked += 1
        }
        #expect(checked == lines.count)
    }
}

/// The first instructions of jemalloc's, tcmalloc's and mimalloc's entry points (Debian 12's
/// packages): decoded from their real bytes and executed as the CPU would.
@Suite struct VendorPrologueInstructionTests {
    @Test(arguments: [
        ([0x48, 0x81, 0xFF, 0x00, 0x10, 0x00, 0x00], "cmp rdi, 0x1000"),  // jemalloc malloc
        ([0x48, 0x83, 0xFE, 0x08], "cmp rsi, 0x8"),
        ([0x41, 0x83, 0xF8, 0xFF], "cmp r8d, 0xffffffff"),
        ([0x31, 0xC9], "xor ecx, ecx"),  // jemalloc rallocx
        ([0x48, 0x33, 0xC7], "xor rax, rdi"),
        ([0x45, 0x31, 0xC0], "xor r8d, r8d"),
        ([0x48, 0x8B, 0x05, 0x59, 0xB1, 0x1B, 0x00], "mov rax, qword ptr [rip+0x1bb159]"),  // tcmalloc free
        ([0x4C, 0x8B, 0x1D, 0xF0, 0xFF, 0xFF, 0xFF], "mov r11, qword ptr [rip-0x10]"),
        ([0xB8, 0x16, 0x00, 0x00, 0x00], "mov eax, 0x16"),  // mimalloc mi_posix_memalign
        ([0x41, 0xB9, 0x01, 0x00, 0x00, 0x00], "mov r9d, 0x1"),
        ([0x48, 0x8D, 0x46, 0xFF], "lea rax, [rsi-0x1]"),  // tcmalloc posix_memalign
        ([0x4C, 0x8D, 0x87, 0x00, 0x01, 0x00, 0x00], "lea r8, [rdi+0x100]"),
        ([0xE9, 0x7B, 0x58, 0xFF, 0xFF], "jmp $-0xa780"),  // mimalloc valloc
        ([0xEB, 0x10], "jmp $+0x12"),
    ] as [([UInt8], String)])
    func decodes(bytes: [UInt8], text: String) throws {
        let instruction = try decoded(bytes)
        #expect(instruction.length == bytes.count)
        #expect(instruction.description == text)
        #expect(PrologueInstruction.decode(bytes + [0xCC, 0xCC]) == instruction)
        for length in 0..<bytes.count { #expect(PrologueInstruction.decode(Array(bytes.prefix(length))) == nil) }
    }

    @Test(arguments: [
        [0x48, 0x8D, 0x04, 0x24],  // lea rax, [rsp]: SIB
        [0x48, 0x8D, 0x05, 0, 0, 0, 0],  // lea rax, [rip+0]
        [0x48, 0x8D, 0xC0],  // lea with a register operand (invalid)
        [0x8D, 0x46, 0xFF],  // lea eax: 32-bit
        [0x48, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0],  // movabs rax, imm64
        [0x81, 0x3F, 0, 0, 0, 0],  // cmp dword [rdi], imm32: memory operand
        [0x48, 0x81, 0xEF, 0, 0, 0, 0],  // sub rdi, imm32 (/5)
        [0x31, 0x07],  // xor [rdi], eax
        [0x8B, 0x05, 0, 0, 0, 0],  // mov eax, [rip]: 32-bit load
        [0xE8, 0, 0, 0, 0],  // call
    ] as [[UInt8]])
    func rejectsNearMisses(bytes: [UInt8]) {
        #expect(PrologueInstruction.decode(bytes + [UInt8](repeating: 0, count: 8)) == nil)
    }

    @Test func compareRegisterSetsFlagsOnTheOperandWidth() throws {
        let small = try run([0x48, 0x81, 0xFF, 0x00, 0x10, 0x00, 0x00], registers { $0.rdi = 0x20 })
        #expect(small.rflags & Flag.status == Flag.cf | Flag.sf)   // 0x20 - 0x1000 borrows
        #expect(small.rdi == 0x20 && small.rip == registers().rip + 7)
        let equal = try run([0x41, 0x83, 0xF8, 0xFF], registers { $0.r8 = 0xDEAD_0000_FFFF_FFFF })
        #expect(equal.rflags & Flag.status == Flag.zf | Flag.pf)   // r8d == 0xffffffff: upper half ignored
    }

    @Test func exclusiveOrZeroExtendsAThirtyTwoBitResult() throws {
        let after = try run([0x31, 0xC9], registers { $0.rcx = 0xFFFF_FFFF_1234_5678; $0.rflags = Flag.others | Flag.cf | Flag.of })
        #expect(after.rcx == 0)
        #expect(after.rflags & Flag.status == Flag.zf | Flag.pf)
        let wide = try run([0x48, 0x33, 0xC7], registers { $0.rax = 0xF0F0_0000_0000_0001; $0.rdi = 0x0F0F_0000_0000_0001 })
        #expect(wide.rax == 0xFFFF_0000_0000_0000 && wide.rflags & Flag.status == Flag.sf | Flag.pf)
    }

    @Test func ripRelativeLoadReadsEightBytesAfterTheInstruction() throws {
        let memory = TestMemory()
        let before = registers()
        memory.store([1, 2, 3, 4, 5, 6, 7, 8], at: before.rip + 7 + 0x10)
        let after = try run([0x48, 0x8B, 0x05, 0x10, 0x00, 0x00, 0x00], before, memory: memory)
        #expect(after.rax == 0x0807_0605_0403_0201 && after.rflags == before.rflags && after.rip == before.rip + 7)
        memory.shortReads = true
        var state = before
        #expect(throws: (any Error).self) {
            try decoded([0x48, 0x8B, 0x05, 0x10, 0x00, 0x00, 0x00]).execute(&state, readMemory: memory.read, writeMemory: memory.write)
        }
        #expect(state == before)
    }

    @Test func moveImmediateLeaAndJumps() throws {
        let before = registers { $0.rax = .max; $0.rsi = 0x40; $0.r9 = .max }
        #expect(try run([0xB8, 0x16, 0x00, 0x00, 0x00], before).rax == 0x16)
        #expect(try run([0x41, 0xB9, 0x01, 0x00, 0x00, 0x00], before).r9 == 1)
        let lea = try run([0x48, 0x8D, 0x46, 0xFF], before)
        #expect(lea.rax == 0x3F && lea.rflags == before.rflags && lea.rip == before.rip + 4)
        #expect(try run([0xE9, 0x7B, 0x58, 0xFF, 0xFF], before).rip == before.rip + 5 - 0xA785)
        #expect(try run([0xEB, 0x10], before).rip == before.rip + 0x12)
        #expect(try run([0xEB, 0xFE], before).rip == before.rip)
    }
}
