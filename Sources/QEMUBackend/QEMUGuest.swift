import GDBRemote
import Glibc
import GuestInterface
import GuestMemory
import Synchronization
import X86

/// A guest that a QEMU process runs (under libvirt or not), driven from outside: its RAM through
/// the process's shared RAM mapping, its vCPUs through QEMU's gdbstub (all-stop), and the
/// monitor's traps through gdbstub breakpoints on the guest's #BP and #PF handlers and on the
/// tracker's kernel hook sites (QEMU does not exit to us on the hooks' `out`). An
/// `InspectableGuest` and a `TrapHandlerHost`, so the tracker, ledger and scanner serve it as
/// they serve our own machine. No page-write log: every scan reads what it covers.
///
/// One thread runs `serve` (the event loop: continue, wait for a stop, hand traps to the
/// handler); `withGuestPaused` from any other thread asks it to park the guest.
public final class QEMUGuest: TrapHandlerHost, Sendable {
    public let memory: GuestMemory
    let gdb: GDBRemoteConnection
    /// IDTR base (a guest-virtual address, as QEMU's monitor reports it).
    let idtBase: UInt64
    /// Private guest RAM mirrored locally (nil: `memory` maps the QEMU process's shared RAM).
    public let mirror: QEMUPrivateRAM?
    /// IA32_LSTAR, which the gdbstub does not show: worked out by the caller from the kernel image.
    let systemCallEntry = Atomic<UInt64>(0)
    /// Whether the stop handled last was a kernel hook's.
    let lastStopWasHook = Atomic(false)
    let state = Mutex(LoopState())
    /// One pause at a time.
    let pausing = Mutex(())
    public let statistics = Mutex(Statistics())

    /// What the event loop and pause requests share.
    struct LoopState {
        var handler: (any GuestTrapHandler)?
        /// The vCPUs' threads as the stub names them, in vCPU order.
        var threads: [String] = []
        var loopActive = false
        /// `c` sent and no stop reply yet.
        var running = false
        var pauseRequested = false
        var parked: [VCPUSnapshot]?
        var stopRequested = false
        /// Breakpoints placed through the stub, by guest-virtual address.
        var placed: Set<UInt64> = []
        /// Handlers of the #BP and #PF gates, once read.
        var gates: (breakpoint: UInt64, pageFault: UInt64)?
        /// Told after each stop of ours was handled (true for a kernel hook), the guest still stopped.
        var afterStop: (@Sendable (_ kernelHook: Bool) -> Void)?
    }

    /// What the backend did, for the closing figures.
    public struct Statistics: Sendable {
        public var stops = 0
        public var userTrapsHandled = 0
        public var kernelHooksHandled = 0
        public var gatesPassedByEmulation = 0
        public var gatesPassedByStepping = 0
        public var exceptionsNotDelivered = 0
        public var pagesRewritten = 0
        /// Time from each stop's reply to the guest going on (registers, handler, writes).
        public var handlingSeconds = 0.0
    }

    /// Connects to the gdbstub at `port` (QEMU stops the guest when a debugger connects) over
    /// `memory`, the QEMU process's RAM; the guest stays stopped until `serve` runs.
    public init(memory: GuestMemory, gdbPort: UInt16, idtBase: UInt64, mirror: QEMUPrivateRAM? = nil) throws(QEMUBackendError) {
        self.memory = memory
        self.idtBase = idtBase
        self.mirror = mirror
        do {
            gdb = try GDBRemoteConnection(port: gdbPort)
            // Stop the guest (a stub may or may not stop it on connect) and drain the stop replies.
            try gdb.interrupt()
            while try gdb.receive(timeout: 0.5) != nil {}
            mirror?.guestStopped()
            // Memory requests name guest-physical addresses: writes then reach every vCPU's view and
            // drop the translations QEMU's TCG made of the code they change.
            try gdb.require("Qqemu.PhyMemMode:1")
            var threads: [String] = []
            var reply = try gdb.require("qfThreadInfo")
            while reply.first == "m" {
                threads += reply.dropFirst().split(separator: ",").map(String.init)
                reply = try gdb.require("qsThreadInfo")
            }
            guard !threads.isEmpty else { throw GDBRemoteError.refused(request: "qfThreadInfo", reply: reply) }
            state.withLock { $0.threads = threads }
        } catch let error as GDBRemoteError {
            throw .gdb(error)
        } catch {
            throw .gdb(.closed)
        }
        memory.recordHostWrites(true)
    }

    /// Checks that `memory` is this guest's RAM: the page-table root of the first vCPU reads the
    /// same through the gdbstub (physical mode) and through `memory`.
    public func checkRAM() throws(QEMUBackendError) {
        guard let thread = state.withLock({ $0.threads.first }) else { return }
        let root = try registers(of: thread).cr3 & 0x000F_FFFF_FFFF_F000
        let direct = try? memory.read(at: GuestPhysicalAddress(root), count: 256)
        let reply = try mapped { () throws(GDBRemoteError) in try gdb.require("m\(String(root, radix: 16)),100") }
        guard let direct, GDBHex.decode(reply) == direct else { throw .ramMismatch(pageTableRoot: root) }
    }

