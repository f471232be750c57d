import Foundation
import Testing

@testable import DebugInfo

/// A synthetic stack: frame records `[rbp] = caller's rbp`, `[rbp+8] = return address`.
private struct SyntheticStack {
    var memory: [UInt64: UInt64] = [:]

    /// Links frame records at `bases` (innermost first), each returning to the matching address;
    /// the outermost record ends the chain with rbp 0 and return address 0.
    init(bases: [UInt64], returnAddresses: [UInt64]) {
        for (index, base) in bases.enumerated() {
            memory[base] = index + 1 < bases.count ? bases[index + 1] : 0
            memory[base + 8] = index < returnAddresses.count ? returnAddresses[index] : 0
        }
    }

    func read(_ address: UInt64) -> UInt64? { memory[address] }
}

private let stackTop: UInt64 = 0x7FFF_F000_0000

private func registers(rip: UInt64, rbp: UInt64, rsp: UInt64) -> RegisterSet {
    var registers = RegisterSet()
    registers.rip = rip
    registers.rbp = rbp
    registers.rsp = rsp
    return registers
}

@Suite struct DebugInfoHostileUnwindTests {
    @Test func framePointerChainWithoutAnyModule() throws {
        let bases = (0..<5).map { stackTop + UInt64($0) * 0x100 }
        let returns = (0..<4).map { 0x40_1000 + UInt64($0) * 0x10 }
        let stack = SyntheticStack(bases: bases, returnAddresses: returns)
        let unwinder = try StackUnwinder(symbolizer: Symbolizer())
        let backtrace = unwinder.unwind(
            registers: registers(rip: 0x40_2000, rbp: bases[0], rsp: bases[0] - 0x40), readMemory: stack.read)
        #expect(backtrace.frames.map(\.pc) == [0x40_2000] + returns)
        #expect(backtrace.frames.map(\.method) == [.initial] + Array(repeating: .framePointer, count: 4))
        #expect(backtrace.frames.dropFirst().allSatisfy { !$0.isActivation })
        #expect(backtrace.frames.dropFirst().map(\.stackPointer) == bases.prefix(4).map { $0 + 16 })
        #expect(backtrace.stop == .outermostFrame)
        // The unwinder can be used again with other registers and memory.
        let again = unwinder.unwind(registers: registers(rip: 0x40_3000, rbp: 0, rsp: stackTop), readMemory: { _ in nil })
        #expect(again.frames.map(\.pc) == [0x40_3000])
    }

    @Test func unreadableMemoryEndsAfterTheInitialFrame() throws {
        let unwinder = try StackUnwinder(symbolizer: Symbolizer())
        let backtrace = unwinder.unwind(
            registers: registers(rip: 0x40_2000, rbp: stackTop, rsp: stackTop - 0x40), readMemory: { _ in nil })
        #expect(backtrace.frames.count == 1)
        guard case .unwindFailed(let reason) = backtrace.stop else {
            Issue.record("stop \(backtrace.stop)")
            return
        }
        #expect(!reason.isEmpty)
    }

    @Test func selfLinkedAndCyclicChainsEnd() throws {
        let unwinder = try StackUnwinder(symbolizer: Symbolizer())
        // [rbp] = rbp.
        let selfLinked: [UInt64: UInt64] = [stackTop: stackTop, stackTop + 8: 0x40_1000]
        let first = unwinder.unwind(
            registers: registers(rip: 0x40_2000, rbp: stackTop, rsp: stackTop - 0x40), readMemory: { selfLinked[$0] })
        #expect(first.frames.count <= 3)
        #expect(first.stop != .frameLimit)
        // A -> B -> A.
        let a = stackTop
        let b = stackTop + 0x80
        let cycle: [UInt64: UInt64] = [a: b, a + 8: 0x40_1000, b: a, b + 8: 0x40_1100]
        let second = unwinder.unwind(
            registers: registers(rip: 0x40_2000, rbp: a, rsp: a - 0x40), readMemory: { cycle[$0] })
        #expect(second.frames.count <= 4)
        #expect(second.stop != .frameLimit)
    }

