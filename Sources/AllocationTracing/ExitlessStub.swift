import AllocationLedger

/// The machine code one exitless allocator entry runs, in the shared code page
/// (`docs/exitless-tracking.md`). It is reached from the allocator's first bytes through
/// `jmp rel8` → `call rel32` (in padding before the function, so the stub learns where it came
/// from in this process; or the `call` over the entry itself) → `push imm32; ret` (in other
/// padding), and then:
///
/// 1. turns the pushed address into the resume address (the instruction after the displaced ones);
/// 2. reserves a record in the process's ring (compare-and-swap on the head, only while
///    `head - tail` is below the capacity; a full ring executes `int3`, which the monitor answers
///    by draining, and then retries);
/// 3. a release: writes the function, the pointer (rdi), the return address, rsp at entry, the
///    thread pointer (`fs:[0]`) and the resume address, then the commit word (`index + 1`), runs
///    the displaced instructions, relocated (RIP-relative operands and jumps are taken relative
///    to the resume address, which is where the original saw rip), and jumps back;
/// 4. an allocation: writes its entry record (the arguments, rbp and a copy of the caller's
///    stack too), calls the allocator as a subroutine, writes its exit record (the result) and
///    returns to the caller (`allocation`).
///
/// A release's stub uses only rax, r10 and r11, which no allocator reads at entry; a displaced
/// instruction that names r11 is refused (the stub holds the resume address there).
struct ExitlessStub: Sendable, Equatable {
    let code: [UInt8]
    /// Offset of the `int3` a full ring executes (the monitor resumes one byte after it).
    let fullRingTrap: Int
    /// An allocation's stub: where its exit part starts (its window accesses are the exit record's),
    /// its second full-ring `int3`, the `rep movsq` of the stack copy (a fault there resumes after
    /// it, the copy cut short) and where its exit resumes when its record cannot be written.
    var exitPart: Int? = nil
    var exitFullRingTrap: Int? = nil
    var stackCopy: Int? = nil
    var skipExitRecord: Int? = nil

    /// The functions that have a stub: the releases, and the allocations whose result is rax and
    /// that never throw (`operator new` can throw through the stub, posix_memalign's result is
    /// stored through a pointer: both stay on traps).
    static func supports(_ function: AllocatorFunction) -> Bool {
        switch function {
        case .free, .operatorDelete, .operatorDeleteArray, .malloc, .calloc, .realloc, .reallocarray, .memalign, .valloc, .pvalloc:
            return true
        default:
            return false
        }
    }

    /// The stub of `function`'s entry: `release` or `allocation`.
    /// `following`: the instructions after `displaced` that the entry's patch also covers (its
    /// `jmp rel8` after a 1-byte `push`, or its `call rel32`); every one but the last must run the
    /// same anywhere (no RIP-relative operand, no jump).
    static func make(function: AllocatorFunction, stub index: Int, resumeDelta: Int32, displaced: PrologueInstruction,
                     following: [PrologueInstruction] = [], window: UInt64 = ExitlessLayout.windowAddress,
                     capacity: Int = ExitlessLayout.ringCapacity) -> ExitlessStub? {
        guard let relocated = relocate([displaced] + following) else { return nil }
        return function.releases
            ? release(function: function, stub: index, resumeDelta: resumeDelta, relocated: relocated, window: window, capacity: capacity)
            : allocation(function: function, stub: index, resumeDelta: resumeDelta, relocated: relocated, window: window, capacity: capacity)
    }

    /// The displaced instructions as they run in the stub (r11 = the resume address, where the
    /// last one ends); nil when one before the last depends on where it runs.
    static func relocate(_ instructions: [PrologueInstruction]) -> [UInt8]? {
        var code: [UInt8] = []
        for (k, instruction) in instructions.enumerated() {
            guard let relocated = relocate(instruction) else { return nil }
            if k < instructions.count - 1, !runsAnywhere(instruction) { return nil }
            code += relocated
        }
        return code
    }

