import AllocationLedger
import Foundation
import Glibc
import GuestMemory
import Synchronization
import Testing

@testable import AllocationTracing

/// The exitless release stub, run natively on the host: the generated code with a ring in a
/// monitor region (its host mapping standing in for the guest window), reached as in the guest
/// (`jmp rel8` → `call rel32` in the padding → the stub), except the last hop (`push imm32; ret`
/// needs the top 2 GiB, which the host keeps for its kernel): an absolute `jmp [rip]`. The ring is
/// drained by `EventRingReader` while threads call.
@Suite struct ExitlessStubTests {
    /// An executable host page holding `function` at offset 0x800 (its first instruction displaced),
    /// the padding call at 0x800 − 5, the last hop at 0x100 and the stub at 0x200.
    final class Patched: @unchecked Sendable {
        let page: UnsafeMutableRawPointer
        let entry: UInt64

        init(function: [UInt8], displacedLength: Int, window: UInt64, function kind: AllocatorFunction = .free,
             followingLength: Int = 0, ringFullSpins: Bool = true) throws {
            let p = mmap(nil, 8192, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            guard let p, p != MAP_FAILED else { throw POSIXError(.ENOMEM) }
            page = p
            let base = UInt64(UInt(bitPattern: p))
            let f = 0x800, padding = f - 5, hop = 0x100, stubAt = 0x200
            var bytes = [UInt8](repeating: 0xCC, count: 8192)
            bytes.replaceSubrange(f..<(f + function.count), with: function)
            let displaced = try #require(PrologueInstruction.decode(Array(function.prefix(displacedLength))))
            var following: [PrologueInstruction] = []
            if followingLength > 0 {
                following.append(try #require(PrologueInstruction.decode(Array(function[displacedLength..<(displacedLength + followingLength)]))))
            }
            let delta = Int32(f + displaced.length + followingLength - (padding + 5))
            var stub = try #require(ExitlessStub.make(function: kind, stub: 0, resumeDelta: delta, displaced: displaced,
                                                      following: following, window: window))
            if ringFullSpins {
                // The host has no monitor to answer the int3: the full ring spins until drained.
                var code = stub.code
                code[stub.fullRingTrap] = 0x90
                if let exitTrap = stub.exitFullRingTrap { code[exitTrap] = 0x90 }
                stub = ExitlessStub(code: code, fullRingTrap: stub.fullRingTrap, exitPart: stub.exitPart,
                                    exitFullRingTrap: stub.exitFullRingTrap, stackCopy: stub.stackCopy, skipExitRecord: stub.skipExitRecord)
            }
            bytes.replaceSubrange(stubAt..<(stubAt + stub.code.count), with: stub.code)
            // The last hop: jmp [rip+0]; .quad stub
            bytes.replaceSubrange(hop..<(hop + 14), with: [0xFF, 0x25, 0, 0, 0, 0] + withUnsafeBytes(of: (base + UInt64(stubAt)).littleEndian, Array.init))
            // The padding: call hop
            bytes.replaceSubrange(padding..<(padding + 5), with: [0xE8] + withUnsafeBytes(of: Int32(hop - (padding + 5)).littleEndian, Array.init))
            // The entry: jmp rel8 to the padding
            bytes.replaceSubrange(f..<(f + 2), with: [0xEB, UInt8(bitPattern: Int8(padding - (f + 2)))])
            bytes.withUnsafeBytes { p.copyMemory(from: $0.baseAddress!, byteCount: 8192) }
            entry = base + UInt64(f)
        }

        deinit { munmap(page, 8192) }

        func call(_ argument: UInt64) -> UInt64 {
            typealias Function = @convention(c) (UInt64) -> UInt64
            let function = unsafeBitCast(UnsafeRawPointer(bitPattern: UInt(entry))!, to: Function.self)
            return function(argument)
        }

        func call(_ a: UInt64, _ b: UInt64, _ c: UInt64) -> UInt64 {
            typealias Function = @convention(c) (UInt64, UInt64, UInt64) -> UInt64
            let function = unsafeBitCast(UnsafeRawPointer(bitPattern: UInt(entry))!, to: Function.self)
            return function(a, b, c)
        }
    }

    static func region() throws -> MonitorRegion {
        try MonitorRegion(start: GuestPhysicalAddress(1 << 32), size: 2 << 20)
    }