    /// Sets IA32_LSTAR as the kernel set it (the gdbstub does not read MSRs).
    public func setSystemCallEntry(_ value: UInt64) { systemCallEntry.store(value, ordering: .relaxed) }

    public var vcpuCount: Int { state.withLock { $0.threads.count } }

    /// The breakpoints this backend has placed through the gdbstub now (guest-virtual addresses).
    public var breakpointAddresses: [UInt64] { state.withLock { $0.placed.sorted() } }

    /// Calls `body` after each stop of ours is handled, with the guest still stopped (true for a kernel hook).
    public func setAfterStop(_ body: (@Sendable (_ kernelHook: Bool) -> Void)?) { state.withLock { $0.afterStop = body } }

    /// Takes over breakpoints an earlier monitor placed (`addresses`, still in QEMU after it died) and
    /// handles the vCPUs stopped at them, with the handler installed: each thread goes on as if that
    /// monitor had handled it (recovery after a crash; then `withGuestPaused` to disarm and `release`).
    public func adopt(breakpoints addresses: [UInt64]) throws(QEMUBackendError) {
        // Also those it would have placed: the gates and the handler's hook sites.
        let gates = try gateHandlers()
        var all = Set(addresses).union([gates.breakpoint, gates.pageFault])
        all.formUnion(state.withLock { $0.handler?.kernelHookSites ?? [] })
        state.withLock { $0.placed = all }
        for thread in state.withLock({ $0.threads }) {
            let rip = try registers(of: thread).general.rip
            if all.contains(rip) { try handleStop(thread: thread) }
        }
    }

    /// The guest's #BP handler (from its IDT), the anchor of its kernel's KASLR slide.
    public func breakpointHandler() throws(QEMUBackendError) -> UInt64 { try gateHandlers().breakpoint }

    // MARK: TrapHandlerHost

    public func installTrapHandler(_ handler: (any GuestTrapHandler)?) {
        state.withLock { $0.handler = handler }
    }

    /// No page-write log through a gdbstub: scans read everything they cover.
    public func startWriteLog() throws -> any GuestWriteTracking {
        throw QEMUBackendError.gdb(.refused(request: "dirty-page log", reply: ""))
    }

    public func stopWriteLog(_ reader: any GuestWriteTracking) throws {}

    public func withGuestPaused<T>(timeout: Double, _ body: (PausedGuest) throws -> T) throws -> T {
        try pausing.withLock { _ in
            let direct = try state.withLock { s throws -> Bool in
                guard s.loopActive else { return true }
                s.pauseRequested = true
                if s.running { try mapped { () throws(GDBRemoteError) in try gdb.interrupt() } }
                return false
            }
            if direct {
                // No event loop: the guest is stopped (before `serve` or after it returned).
                let vcpus = try captureVCPUs()
                defer { try? afterPause() }
                return try body(PausedGuest(memory: memory, vcpus: vcpus))
            }
            defer { state.withLock { $0.pauseRequested = false } }
            let deadline = ContinuousClock.now + .seconds(timeout)
            while true {
                if let vcpus = state.withLock({ $0.parked }) { return try body(PausedGuest(memory: memory, vcpus: vcpus)) }
                if state.withLock({ !$0.loopActive }) { return try body(PausedGuest(memory: memory, vcpus: try captureVCPUs())) }
                guard ContinuousClock.now < deadline else { throw QEMUBackendError.pauseTimedOut(seconds: timeout) }
                usleep(200)
            }
        }
    }

    /// Every vCPU's state now (the guest must be stopped).
    func captureVCPUs() throws(QEMUBackendError) -> [VCPUSnapshot] {
        let threads = state.withLock { $0.threads }
        var vcpus: [VCPUSnapshot] = []
        for (index, thread) in threads.enumerated() {
            let registers = try registers(of: thread)
            vcpus.append(snapshot(index: index, registers, general: registers.general, privilegeLevel: registers.privilegeLevel))
        }
        return vcpus
    }

    func registers(of thread: String) throws(QEMUBackendError) -> QEMUX86Registers {
        try mapped { () throws(GDBRemoteError) in
            try gdb.require("Hg\(thread)")
            return try QEMUX86Registers(hex: try gdb.require("g"))
        }
    }

    func snapshot(index: Int, _ registers: QEMUX86Registers, general: GeneralRegisters, privilegeLevel: Int) -> VCPUSnapshot {
        VCPUSnapshot(index: index, registers: general, cr3: registers.cr3, cr4: registers.cr4, efer: registers.efer,
                     privilegeLevel: privilegeLevel, systemCallEntry: systemCallEntry.load(ordering: .relaxed),
                     gsBase: registers.gsBase, kernelGSBase: registers.kernelGSBase, fsBase: registers.fsBase,
                     vectorRegisters: registers.vectorWords)
    }

    @discardableResult
    func mapped<T>(_ body: () throws(GDBRemoteError) -> T) throws(QEMUBackendError) -> T {
        do { return try body() } catch { throw .gdb(error) }
    }
}