    /// Whether `instruction` does the same wherever it runs (no RIP-relative operand, no jump).
    static func runsAnywhere(_ instruction: PrologueInstruction) -> Bool {
        switch instruction.operation {
        case .compareRIPRelative, .loadRIPRelative, .jump: return false
        default: return true
        }
    }

    /// The stub of a release entry point (`index`: its number in the records it writes), or nil when the displaced instruction cannot be
    /// relocated. `resumeDelta` is (allocator entry + displaced length) − (the address the
    /// padding's `call` pushes), the same in every process.
    static func release(function: AllocatorFunction, stub index: Int, resumeDelta: Int32, displaced: PrologueInstruction,
                        window: UInt64 = ExitlessLayout.windowAddress, capacity ringCapacity: Int = ExitlessLayout.ringCapacity) -> ExitlessStub? {
        guard let relocated = relocate(displaced) else { return nil }
        return release(function: function, stub: index, resumeDelta: resumeDelta, relocated: relocated, window: window, capacity: ringCapacity)
    }

    private static func release(function: AllocatorFunction, stub index: Int, resumeDelta: Int32, relocated: [UInt8],
                                window: UInt64, capacity ringCapacity: Int) -> ExitlessStub? {
        guard function.releases, let functionWord = EventRingReader.functionWord(function: function, stub: index),
              ringCapacity.nonzeroBitCount == 1 else { return nil }
        var e = X86Emitter()
        let retry = e.label(), full = e.label()
        emitResumeAddress(&e, resumeDelta)
        e.emit([0x49, 0xBB]); e.emit64(window)                 // movabs r11, window
        e.place(retry)
        emitReserve(&e, capacity: ringCapacity, retry: retry, full: full)
        e.emit([0x48, 0x89, 0x78, UInt8(ExitlessLayout.Record.pointer)])       // mov [rax+pointer], rdi
        emitCallFields(&e)
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

    /// The stub of an allocation entry point: an entry record (the arguments, rbp, the return
    /// address, rsp, the thread pointer, the resume address and a copy of the caller's stack from
    /// rsp up), then the allocator called as a subroutine (the displaced instruction, relocated,
    /// then a jump to the resume address; rsp is 16 bytes below the caller's, so the alignment
    /// the function sees is the ABI's), then an exit record (the result, rsp at entry, the
    /// thread pointer) before it returns to the caller with the result. Uses rax, rcx, r8–r11,
    /// which none of these functions reads at entry; rdi and rsi are reloaded after the copy.
    private static func allocation(function: AllocatorFunction, stub index: Int, resumeDelta: Int32, relocated: [UInt8],
                                   window: UInt64, capacity ringCapacity: Int) -> ExitlessStub? {
        guard supports(function), !function.releases,
              let functionWord = EventRingReader.functionWord(function: function, stub: index),
              ringCapacity.nonzeroBitCount == 1 else { return nil }
        typealias R = ExitlessLayout.Record
        var e = X86Emitter()
        let retry = e.label(), full = e.label(), exitRetry = e.label(), exitFull = e.label(), body = e.label()
        emitResumeAddress(&e, resumeDelta)
        e.emit([0x49, 0xBB]); e.emit64(window)                 // movabs r11, window
        e.place(retry)
        emitReserve(&e, capacity: ringCapacity, retry: retry, full: full, stackCopy: true)
        e.emit([0x48, 0x89, 0x78, UInt8(R.pointer)])           // mov [rax+pointer], rdi
        e.emit([0x48, 0x89, 0x70, UInt8(R.secondArgument)])    // mov [rax+second], rsi
        e.emit([0x48, 0x89, 0x50, UInt8(R.thirdArgument)])     // mov [rax+third], rdx
        e.emit([0x48, 0x89, 0x68, UInt8(R.framePointer)])      // mov [rax+framePointer], rbp
        // Words to copy: a slot's, or up to the stack limit when rsp at entry is below it.
        let fullCopy = e.label()
        let words = Int32(ExitlessLayout.stackCopyBytes / 8)
        e.emit([0x41, 0xB8]); e.emit32(words)                  // mov r8d, words
        e.emit([0x49, 0x8B, 0x4B, UInt8(ExitlessLayout.Header.stackLimit)]) // mov rcx, [r11+stackLimit]
        e.emit([0x48, 0x8D, 0x74, 0x24, 0x08])                 // lea rsi, [rsp+8]   (rsp at entry)
        e.emit([0x48, 0x29, 0xF1])                             // sub rcx, rsi
        e.branch([0x0F, 0x86], to: fullCopy)                   // jbe full           (at or above the limit: not the main stack)
        e.emit([0x48, 0xC1, 0xE9, 0x03])                       // shr rcx, 3
        e.emit([0x4C, 0x39, 0xC1])                             // cmp rcx, r8
        e.branch([0x0F, 0x83], to: fullCopy)                   // jae full
        e.emit([0x49, 0x89, 0xC8])                             // mov r8, rcx
        e.place(fullCopy)
        emitCallFields(&e)
        e.emit([0x48, 0xC7, 0x40, UInt8(R.function)]); e.emit32(functionWord)  // mov qword [rax+function], word
        e.emit([0x4C, 0x89, 0xCF])                             // mov rdi, r9        (the record's stack copy)
        e.emit([0x48, 0x8D, 0x74, 0x24, 0x08])                 // lea rsi, [rsp+8]
        e.emit([0x4C, 0x89, 0xC1])                             // mov rcx, r8
        let copy = e.bytes.count
        e.emit([0xF3, 0x48, 0xA5])                             // rep movsq (DF is clear at a call)
        e.emit([0x49, 0x29, 0xC8])                             // sub r8, rcx        (words copied)
        e.emit([0x4C, 0x89, 0x40, UInt8(R.copiedWords)])       // mov [rax+copied], r8
        e.emit([0x48, 0x8B, 0x78, UInt8(R.pointer)])           // mov rdi, [rax+pointer]
        e.emit([0x48, 0x8B, 0x70, UInt8(R.secondArgument)])    // mov rsi, [rax+second]
        e.emit([0x4C, 0x89, 0x10])                             // mov [rax], r10     (commit)
        e.emit([0x4C, 0x8B, 0x1C, 0x24])                       // mov r11, [rsp]     (resume)
        e.branch([0xE8], to: body)                             // call body
        let exitPart = e.bytes.count
        e.emit([0x49, 0x89, 0xC1])                             // mov r9, rax        (the result)
        e.emit([0x49, 0xBB]); e.emit64(window)                 // movabs r11, window
        e.place(exitRetry)
        emitReserve(&e, capacity: ringCapacity, retry: exitRetry, full: exitFull)
        e.emit([0x4C, 0x89, 0x48, UInt8(R.pointer)])           // mov [rax+pointer], r9
        emitCallerFields(&e)
        e.emit([0x48, 0xC7, 0x40, UInt8(R.function)]); e.emit32(functionWord | ExitlessLayout.exitRecordBit)
        e.emit([0x4C, 0x89, 0x10])                             // mov [rax], r10     (commit)
        let skip = e.bytes.count
        e.emit([0x4C, 0x89, 0xC8])                             // mov rax, r9
        e.emit([0x48, 0x83, 0xC4, 0x08])                       // add rsp, 8         (the resume word)
        e.emit([0xC3])                                         // ret                (to the caller)
        e.place(body)
        e.emit(relocated)
        e.emit([0x41, 0xFF, 0xE3])                             // jmp r11
        e.place(full)
        let trapOffset = e.bytes.count
        e.emit([0xCC])
        e.branch([0xE9], to: retry)
        e.place(exitFull)
        let exitTrap = e.bytes.count
        e.emit([0xCC])
        e.branch([0xE9], to: exitRetry)
        guard let code = e.finish() else { return nil }
        return ExitlessStub(code: code, fullRingTrap: trapOffset, exitPart: exitPart, exitFullRingTrap: exitTrap,
                            stackCopy: copy, skipExitRecord: skip)
    }

    /// Turns the padding call's pushed address into the resume address and leaves it on the
    /// stack: [rsp] the resume address, [rsp+8] the caller's return address.
    private static func emitResumeAddress(_ e: inout X86Emitter, _ resumeDelta: Int32) {
        e.emit([0x41, 0x5A])                                   // pop r10            (the padding's return address)
        e.emit([0x49, 0x81, 0xC2]); e.emit32(resumeDelta)      // add r10, delta     (the resume address)
        e.emit([0x41, 0x52])                                   // push r10
    }

    /// With r11 = the window: reserves the next record (compare-and-swap on the head while
    /// `head - tail` is below the capacity; `full` when it is not). Leaves rax = the record,
    /// r10 = its commit word (index + 1) and, with `stackCopy`, r9 = its stack copy.
    private static func emitReserve(_ e: inout X86Emitter, capacity ringCapacity: Int, retry: Int, full: Int, stackCopy: Bool = false) {
        let capacity = Int32(ringCapacity)
        e.emit([0x49, 0x8B, 0x43, UInt8(ExitlessLayout.Header.head)])          // mov rax, [r11+head]
        e.emit([0x49, 0x89, 0xC2])                                             // mov r10, rax
        e.emit([0x4D, 0x2B, 0x53, UInt8(ExitlessLayout.Header.tail)])          // sub r10, [r11+tail]
        e.emit([0x49, 0x81, 0xFA]); e.emit32(capacity)                         // cmp r10, capacity
        e.branch([0x0F, 0x83], to: full)                                       // jae full
        e.emit([0x4C, 0x8D, 0x50, 0x01])                                       // lea r10, [rax+1]
        e.emit([0xF0, 0x4D, 0x0F, 0xB1, 0x53, UInt8(ExitlessLayout.Header.head)]) // lock cmpxchg [r11+head], r10
        e.branch([0x0F, 0x85], to: retry)                                      // jne retry
        e.emit([0x25]); e.emit32(capacity - 1)                                 // and eax, capacity-1
        if stackCopy {
            e.emit([0x49, 0x89, 0xC1])                                         // mov r9, rax
            e.emit([0x49, 0xC1, 0xE1, ExitlessLayout.stackCopyShift])          // shl r9, log2(copy bytes)
            e.emit([0x4F, 0x8D, 0x8C, 0x0B]); e.emit32(Int32(ExitlessLayout.stackCopies(capacity: ringCapacity))) // lea r9, [r11+r9+copies]
        }
        e.emit([0x48, 0xC1, 0xE0, ExitlessLayout.recordShift])                 // shl rax, log2(record size)
        e.emit([0x49, 0x8D, 0x84, 0x03]); e.emit32(4096)                       // lea rax, [r11+rax+4096]
    }

    /// The fields every entry record has: the return address, the resume address, and
    /// `emitCallerFields`'s (rax = the record; [rsp] the resume address). Clobbers r11.
    private static func emitCallFields(_ e: inout X86Emitter) {
        typealias R = ExitlessLayout.Record
        e.emit([0x4C, 0x8B, 0x5C, 0x24, 0x08])                 // mov r11, [rsp+8]   (return address)
        e.emit([0x4C, 0x89, 0x58, UInt8(R.returnAddress)])     // mov [rax+returnAddress], r11
        e.emit([0x4C, 0x8B, 0x1C, 0x24])                       // mov r11, [rsp]     (resume address)
        e.emit([0x4C, 0x89, 0x58, UInt8(R.resume)])            // mov [rax+resume], r11
        emitCallerFields(&e)
    }

    /// The fields every record of a call has, exit records too: rsp at entry (the caller's return
    /// address is at [rsp+8]) and the thread pointer. Clobbers r11.
    private static func emitCallerFields(_ e: inout X86Emitter) {
        typealias R = ExitlessLayout.Record
        e.emit([0x4C, 0x8D, 0x5C, 0x24, 0x08])                 // lea r11, [rsp+8]   (rsp at entry)
        e.emit([0x4C, 0x89, 0x58, UInt8(R.stackPointer)])      // mov [rax+stackPointer], r11
        e.emit([0x64, 0x4C, 0x8B, 0x1C, 0x25, 0, 0, 0, 0])     // mov r11, fs:[0]
        e.emit([0x4C, 0x89, 0x58, UInt8(R.threadPointer)])     // mov [rax+threadPointer], r11
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
