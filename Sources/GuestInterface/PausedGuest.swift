import GuestMemory
import X86

/// The guest while every vCPU is parked: its memory and each vCPU's captured state. Valid only
/// inside `InspectableGuest.withGuestPaused`; translations cached from it must not outlive the pause.
public struct PausedGuest: Sendable {
    public let memory: GuestMemory
    public let vcpus: [VCPUSnapshot]

    public init(memory: GuestMemory, vcpus: [VCPUSnapshot]) {
        self.memory = memory
        self.vcpus = vcpus
    }
}
