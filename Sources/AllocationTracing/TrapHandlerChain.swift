import GuestInterface
import GuestMemory
import X86

/// Several trap handlers in the machine's one slot (`--track all`: the user and the kernel
/// tracker): each trap is offered to each handler in order until one owns it; every handler is
/// told that user space started; user traps are wanted while any handler wants them.
public final class TrapHandlerChain: GuestTrapHandler, Sendable {
    public let handlers: [any GuestTrapHandler]

    public init(_ handlers: [any GuestTrapHandler]) {
        self.handlers = handlers
    }

    /// The one handler given, a chain of several, or nil for none.
    public static func combining(_ handlers: [(any GuestTrapHandler)?]) -> (any GuestTrapHandler)? {
        let present = handlers.compactMap { $0 }
        return present.count <= 1 ? present.first : TrapHandlerChain(present)
    }

    public var wantsUserTraps: Bool { handlers.contains { $0.wantsUserTraps } }

    public func userSpaceStarted(_ state: VCPUSnapshot, memory: GuestMemory) {
        for handler in handlers { handler.userSpaceStarted(state, memory: memory) }
    }

    public func userBreakpoint(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool {
        handlers.contains { $0.userBreakpoint(&trap, memory: memory) }
    }

    public func userFetchFault(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool {
        handlers.contains { $0.userFetchFault(&trap, memory: memory) }
    }

    public func kernelHook(_ trap: inout GuestTrap, memory: GuestMemory) -> Bool {
        handlers.contains { $0.kernelHook(&trap, memory: memory) }
    }

    public var kernelHookSites: [UInt64] { handlers.flatMap(\.kernelHookSites) }
}
