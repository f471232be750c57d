import GuestInterface
import Synchronization

/// The machine's trap handler, replaceable while the guest runs (`leakvisor attach`): the monitor
/// installs one with the guest paused; each vCPU takes the new one before it next enters the
/// guest (`VCPUAssistant.beforeEntry`) and places the gate breakpoints it needs then.
public final class TrapHandlerSlot: Sendable {
    private let installed: Mutex<(handler: (any GuestTrapHandler)?, generation: UInt64)>
    /// Bumped by every `install`: a vCPU compares it with the one it holds at each entry (an
    /// atomic load), and takes the lock only when it changed.
    private let changes = Atomic<UInt64>(0)

    public init(_ handler: (any GuestTrapHandler)? = nil) {
        installed = Mutex((handler, 0))
    }

    /// Installs `handler` (nil removes it). Installing the same handler again still counts as a
    /// change, so that every vCPU re-places its gates (a re-arm after detach).
    public func install(_ handler: (any GuestTrapHandler)?) {
        installed.withLock { slot in
            slot.handler = handler
            slot.generation &+= 1
            changes.store(slot.generation, ordering: .releasing)
        }
    }

    /// The handler now and the generation that installed it.
    public var current: (handler: (any GuestTrapHandler)?, generation: UInt64) { installed.withLock { $0 } }

    /// The generation of the handler installed last (cheap: for the vCPUs' check at each entry).
    public var generation: UInt64 { changes.load(ordering: .acquiring) }
}
