import CElfDW
import Glibc

/// The thread ID libdwfl is told about; the one thread of every unwind.
let unwindThreadID: pid_t = 1

/// State the libdwfl thread callbacks read during one unwind: the initial registers and the
/// memory reader, with a budget on reads so hostile memory cannot make an unwind run long.
final class UnwindContext {
    var registers = RegisterSet()
    var reader: ((UInt64) -> UInt64?)?
    var readsRemaining = 0
    private(set) var readLimitReached = false

    /// Starts an unwind of `registers`, allowing `readLimit` memory reads.
    func begin(registers: RegisterSet, readLimit: Int) {
        self.registers = registers
        readsRemaining = readLimit
        readLimitReached = false
    }

    /// The 8 bytes at `address`, or nil if unreadable or over budget.
    func readWord(at address: UInt64) -> UInt64? {
        guard readsRemaining > 0 else {
            readLimitReached = true
            return nil
        }
        readsRemaining -= 1
        return reader?(address)
    }
}

/// The unwind state attached to a Dwfl (`dwfl_attach_state` can be called once per Dwfl): the
/// thread callback table, the context they read, and an x86-64 ELF header that tells libdwfl the
/// architecture even before any module is reported. Must outlive the Dwfl (`dwfl_end` calls back).
final class UnwindAttachment {
    let context = UnwindContext()
    private let callbacks: UnsafeMutablePointer<Dwfl_Thread_Callbacks>
    private let architectureImage: UnsafeMutableRawPointer
    private let architectureELF: OpaquePointer

    init(dwfl: OpaquePointer) throws(DebugInfoError) {
        architectureImage = Self.makeX86_64Header()
        // SAFETY: the image is headerSize initialised bytes, deallocated in release() only after elf_end.
        guard let elf = elf_memory(architectureImage.assumingMemoryBound(to: CChar.self), Self.headerSize) else {
            architectureImage.deallocate()
            throw .libraryFailure(operation: "elf_memory", reason: libelfMessage())
        }
        architectureELF = elf
        // SAFETY: dwfl_attach_state keeps this pointer; it is freed in release(), which runs after the owning DwflSession's dwfl_end.
        callbacks = .allocate(capacity: 1)
        callbacks.initialize(
            to: Dwfl_Thread_Callbacks(
                next_thread: nextThread, get_thread: getThread, memory_read: readMemory,
                set_initial_registers: setInitialRegisters, detach: nil, thread_detach: nil))
        // SAFETY: unretained: `context` is a stored let of this object, which outlives the Dwfl that calls back with it.
        let argument = Unmanaged.passUnretained(context).toOpaque()
        guard dwfl_attach_state(dwfl, architectureELF, unwindThreadID, callbacks, argument) else {
            let reason = dwflMessage()
            release()
            throw .libraryFailure(operation: "dwfl_attach_state", reason: reason)
        }
    }

    deinit { release() }

    private var released = false
    private func release() {
        guard !released else { return }
        released = true
        elf_end(architectureELF)
        architectureImage.deallocate()
        callbacks.deinitialize(count: 1)
        callbacks.deallocate()
    }

    private static let headerSize = 64

    /// A bare little-endian ELF64 header for EM_X86_64 (no program or section headers).
    private static func makeX86_64Header() -> UnsafeMutableRawPointer {
        // SAFETY: every store below is inside the headerSize (64) bytes, zeroed first; the caller owns and frees the allocation.
        let image = UnsafeMutableRawPointer.allocate(byteCount: headerSize, alignment: 8)
        image.initializeMemory(as: UInt8.self, repeating: 0, count: headerSize)
        let identification: [UInt8] = [0x7F, 0x45, 0x4C, 0x46, 2, 1, 1]  // \x7fELF, ELFCLASS64, LSB, EV_CURRENT
        image.copyMemory(from: identification, byteCount: identification.count)
        image.storeBytes(of: UInt16(2).littleEndian, toByteOffset: 16, as: UInt16.self)  // e_type ET_EXEC
        image.storeBytes(of: UInt16(62).littleEndian, toByteOffset: 18, as: UInt16.self)  // e_machine EM_X86_64
        image.storeBytes(of: UInt32(1).littleEndian, toByteOffset: 20, as: UInt32.self)  // e_version
        image.storeBytes(of: UInt16(64).littleEndian, toByteOffset: 52, as: UInt16.self)  // e_ehsize
        return image
    }
}

// MARK: - libdwfl thread callbacks (C function pointers; state comes through the void * arguments)

private func context(_ pointer: UnsafeMutableRawPointer) -> UnwindContext {
    // SAFETY: every void * libdwfl hands back here is the UnwindContext argument given to dwfl_attach_state, alive with its attachment.
    Unmanaged<UnwindContext>.fromOpaque(pointer).takeUnretainedValue()
}

/// Yields the one thread, then reports that there are no more.
private func nextThread(
    _ dwfl: OpaquePointer?, _ argument: UnsafeMutableRawPointer?,
    _ threadArgument: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> pid_t {
    guard let threadArgument else { return -1 }
    // SAFETY: libdwfl passes a valid pointer to its per-thread argument slot (checked non-nil above).
    guard threadArgument.pointee == nil else { return 0 }
    threadArgument.pointee = argument
    return unwindThreadID
}

private func getThread(
    _ dwfl: OpaquePointer?, _ thread: pid_t, _ argument: UnsafeMutableRawPointer?,
    _ threadArgument: UnsafeMutablePointer<UnsafeMutableRawPointer?>?
) -> Bool {
    guard thread == unwindThreadID, let threadArgument else { return false }
    threadArgument.pointee = argument
    return true
}

private func readMemory(
    _ dwfl: OpaquePointer?, _ address: Dwarf_Addr, _ result: UnsafeMutablePointer<Dwarf_Word>?,
    _ argument: UnsafeMutableRawPointer?
) -> Bool {
    guard let argument, let result, let value = context(argument).readWord(at: address) else { return false }
    // SAFETY: libdwfl passes a valid Dwarf_Word to fill (checked non-nil above).
    result.pointee = value
    return true
}

private func setInitialRegisters(_ thread: OpaquePointer?, _ threadArgument: UnsafeMutableRawPointer?) -> Bool {
    guard let thread, let threadArgument else { return false }
    let registers = context(threadArgument).registers
    let values = registers.dwarfRegisters
    let stored = values.withUnsafeBufferPointer { buffer in
        // SAFETY: dwarfRegisters is a fixed, non-empty array; libdwfl reads buffer.count words from it during the call.
        dwfl_thread_state_registers(thread, 0, UInt32(buffer.count), buffer.baseAddress!)
    }
    guard stored else { return false }
    dwfl_thread_state_register_pc(thread, registers.rip)
    return true
}
