import Introspection
import GuestMemory

/// The guest while every vCPU is parked: its memory and each vCPU's captured state. Valid only
/// inside `Machine.withGuestPaused`; translations cached from it must not outlive the pause.
public struct PausedGuest: Sendable {
    public let memory: GuestMemory
    public let vcpus: [VCPUSnapshot]
}
