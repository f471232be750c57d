import AllocationLedger

/// The machine code one exitless release entry runs, in the shared code page
/// (`docs/exitless-tracking.md`). It is reached from the allocator's first bytes through
/// `jmp rel8` → `call rel32` (in padding before the function, so the stub learns where it came
/// from in this process) → `push imm32; ret` (in other padding), and then:
///
/// 1. turns the pushed address into the resume address (the instruction after the displaced one);
/// 2. reserves a record in the process's ring (compare-and-swap on the head, only while
///    `head - tail` is below the capacity; a full ring executes `int3`, which the monitor answers
///    by draining, and then retries);
/// 3. writes the function, the pointer (rdi), the return address, rsp at entry, the thread pointer
///    (`fs:[0]`) and the resume address, then the commit word (`index + 1`);
/// 4. runs the displaced first instruction, relocated (RIP-relative operands and jumps are taken
///    relative to the resume address, which is where the original saw rip), and jumps back.
///
/// Uses only rax, r10 and r11, which no allocator reads at entry; a displaced instruction that
/// names r11 is refused (the stub holds the resume address there).
struct ExitlessStub: Sendable, Equatable {
    let code: [UInt8]
    /// Offset of the `int3` a full ring executes (the monitor resumes one byte after it).
    let fullRingTrap: Int

    /// The stub of a release entry point (`index`: its number in the records it writes), or nil when the displaced instruction cannot be
    /// relocated. `resumeDelta` is (allocator entry + displaced length) − (the address the
    /// padding's `call` pushes), the same in every process.
    static func release(function: AllocatorFunction, stub index: Int, resumeDelta: Int32, displaced: PrologueInstruction,
                        window: UInt64 = ExitlessLayout.windowAddress, capacity ringCapacity: Int = ExitlessLayout.ringCapacity) -> ExitlessStub? {
        guard function.releases, let functionWord = EventRingReader.functionWord(function: function, stub: index),
              let relocated = relocate(displaced) else { return nil }
        guard ringCapacity.nonzeroBitCount == 1 else { return nil }
        let capacity = Int32(ringCapacity)
        var e = X86Emitter()
        let retry = e.label(), full = e.label()
        e.emit([0x41, 0x5A])                                   // pop r10            (the padding's return address)
        e.emit([0x49, 0x81, 0xC2]); e.emit32(resumeDelta)      // add r10, delta     (the resume address)
        e.emit([0x41, 0x52])                                   // push r10
        e.emit([0x49, 0xBB]); e.emit64(window)                 // movabs r11, window
        e.place(retry)
        e.emit([0x49, 0x8B, 0x43, UInt8(ExitlessLayout.Header.head)])          // mov rax, [r11+head]
        e.emit([0x49, 0x89, 0xC2])                                             // mov r10, rax
        e.emit([0x4D, 0x2B, 0x53, UInt8(ExitlessLayout.Header.tail)])          // sub r10, [r11+tail]
        e.emit([0x49, 0x81, 0xFA]); e.emit32(capacity)                         // cmp r10, capacity
        e.branch([0x0F, 0x83], to: full)                                       // jae full
        e.emit([0x4C, 0x8D, 0x50, 0x01])                                       // lea r10, [rax+1]
        e.emit([0xF0, 0x4D, 0x0F, 0xB1, 0x53, UInt8(ExitlessLayout.Header.head)]) // lock cmpxchg [r11+head], r10
        e.branch([0x0F, 0x85], to: retry)                                      // jne retry
        e.emit([0x25]); e.emit32(capacity - 1)                                 // and eax, capacity-1
        e.emit([0x48, 0xC1, 0xE0, 0x06])                                       // shl rax, 6 (× record size)
        e.emit([0x49, 0x8D, 0x84, 0x03]); e.emit32(4096)                       // lea rax, [r11+rax+4096]
        e.emit([0x48, 0x89, 0x78, UInt8(ExitlessLayout.Record.pointer)])       // mov [rax+pointer], rdi
        e.emit([0x4C, 0x8B, 0x5C, 0x24, 0x08])                                 // mov r11, [rsp+8]   (return address)
        e.emit([0x4C, 0x89, 0x58, UInt8(ExitlessLayout.Record.returnAddress)]) // mov [rax+returnAddress], r11
        e.emit([0x4C, 0x8D, 0x5C, 0x24, 0x08])                                 // lea r11, [rsp+8]   (rsp at entry)
        e.emit([0x4C, 0x89, 0x58, UInt8(ExitlessLayout.Record.stackPointer)])  // mov [rax+stackPointer], r11
        e.emit([0x4C, 0x8B, 0x1C, 0x24])                                       // mov r11, [rsp]     (resume address)
        e.emit([0x4C, 0x89, 0x58, UInt8(ExitlessLayout.Record.resume)])                         // mov [rax+resume], r11
        e.emit([0x64, 0x4C, 0x8B, 0x1C, 0x25, 0, 0, 0, 0])                     // mov r11, fs:[0]
        e.emit([0x4C, 0x89, 0x58, UInt8(ExitlessLayout.Record.threadPointer)]) // mov [rax+threadPointer], r11
        e.emit([0x48, 0xC7, 0x40, UInt8(ExitlessLayout.Record.function)]); e.emit32(functionWord) // mov qword [rax+function], function | stub << 8
        e.emit([0x4C, 0x89, 0x10])                                             // mov [rax], r10     (commit: index + 1)
        e.emit([0x41, 0x5B])                                                   // pop r11            (resume; rsp as at entry)
        e.emit(relocated)
        e.emit([0x41, 0xFF, 0xE3])                                             // jmp r11
        e.place(full)
        let trapOffset = e.bytes.count
        e.emit([0xCC])                                                         // int3: the monitor drains
        e.branch([0xE9], to: retry)                                            // jmp retry
        guard let code = e.finish() else { return nil }
        return ExitlessStub(code: code, fullRingTrap: trapOffset)
    }

