import GuestInterface
import Boot
import CKVM
import Devices
import Foundation
import GuestMemory
import KVM
import SnapshotFile

/// A LeakVisor virtual machine, booted (KVM → VM → memory → kernel → initrd → boot parameters →
/// devices → vCPUs) or restored from a snapshot file (`Machine+Snapshot.swift`); `run` drives
/// the vCPUs until the guest ends.
// SAFETY: @unchecked Sendable: every stored property is immutable after init and itself thread-safe (Sendable or internally locked).
public final class Machine: @unchecked Sendable {
    public let configuration: MachineConfiguration
    public let policy: any HostPolicy
    public let memory: GuestMemory
    /// Which guest frames were written between harvests. Off until its `enable()`.
    public let pageWrites: DirtyPageLog
    /// The scanners that read `pageWrites`, each with its own intervals.
    let writeLogReaders: WriteLogReaders
    /// Set when the machine continues a snapshot instead of booting: what the restore left out.
    public let restore: RestoreSummary?
    let kvm: KVMSystem
    let vm: VirtualMachine
    let vcpus: [VirtualCPU]
    let state: MachineState
    let console: GuestConsole
    let devices: DeviceHub
    /// The trap handler the vCPUs call: `configuration.trapHandler`, or one installed later.
    let trapHandlers: TrapHandlerSlot

    /// How a machine starts: a cold boot of `configuration`'s kernel, or a snapshot's state.
    private enum Start {
        case boot
        case restore(RestoredSnapshot)
    }

    /// A machine that boots `config`'s kernel and initramfs.
    public convenience init(_ config: MachineConfiguration, policy: any HostPolicy = HostDetection.detect()) throws(VMMError) {
        try self.init(config, policy: policy, start: .boot)
    }

    /// A machine that continues `snapshot` where it was saved: its RAM (copy-on-write over the
    /// file), vCPUs, interrupt controllers, PIT, clock and devices. `config` gives what the file
    /// does not hold (disks, console, trap handler, timeouts); its kernel, initramfs, vCPU count
    /// and memory size are the snapshot's.
    public convenience init(restoring snapshot: RestoredSnapshot, _ config: MachineConfiguration,
                            policy: any HostPolicy = HostDetection.detect()) throws(VMMError) {
        try self.init(config, policy: policy, start: .restore(snapshot))
    }