    @Test func frameLimitBoundsALongChain() throws {
        let bases = (0..<1000).map { stackTop + UInt64($0) * 0x20 }
        let returns = (0..<999).map { 0x40_1000 + UInt64($0) }
        let stack = SyntheticStack(bases: bases, returnAddresses: returns)
        let unwinder = try StackUnwinder(symbolizer: Symbolizer(), maximumFrames: 50)
        let backtrace = unwinder.unwind(
            registers: registers(rip: 0x40_2000, rbp: bases[0], rsp: bases[0] - 8), readMemory: stack.read)
        #expect(backtrace.frames.count == 50)
        #expect(backtrace.stop == .frameLimit)
    }

    @Test func readBudgetBoundsAnUnwind() throws {
        let bases = (0..<1000).map { stackTop + UInt64($0) * 0x20 }
        let stack = SyntheticStack(bases: bases, returnAddresses: (0..<999).map { 0x40_1000 + UInt64($0) })
        let unwinder = try StackUnwinder(symbolizer: Symbolizer(), maximumMemoryReads: 20)
        var reads = 0
        let backtrace = unwinder.unwind(registers: registers(rip: 0x40_2000, rbp: bases[0], rsp: bases[0] - 8)) {
            reads += 1
            return stack.read($0)
        }
        #expect(reads <= 20)
        #expect(backtrace.frames.count <= 20)
        #expect(backtrace.stop == .readLimit)
    }

    @Test(.enabled(if: DebugInfoFixtures.gccAvailable, "needs gcc"))
    func garbageMemoryUnderRealCFI() throws {
        let scratch = try DebugInfoScratch()
        let path = try scratch.build("callchain.c", output: "callchain", flags: ["-O1", "-g", "-fomit-frame-pointer"])
        let table = try ELFFile(path: path).symbolTable()
        let inner = try #require(table.symbol(named: "inner"))
        let bias: UInt64 = 0x5555_0000_0000
        let symbolizer = try Symbolizer()
        try symbolizer.addModule(name: "callchain", hostPath: path, loadBias: bias)
        try symbolizer.addModule(name: "ls", hostPath: "/bin/ls", loadBias: 0x7F00_0000_0000)
        let unwinder = try StackUnwinder(symbolizer: symbolizer)
        let code = [bias + inner.address + 4, 0x7F00_0000_5000, bias + 0x1000]

        // Every read returns one value. Not code: the walk ends at once.
        for constant in [stackTop, 0, UInt64.max] {
            let backtrace = unwinder.unwind(
                registers: registers(rip: code[0], rbp: stackTop, rsp: stackTop - 0x100), readMemory: { _ in constant })
            #expect(backtrace.frames.count <= 4, "constant \(hex(constant)): \(backtrace.stop)")
        }
        // The address of `inner` itself: CFI sees inner returning into inner with the stack pointer
        // rising by one frame each time, exactly like deep recursion; only the frame limit ends it.
        let recursion = unwinder.unwind(
            registers: registers(rip: code[0], rbp: stackTop, rsp: stackTop - 0x100), readMemory: { _ in code[0] })
        #expect(recursion.frames.count == unwinder.maximumFrames && recursion.stop == .frameLimit)
        #expect(recursion.frames.dropFirst().allSatisfy { $0.pc == code[0] && $0.method == .cfi })
        // Random memory, random registers.
        var generator = DeterministicRandom(seed: 99)
        for round in 0..<200 {
            var state = RegisterSet(dwarfRegisters: (0..<17).map { _ in generator.next() })
            state.rip = code[round % code.count]
            if round % 2 == 0 { state.rsp = stackTop + (generator.next() % 0x1000) }
            let seed = generator.next()
            let backtrace = unwinder.unwind(registers: state) { address in
                var mixer = DeterministicRandom(seed: seed ^ address)
                let value = mixer.next()
                switch value % 4 {
                case 0: return nil
                case 1: return code[Int(value >> 8) % code.count]
                case 2: return stackTop + (value >> 40)
                default: return value
                }
            }
            #expect(backtrace.frames.count <= unwinder.maximumFrames)
            #expect(backtrace.frames.first?.pc == state.rip)
        }
    }
}

