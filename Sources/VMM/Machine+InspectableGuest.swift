import GuestInterface
import GuestMemory

extension Machine: InspectableGuest {
    public func startWriteLog() throws -> any GuestWriteTracking {
        try pageWrites.enable()
        return writeLogReaders.join()
    }

    public func stopWriteLog(_ reader: any GuestWriteTracking) throws {
        if writeLogReaders.leave(reader) == 0 { try pageWrites.disable() }
    }
}

extension Machine: TrapHandlerHost {}
