import GuestInterface
import GuestMemory
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
    /// Guest-physical memory the monitor maps into guest address spaces itself (exitless
    /// tracking), registered as a memory slot of its own, outside the e820 map.
    public var monitorRegion: MonitorRegion?
    /// The trap handler starts when the guest takes its payload instead of at its first user-mode
    /// code, so that a snapshot made while the guest waits for its payload holds no breakpoint
    /// (the default image's init fetches one with `lv-payload`).
    public var trapHandlerAwaitsPayload = false
    /// The guest's work (a newc cpio archive: /leakvisor/command, --add files), offered from the
    /// start (by default an empty one: the image's init runs its demo); nil to offer it later with
    /// `Machine.offerPayload`.
    public var payload: [UInt8]? = []
    /// Called once, on a vCPU thread, when the guest first asks for a payload not yet offered: the
    /// point to save a snapshot (from another thread) before offering it. Must not block.
    public var guestAwaitsPayload: (@Sendable () -> Void)?
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