    private init(_ requested: MachineConfiguration, policy: any HostPolicy, start: Start) throws(VMMError) {
        var config = requested
        if case .restore(let snapshot) = start {
            config.vcpuCount = Int(snapshot.contents.vcpuCount)
            config.memorySize = snapshot.memory.totalSize
        }
        guard (1...64).contains(config.vcpuCount) else { throw .configuration("--cpus must be between 1 and 64") }
        guard config.memorySize >= MachineConfiguration.minimumMemory else {
            throw .configuration("--memory \(config.memorySize >> 20) MiB is too small; the guest needs at least \(MachineConfiguration.minimumMemory >> 20) MiB")
        }
        guard config.disks.count <= ACPITables.maximumVirtioDevices else {
            throw .configuration("at most \(ACPITables.maximumVirtioDevices) disks are supported")
        }
        self.configuration = config
        self.policy = policy
        self.trapHandlers = TrapHandlerSlot(config.trapHandler)
        let state = MachineState(bootStages: config.bootStages, trapHandlerActive: !config.trapHandlerAwaitsPayload)
        self.state = state
        self.console = GuestConsole(sink: config.consoleOutput, sanitizing: config.rawConsole ? false : nil,
                                    willWrite: config.consoleWillWrite)
        do {
            kvm = try KVMSystem(path: config.kvmDevicePath)
            try kvm.requireExtension(CKVM_CAP_IRQCHIP, name: "KVM_CAP_IRQCHIP")
            try kvm.requireExtension(CKVM_CAP_USER_MEMORY, name: "KVM_CAP_USER_MEMORY")
            try kvm.requireExtension(CKVM_CAP_EXT_CPUID, name: "KVM_CAP_EXT_CPUID")
            vm = try kvm.createVM()
            try? vm.setTSSAddress(0xFFFB_D000)          // VMX real-mode support; not needed elsewhere
            try? vm.setIdentityMapAddress(0xFFFB_C000)
            try vm.createIRQChip()
            try vm.createPIT()
        } catch { throw .kvm(error) }

        switch start {
        case .boot: do { memory = try GuestMemory(size: config.memorySize) } catch { throw .memory(error) }
        case .restore(let snapshot): memory = snapshot.memory
        }
        let supported: [CPUIDEntry]
        var cpus: [VirtualCPU] = []
        do {
            supported = try kvm.supportedCPUID()
            for index in 0..<config.vcpuCount { cpus.append(try vm.createVCPU(id: index)) }
        } catch { throw .kvm(error) }
        let tscKHz = (try? cpus[0].tscKHz()) ?? 0
        try DirtyPageLog.registerSlots(vm: vm, memory: memory, logDirtyPages: false)
        pageWrites = DirtyPageLog(vm: vm, memory: memory)
        if let region = config.monitorRegion { try Self.register(region, vm: vm, ramEnd: memory.regions.last?.end) }
        writeLogReaders = WriteLogReaders(source: pageWrites)

        var disks: [VirtioBlock] = []
        for disk in config.disks {
            do { disks.append(try VirtioBlock(path: disk.path, readOnly: disk.readOnly)) } catch { throw .disk(error) }
        }
        let awaits = config.guestAwaitsPayload
        let payload = PayloadChannel(onWaiting: { awaits?() }, onTaken: { state.activateTrapHandler() })
        if let bytes = config.payload { payload.offer(bytes) }
        do {
            devices = try DeviceHub(vm: vm, state: state, console: console, disks: disks, memory: memory, payload: payload)
        } catch { throw .bus(error) }

        switch start {
        case .boot:
            restore = nil
            let kernel: LoadedKernel
            let commandLine: KernelCommandLine
            do throws(BootError) {
                kernel = try KernelImage.load(config.kernel, into: memory)
                var cmdline = try KernelCommandLine()
                try cmdline.append(StandardKernelArguments.words(verbose: config.verboseKernel).joined(separator: " "))
                try cmdline.append(policy.kernelArguments(tscKHz: tscKHz).joined(separator: " "))
                try cmdline.append(config.extraCommandLine)
                commandLine = cmdline
            } catch { throw .boot(error) }
            try Self.writeBootData(kernel: kernel, commandLine: commandLine, initrd: config.initrd,
                                   cpus: config.vcpuCount, virtio: DeviceHub.virtioDescriptions(diskCount: config.disks.count),
                                   memory: memory)
            do {
                for (index, vcpu) in cpus.enumerated() {
                    try VCPUSetup.configure(vcpu, cpuid: policy.cpuid(supported: supported, vcpu: index, of: config.vcpuCount))
                }
                try VCPUSetup.enterKernel(cpus[0], entry: kernel.entry.rawValue, bootParams: BootLayout.bootParams.rawValue)
            } catch { throw .kvm(error) }
        case .restore(let snapshot):
            try devices.restore(snapshot.contents.devices)
            let summary = try SnapshotRestore.restore(snapshot, vm: vm, vcpus: cpus, kvm: kvm, policy: policy)
            restore = summary
            // The trap handler acts from the restore on if it was acting when saved (tracking armed).
            if summary.monitor.trapHandlerActive == true { state.activateTrapHandler() }
        }
        vcpus = cpus
    }

    private static func writeBootData(kernel: LoadedKernel, commandLine: KernelCommandLine, initrd: [UInt8]?,
                                      cpus: Int, virtio: [VirtioMMIODeviceDescription], memory: GuestMemory) throws(VMMError) {
        func write(_ bytes: [UInt8], at address: GuestPhysicalAddress) throws(VMMError) {
            do { try memory.write(bytes, at: address) } catch { throw .memory(error) }
        }
        func boot<T>(_ body: () throws(BootError) -> T) throws(VMMError) -> T {
            do { return try body() } catch { throw .boot(error) }
        }
        var params = BootParams(kernel: kernel)
        let maximum = min(kernel.commandLineMaximum, BootLayout.commandLineMaximum - 1)
        try write(try boot { () throws(BootError) in try commandLine.encoded(maximum: maximum) }, at: BootLayout.commandLine)
        params.setCommandLine(at: BootLayout.commandLine)
        if let initrd, !initrd.isEmpty {
            let at = try boot { () throws(BootError) in try InitrdPlacement.address(size: UInt64(initrd.count), kernel: kernel, memory: memory) }
            try write(initrd, at: at)
            params.setInitrd(at: at, size: UInt64(initrd.count))
        }
        params.setMemoryMap(E820Map(memory: memory))
        try write(ACPITables.blob(cpuCount: cpus, virtioDevices: virtio), at: ACPITables.base)
        params.setACPIRoot(at: ACPITables.base)
        try write(params.bytes, at: BootLayout.bootParams)
        try boot { () throws(BootError) in try EarlyPageTables.write(into: memory) }
    }

