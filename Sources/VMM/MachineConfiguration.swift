import GuestInterface
/// What to boot and how: the inputs of `Machine`.
public struct MachineConfiguration: Sendable {
    /// Kernel image bytes (ELF vmlinux or bzImage).
    public var kernel: [UInt8]
    public var kernelName: String
    /// Initial ramdisk (may be several concatenated cpio archives).
    public var initrd: [UInt8]?
    /// Extra kernel command-line text from the user, appended last.
    public var extraCommandLine: String = ""
    public var memorySize: UInt64 = 512 << 20
    public var vcpuCount: Int = 1
    /// Show the kernel's boot messages instead of keeping the console quiet.
    public var verboseKernel = false
    /// Stop the guest after this many seconds (nil: never).
    public var timeoutSeconds: Double?
    /// Forward the monitor's standard input to the guest's serial console.
    public var forwardInput = false
    public var kvmDevicePath = "/dev/kvm"
    /// Raw disk images, each a virtio block device (the guest's /dev/vda, /dev/vdb, ...).
    public var disks: [DiskConfiguration] = []
    /// Where guest console output goes; nil means the monitor's stdout.
    public var consoleOutput: (@Sendable ([UInt8]) -> Void)?
    /// Called before each write of the guest's console output.
    public var consoleWillWrite: (@Sendable () -> Void)?
    /// Told when the boot reaches each `BootStage` (once each, from any thread): progress output.
    public var bootStages: (@Sendable (BootStage) -> Void)?
    /// Pass console output to a terminal stdout unchanged instead of through `TerminalSanitizer`.
    public var rawConsole = false
    /// Owner of the breakpoints the monitor plants in the guest (allocation tracking), if any.
    public var trapHandler: (any GuestTrapHandler)?
    /// How long `Machine.run()` waits, once the guest ended, for every vCPU thread to leave its
    /// loop (a vCPU may be finishing a trap, such as the scan of an exiting process).
    public var vcpuJoinSeconds: Double = 120

    public init(kernel: [UInt8], kernelName: String) {
        self.kernel = kernel
        self.kernelName = kernelName
    }

    /// Smallest guest memory we accept: the kernel image plus room for it to run.
    public static let minimumMemory: UInt64 = 128 << 20
}