    /// A window in a fresh region: the formatted header page (the records follow it).
    static func window(_ region: MonitorRegion) throws -> (header: GuestPhysicalAddress, host: UInt64) {
        var pages: [GuestPhysicalAddress] = []
        for _ in 0..<ExitlessLayout.windowPages { pages.append(try #require(region.allocatePage())) }
        #expect(pages.last!.rawValue - pages[0].rawValue == UInt64(ExitlessLayout.windowPages - 1) * 4096)
        try EventRingReader.format(pages[0], in: region.memory)
        let host = UInt64(UInt(bitPattern: region.hostAddress)) + (pages[0].rawValue - region.start.rawValue)
        return (pages[0], host)
    }

    @Test func aCallIsRecordedAndTheFunctionRunsOn() throws {
        let region = try Self.region()
        let (header, host) = try Self.window(region)
        // test rdi, rdi; mov rax, rdi; ret   (free's first instruction, then a body returning its argument)
        let patched = try Patched(function: [0x48, 0x85, 0xFF, 0x48, 0x89, 0xF8, 0xC3], displacedLength: 3, window: host)
        #expect(patched.call(0x1234_5678) == 0x1234_5678)
        var reader = EventRingReader(header: header)
        let records = reader.drain(region.memory, stubs: [.free])
        #expect(records.count == 1)
        let record = try #require(records.first)
        #expect(record.stub == 0)
        #expect(record.pointer == 0x1234_5678)
        #expect(record.resumeAddress == patched.entry + 3)
        #expect(record.returnAddress != 0 && record.stackPointer != 0)
        // glibc's thread pointer: fs:[0] is the TCB's own address, the FS base.
        #expect(record.threadPointer == UInt64(pthread_self()))
        #expect(reader.drain(region.memory, stubs: [.free]).isEmpty)
        #expect(try region.memory.load(UInt64.self, at: header.offset(ExitlessLayout.Header.tail)) == 1)
    }

    @Test func relocatedInstructionsSeeTheirOriginalAddresses() throws {
        let region = try Self.region()
        let (_, host) = try Self.window(region)
        // mov rax, [rip+0x10]; ret; (padding) ; .quad 0x1122334455667788 at entry+7+0x10
        var load = [UInt8](repeating: 0x90, count: 0x20)
        load.replaceSubrange(0..<8, with: [0x48, 0x8B, 0x05, 0x10, 0, 0, 0, 0xC3])
        load.replaceSubrange(0x17..<0x1F, with: withUnsafeBytes(of: UInt64(0x1122_3344_5566_7788).littleEndian, Array.init))
        #expect(try Patched(function: load, displacedLength: 7, window: host).call(0) == 0x1122_3344_5566_7788)
        // cmp byte [rip+0x10], 0; jne +3; xor eax, eax; ret; mov eax, 7; ret   with the byte = 1
        var compare = [UInt8](repeating: 0x90, count: 0x20)
        compare.replaceSubrange(0..<17, with: [0x80, 0x3D, 0x10, 0, 0, 0, 0x00, 0x75, 0x03, 0x31, 0xC0, 0xC3, 0xB8, 7, 0, 0, 0])
        compare[17] = 0xC3
        compare[7 + 0x10] = 1
        #expect(try Patched(function: compare, displacedLength: 7, window: host).call(0) == 7)
        // jmp +3; (3 bytes never run); mov eax, 9; ret
        let jump: [UInt8] = [0xEB, 0x03, 0xCC, 0xCC, 0xCC, 0xB8, 9, 0, 0, 0, 0xC3]
        #expect(try Patched(function: jump, displacedLength: 2, window: host).call(0) == 9)
    }

    @Test func anInstructionThatNamesR11IsRefused() throws {
        // push r11; mov r11, rdi
        for bytes: [UInt8] in [[0x41, 0x53], [0x49, 0x89, 0xFB]] {
            let displaced = try #require(PrologueInstruction.decode(bytes))
            #expect(ExitlessStub.release(function: .free, stub: 0, resumeDelta: 0, displaced: displaced) == nil)
        }
        let push = try #require(PrologueInstruction.decode([0x55]))
        #expect(ExitlessStub.release(function: .malloc, stub: 0, resumeDelta: 0, displaced: push) == nil, "a release stub is for releases")
        #expect(ExitlessStub.make(function: .operatorNew, stub: 0, resumeDelta: 0, displaced: push) == nil, "new can throw: no stub")
        #expect(ExitlessStub.make(function: .posixMemalign, stub: 0, resumeDelta: 0, displaced: push) == nil)
        #expect(ExitlessStub.make(function: .malloc, stub: 0, resumeDelta: 0, displaced: push) != nil)
    }

    /// A stand-in allocator: rax = rdi + rsi + rdx (its first instruction `mov rax, rdi` displaced).
    static let sumFunction: [UInt8] = [0x48, 0x89, 0xF8, 0x48, 0x01, 0xF0, 0x48, 0x01, 0xD0, 0xC3]

    @Test func anAllocationIsRecordedAtItsEntryAndWithItsResult() throws {
        let region = try Self.region()
        let (header, host) = try Self.window(region)
        let patched = try Patched(function: Self.sumFunction, displacedLength: 3, window: host, function: .calloc)
        #expect(patched.call(0x1000, 0x200, 0x30) == 0x1230)
        var reader = EventRingReader(header: header)
        let records = reader.drain(region.memory, stubs: [.calloc])
        try #require(records.count == 2)
        let (entry, exit) = (records[0], records[1])
        guard case .allocationEntry(let arguments, let framePointer, let stack) = entry.kind else {
            Issue.record("not an entry record: \(entry.kind)")
            return
        }
        #expect(arguments == [0x1000, 0x200, 0x30])
        _ = framePointer
        #expect(entry.resumeAddress == patched.entry + 3)
        #expect(entry.threadPointer == UInt64(pthread_self()))
        // The copy starts at the slot of the return address.
        #expect(stack.count == ExitlessLayout.stackCopyBytes)
        #expect(StackCopy(start: entry.stackPointer, bytes: stack).word(entry.stackPointer) == entry.returnAddress)
        #expect(StackCopy(start: entry.stackPointer, bytes: stack).word(entry.stackPointer + UInt64(stack.count)) == nil)
        #expect(exit.kind == .allocationExit)
        #expect(exit.pointer == 0x1230)
        #expect(exit.stackPointer == entry.stackPointer)
        #expect(exit.threadPointer == entry.threadPointer)
        #expect(try region.memory.load(UInt64.self, at: header.offset(ExitlessLayout.Header.tail)) == 2)
    }

    @Test func aOneBytePushIsDisplacedWithTheInstructionAfterIt() throws {
        let region = try Self.region()
        let (header, host) = try Self.window(region)
        // push rbp; mov rbp, rdi; lea rax, [rbp+rsi]; pop rbp; ret   (glibc's malloc starts so)
        let function: [UInt8] = [0x55, 0x48, 0x89, 0xFD, 0x48, 0x8D, 0x44, 0x35, 0x00, 0x5D, 0xC3]
        let patched = try Patched(function: function, displacedLength: 1, window: host, function: .malloc, followingLength: 3)
        #expect(patched.call(0x5000, 0x20, 0) == 0x5020)
        var reader = EventRingReader(header: header)
        let records = reader.drain(region.memory, stubs: [.malloc])
        #expect(records.count == 2)
        #expect(records.first?.resumeAddress == patched.entry + 4)
        #expect(records.last?.pointer == 0x5020)
        // Every displaced instruction but the last must run the same anywhere.
        let load = try #require(PrologueInstruction.decode([0x48, 0x8B, 0x05, 0x10, 0, 0, 0]))
        let move = try #require(PrologueInstruction.decode([0x48, 0x89, 0xFD]))
        #expect(ExitlessStub.make(function: .malloc, stub: 0, resumeDelta: 0, displaced: load, following: [move]) == nil)
        #expect(ExitlessStub.make(function: .malloc, stub: 0, resumeDelta: 0, displaced: move, following: [load]) != nil)
    }

    @Test func aStackCopyStopsAtTheStackLimit() throws {
        let region = try Self.region()
        let (header, host) = try Self.window(region)
        let patched = try Patched(function: Self.sumFunction, displacedLength: 3, window: host, function: .malloc)
        var reader = EventRingReader(header: header)
        // Each call from here has the same rsp at the stub's entry.
        func entry() throws -> (rsp: UInt64, stack: [UInt8]) {
            #expect(patched.call(1, 2, 3) == 6)
            let records = reader.drain(region.memory, stubs: [.malloc])
            guard let first = records.first, case .allocationEntry(_, _, let stack) = first.kind else { throw POSIXError(.EINVAL) }
            return (first.stackPointer, stack)
        }
        // Without a limit the whole slot is copied.
        let whole = try entry()
        #expect(whole.stack.count == ExitlessLayout.stackCopyBytes)
        // With the limit 256 bytes above rsp at entry: 256 bytes, the same as the whole copy's first.
        try region.memory.store(whole.rsp + 256, at: header.offset(ExitlessLayout.Header.stackLimit))
        let limited = try entry()
        #expect(limited.rsp == whole.rsp)
        #expect(limited.stack.count == 256)
        // A limit at or below rsp (a thread's stack above the main one's end): the whole slot.
        try region.memory.store(whole.rsp, at: header.offset(ExitlessLayout.Header.stackLimit))
        #expect(try entry().stack.count == ExitlessLayout.stackCopyBytes)
    }

    @Test func theAllocatorRunsWithTheStackAlignedAsAtACall() throws {
        let region = try Self.region()
        let (_, host) = try Self.window(region)
        // mov rax, rsp; and eax, 15; ret   (8 at a function's entry: the return address pushed)
        let patched = try Patched(function: [0x48, 0x89, 0xE0, 0x83, 0xE0, 0x0F, 0xC3], displacedLength: 3, window: host, function: .malloc)
        #expect(patched.call(1, 2, 3) == 8)
    }

    @Test func threadsAllocatingWhileTheRingIsDrainedPairEveryEntryWithItsResult() throws {
        let region = try Self.region()
        let (header, host) = try Self.window(region)
        let patched = try Patched(function: Self.sumFunction, displacedLength: 3, window: host, function: .malloc)
        let threads = 3, calls = 3_000      // 18,000 records through a ring of 1,024
        let done = Atomic(0), wrong = Atomic(0)
        var workers: [Thread] = []
        for t in 0..<threads {
            let worker = Thread {
                for i in 0..<calls where patched.call(UInt64(t + 1) << 32, UInt64(i), 0) != UInt64(t + 1) << 32 | UInt64(i) {
                    wrong.add(1, ordering: .relaxed)
                }
                done.add(1, ordering: .releasing)
            }
            workers.append(worker)
        }
        workers.forEach { $0.start() }
        var reader = EventRingReader(header: header)
        var records: [RingRecord] = []
        while done.load(ordering: .acquiring) < threads || records.count < 2 * threads * calls {
            let batch = reader.drain(region.memory, stubs: [.malloc])
            records += batch
            if batch.isEmpty { usleep(100) }
            if records.count > 2 * threads * calls { break }
        }
        #expect(wrong.load(ordering: .relaxed) == 0)
        #expect(records.count == 2 * threads * calls)
        #expect(reader.malformed == 0)
        // Per thread: entry, then its exit with the sum, in call order.
        var open: [UInt64: UInt64] = [:]       // thread pointer → first argument of the call in flight
        var results: [UInt64: [UInt64]] = [:]
        for record in records {
            switch record.kind {
            case .allocationEntry(let arguments, _, _):
                #expect(open[record.threadPointer] == nil)
                open[record.threadPointer] = arguments[0] + arguments[1]
            case .allocationExit:
                #expect(open[record.threadPointer] == record.pointer)
                open[record.threadPointer] = nil
                results[record.pointer >> 32, default: []].append(record.pointer & 0xFFFF_FFFF)
            case .release:
                Issue.record("a release record")
            }
        }
        #expect(results.count == threads)
        for (_, values) in results { #expect(values == (0..<UInt64(calls)).map { $0 }) }
    }

    @Test func threadsCallingWhileTheRingIsDrainedLoseNothingAndKeepTheirOrder() throws {
        let region = try Self.region()
        let (header, host) = try Self.window(region)
        let patched = try Patched(function: [0x48, 0x85, 0xFF, 0x48, 0x89, 0xF8, 0xC3], displacedLength: 3, window: host)
        let threads = 4, calls = 5_000      // 20,000 records through a ring of 4,096: it fills
        let done = Atomic(0)
        let wrong = Atomic(0)
        var workers: [Thread] = []
        for t in 0..<threads {
            let worker = Thread {
                for i in 0..<calls {
                    let value = UInt64(t + 1) << 32 | UInt64(i)
                    if patched.call(value) != value { wrong.add(1, ordering: .relaxed) }
                }
                done.add(1, ordering: .releasing)
            }
            workers.append(worker)
        }
        workers.forEach { $0.start() }
        var reader = EventRingReader(header: header)
        var records: [RingRecord] = []
        while done.load(ordering: .acquiring) < threads || records.count < threads * calls {
            let batch = reader.drain(region.memory, stubs: [.free])
            records += batch
            if batch.isEmpty { usleep(100) }
            if records.count > threads * calls { break }
        }
        #expect(wrong.load(ordering: .relaxed) == 0)
        #expect(records.count == threads * calls)
        #expect(reader.malformed == 0)
        // Per thread, every value once, in call order; one thread pointer per thread.
        var byThread: [UInt64: [UInt64]] = [:]
        var pointers: [UInt64: Set<UInt64>] = [:]
        for record in records {
            byThread[record.pointer >> 32, default: []].append(record.pointer & 0xFFFF_FFFF)
            pointers[record.pointer >> 32, default: []].insert(record.threadPointer)
        }
        #expect(byThread.count == threads)
        for (_, values) in byThread { #expect(values == (0..<UInt64(calls)).map { $0 }) }
        #expect(pointers.values.allSatisfy { $0.count == 1 })
        #expect(Set(pointers.values.map { $0.first! }).count == threads)
    }

    @Test func aScribbledRingGivesOnlyCommittedRecordsOfKnownStubs() throws {
        let region = try Self.region()
        let (header, _) = try Self.window(region)
        let memory = region.memory
        func record(_ index: UInt64, commit: UInt64, word: UInt64) throws {
            let slot = header.offset(4096 + Int(index % UInt64(ExitlessLayout.ringCapacity)) * ExitlessLayout.recordSize)
            try memory.store(word, at: slot.offset(ExitlessLayout.Record.function))
            try memory.store(0xABC0 + index, at: slot.offset(ExitlessLayout.Record.pointer))
            try memory.store(commit, at: slot)
        }
        let free = UInt64(try #require(EventRingReader.functionWord(function: .free, stub: 0)))
        let delete = UInt64(try #require(EventRingReader.functionWord(function: .operatorDelete, stub: 1)))
        try record(0, commit: 1, word: free)
        try record(1, commit: 2, word: 999)                                       // no such function
        try record(2, commit: 3, word: UInt64(try #require(EventRingReader.functionWord(function: .operatorDelete, stub: 0))))  // stub 0 is free's
        try record(3, commit: 77, word: free)                                     // not committed as index 3: a hole
        try record(4, commit: 5, word: delete)                                    // after the hole: taken
        try record(5, commit: 6, word: free | 1 << 40)                            // junk in the high bits
        try memory.store(UInt64.max, at: header.offset(ExitlessLayout.Header.head)) // a head far ahead
        var reader = EventRingReader(header: header)
        let stubs: [AllocatorFunction] = [.free, .operatorDelete]
        #expect(reader.drain(memory, stubs: stubs).map(\.pointer) == [0xABC0, 0xABC4])
        #expect(reader.malformed == 3)
        #expect(reader.holes.count == ExitlessLayout.ringCapacity - 5, "every index up to a ring's worth not committed yet")
        #expect(reader.tail == 3, "the tail waits at the oldest hole")
        #expect(try memory.load(UInt64.self, at: header.offset(ExitlessLayout.Header.tail)) == 3)
        try record(3, commit: 4, word: free)
        try memory.store(UInt64(6), at: header.offset(ExitlessLayout.Header.head))
        #expect(reader.drain(memory, stubs: stubs).map(\.pointer) == [0xABC3])
        #expect(reader.tail == 6)
        // A head moved back behind the tail reads nothing new.
        try memory.store(UInt64(1), at: header.offset(ExitlessLayout.Header.head))
        #expect(reader.drain(memory, stubs: stubs).isEmpty)
        #expect(reader.tail == 6)
    }
}
