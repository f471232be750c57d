import GuestInterface
import GuestMemory

extension Machine: InspectableGuest {
    public func startWriteLog() throws -> any GuestWriteTracking {
        try pageWrites.enable()
        return pageWrites
    }

    public func stopWriteLog() throws {
        try pageWrites.disable()
    }
}

extension Machine: TrapHandlerHost {}
