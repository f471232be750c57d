/// How far a cold boot has come, as the machine sees it, for progress output.
public enum BootStage: Sendable, Equatable {
    /// The vCPUs were started at the kernel's entry point.
    case kernelStarting
    /// The guest's user space runs: the image's init said so through the control page, or a
    /// vCPU was seen running user-mode code.
    case userSpaceReached
}