    /// Runs the guest to its end. Blocks the calling thread; returns once every vCPU thread has
    /// left its loop (or, if one would not, says so in `MachineOutcome.vcpusNotJoined`).
    public func run() -> MachineOutcome {
        VCPUKick.installHandler()
        if configuration.forwardInput { startInputForwarding() }
        let threads = VCPUThreads()
        for vcpu in vcpus {
            let (state, devices, policy, memory, trapHandlers) = (self.state, self.devices, self.policy, self.memory, self.trapHandlers)
            threads.start(id: vcpu.id) {
                VCPUKick.acceptKicksOnThisThread()
                state.register(thread: pthread_self())
                let assistant = policy.makeAssistant(memory: memory, trapHandlers: trapHandlers)
                assistant.trapHandlerActive = { state.trapHandlerActive }
                VCPULoop(vcpu: vcpu, devices: devices, state: state, assistant: assistant, memory: memory,
                         userModeStateSavable: policy.userModeStateSavable).run()
            }
        }
        if restore == nil { configuration.bootStages?(.kernelStarting) }
        if Trace.enabled { startSampling() }
        if let timeout = configuration.timeoutSeconds {
            if state.finished.wait(timeout: .now() + timeout) == .timedOut {
                state.finish(.timedOut(seconds: timeout))
            }
        } else {
            state.finished.wait()
        }
        let totalSeconds = seconds(since: state.startedAt)
        let notJoined = stopVCPUs(threads)
        var outcome = state.outcome(totalSeconds: totalSeconds)
        outcome.vcpusNotJoined = notJoined
        return outcome
    }

    /// Stops every vCPU, runs `body` on the consistent guest they leave behind, and resumes them.
    /// Callable from any thread while `run` is in progress; fails if the vCPUs do not stop in time.
    public func withGuestPaused<T>(timeout: Double = 10, _ body: (PausedGuest) throws -> T) throws -> T {
        let state = self.state
        return try state.pause.pause(timeout: timeout, kick: { for t in state.threads { VCPUKick.kick(t) } }) { snapshots in
            try body(PausedGuest(memory: memory, vcpus: snapshots))
        }
    }

    /// Installs `handler` as the trap handler of the running guest (`leakvisor attach`), acting at
    /// once. Call with the guest paused (inside `withGuestPaused`): each vCPU places the gate
    /// breakpoints the handler needs before it runs guest code again.
    public func installTrapHandler(_ handler: (any GuestTrapHandler)?) {
        trapHandlers.install(handler)
        if handler != nil { state.activateTrapHandler() }
    }

    /// Bytes for the guest's serial console, as if typed.
    public func typeIntoConsole(_ bytes: [UInt8]) {
        devices.serial.receive(bytes)
    }

    /// Stops the run from another thread (e.g. on SIGINT).
    public func interrupt() {
        state.finish(.interrupted)
    }

    /// Asks every vCPU to leave KVM_RUN and kicks the threads until all have left their loops;
    /// returns those that did not within `configuration.vcpuJoinSeconds`.
    private func stopVCPUs(_ threads: VCPUThreads) -> [Int] {
        for vcpu in vcpus { vcpu.requestExit() }
        let state = self.state
        return threads.join(timeout: configuration.vcpuJoinSeconds) {
            for t in state.threads { VCPUKick.kick(t) }
        }
    }

    /// LEAKVISOR_TRACE: kick every vCPU once a second so the loop logs where it is.
    private func startSampling() {
        let state = self.state
        let thread = Thread {
            while !state.stopping {
                sleep(1)
                for t in state.threads { VCPUKick.kick(t) }
            }
        }
        thread.start()
    }

    private func startInputForwarding() {
        let serial = devices.serial
        let thread = Thread {
            var buffer = [UInt8](repeating: 0, count: 256)
            while true {
                // SAFETY: `buffer` holds 256 bytes, the most read() writes.
                let n = buffer.withUnsafeMutableBytes { Glibc.read(0, $0.baseAddress, 256) }
                if n <= 0 { return }
                serial.receive(Array(buffer[0..<n]))
            }
        }
        thread.start()
    }
}