    /// `instruction` as it runs in the stub with r11 holding the address after the original.
    static func relocate(_ instruction: PrologueInstruction) -> [UInt8]? {
        switch instruction.operation {
        case .endbr64, .nop:
            return []
        case .push(let r):
            return r == .r11 ? nil : instruction.bytes
        case .move(let d, let s), .exclusiveOr(let d, let s, _), .test(let d, let s, _):
            return d == .r11 || s == .r11 ? nil : instruction.bytes
        case .compareRegister(let r, _, _), .moveImmediate(let r, _):
            return r == .r11 ? nil : instruction.bytes
        case .loadEffectiveAddress(let d, let b, _):
            return d == .r11 || b == .r11 ? nil : instruction.bytes
        case .subtractFromStackPointer:
            return instruction.bytes
        case .compareRIPRelative(let width, let displacement, let immediate):
            // cmp byte|dword [r11 + displacement], imm8
            var e = X86Emitter()
            e.emit([0x41, width == .byte ? 0x80 : 0x83, 0xBB]); e.emit32(displacement); e.emit([UInt8(bitPattern: immediate)])
            return e.bytes
        case .loadRIPRelative(let destination, let displacement):
            guard destination != .r11 else { return nil }
            // mov destination, [r11 + displacement]
            let reg = destination.rawValue
            var e = X86Emitter()
            e.emit([0x49 | (reg >= 8 ? 0x04 : 0), 0x8B, 0x80 | ((reg & 7) << 3) | 0x03]); e.emit32(displacement)
            return e.bytes
        case .jump(let displacement):
            // add r11, displacement (then the stub's jmp r11 goes to the original's target)
            var e = X86Emitter()
            e.emit([0x49, 0x81, 0xC3]); e.emit32(displacement)
            return e.bytes
        }
    }
}