@Suite struct DebugInfoFramePointerWalkerTests {
    private let code: ClosedRange<UInt64> = 0x40_0000...0x40_FFFF

    private func walk(_ memory: [UInt64: UInt64], from start: StackFrame, limit: Int = 128)
        -> (frames: [StackFrame], end: FramePointerWalker.End)
    {
        let collector = FrameCollector(limit: limit)
        _ = collector.accept(start)
        let walker = FramePointerWalker(read: { memory[$0] }, isCode: { code.contains($0) })
        let end = walker.walk(from: start, into: collector)
        return (Array(collector.frames.dropFirst()), end)
    }

    private func start(rbp: UInt64?, rsp: UInt64 = stackTop - 0x40) -> StackFrame {
        StackFrame(pc: 0x40_2000, isActivation: true, method: .initial, stackPointer: rsp, framePointer: rbp)
    }

    @Test func followsTheChainToItsEnd() {
        let stack = SyntheticStack(bases: [stackTop, stackTop + 0x40], returnAddresses: [0x40_1000, 0x40_1100])
        let result = walk(stack.memory, from: start(rbp: stackTop))
        #expect(result.frames.map(\.pc) == [0x40_1000, 0x40_1100])
        #expect(result.frames.map(\.framePointer) == [stackTop + 0x40, 0])
        #expect(result.frames.allSatisfy { $0.method == .framePointer && !$0.isActivation })
        #expect(result.end == .outermost)
    }

    @Test func rejectsImplausibleFrameRecords() {
        func brokenReason(_ memory: [UInt64: UInt64], _ frame: StackFrame) -> String? {
            if case .broken(let why) = walk(memory, from: frame).end { return why }
            return nil
        }
        #expect(brokenReason([:], start(rbp: nil))?.contains("unknown") == true)
        #expect(brokenReason([:], start(rbp: stackTop + 4))?.contains("aligned") == true)
        #expect(brokenReason([:], start(rbp: stackTop - 0x80))?.contains("below the stack pointer") == true)
        #expect(brokenReason([:], start(rbp: stackTop))?.contains("cannot read") == true)
        #expect(brokenReason([:], start(rbp: UInt64.max - 7))?.contains("top of memory") == true)
        let outside: [UInt64: UInt64] = [stackTop: 0, stackTop + 8: 0x1234_5678]
        #expect(brokenReason(outside, start(rbp: stackTop))?.contains("outside every module") == true)
        let downward: [UInt64: UInt64] = [stackTop: stackTop - 0x20, stackTop + 8: 0x40_1000]
        #expect(brokenReason(downward, start(rbp: stackTop)) != nil)
        let selfLinked: [UInt64: UInt64] = [stackTop: stackTop, stackTop + 8: 0x40_1000]
        #expect(brokenReason(selfLinked, start(rbp: stackTop))?.contains("does not move up") == true)
    }

    @Test func zeroReturnAddressIsTheEnd() {
        let result = walk([stackTop: stackTop + 0x40, stackTop + 8: 0], from: start(rbp: stackTop))
        #expect(result.frames.isEmpty && result.end == .outermost)
    }

    @Test func collectorLimitStopsTheWalk() {
        let bases = (0..<10).map { stackTop + UInt64($0) * 0x20 }
        let stack = SyntheticStack(bases: bases, returnAddresses: (0..<9).map { 0x40_1000 + UInt64($0) })
        let result = walk(stack.memory, from: start(rbp: bases[0]), limit: 4)
        #expect(result.frames.count == 3)
        #expect(result.end == .collectorStopped)
    }
}
