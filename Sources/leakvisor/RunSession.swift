import AllocationTracing
import Control
import Foundation
import GuestMemory
import GuestImage
import Introspection
import LeakAnalysis
import MetricsExport
import Monitor
import SnapshotFile
import VMM

/// Turns `run` options into a machine configuration, runs it, and reports the outcome.
struct RunSession {
    let options: RunOptions

    /// `leakvisor run` with nothing else: the main job on the default image, a tracked demo.
    static let demoScript = """
        uname -sr; echo "CPUs: $(grep -c ^processor /proc/cpuinfo)"
        echo "LeakVisor demo: lv-leak-tree builds heap graphs and drops some of them: a tree (1 direct + 6 indirect leaks),"
        echo "a cycle, a block held only by an interior pointer, a reachable cache, a pointer hidden by XOR."
        echo "The monitor traps its allocator calls from outside the guest and scans its memory for references as it exits."
        lv-leak-tree
        """

    init(options: RunOptions) {
        var options = options
        if options.command.isEmpty && options.track == nil && options.kernel == nil && options.initrd == nil && options.restore == nil
            && options.root == nil {
            options.command = ["sh", "-c", Self.demoScript]
            options.track = .user
        }
        // --root without a command: the disk's own shell (interactive when stdin is a terminal).
        if options.root != nil && options.command.isEmpty && options.restore == nil { options.command = ["/bin/sh"] }
        self.options = options
    }

    enum SessionError: Error, CustomStringConvertible {
        case noDefaultImage
        case unreadable(String, String)
        var description: String {
            switch self {
            case .noDefaultImage:
                return "the default guest image is not built; run scripts/setup.sh (or pass --kernel and --initrd)"
            case .unreadable(let path, let why): return "cannot read \(path): \(why)"
            }
        }
    }

    static func readFile(_ path: String) throws -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path) else { throw SessionError.unreadable(path, "no such file") }
        guard let data = FileManager.default.contents(atPath: path) else { throw SessionError.unreadable(path, "permission denied or not a regular file") }
        return [UInt8](data)
    }

    func configuration() throws -> MachineConfiguration {
        let image = GuestImageLocator.defaultDirectory()
        guard let kernelPath = options.kernel ?? image?.appendingPathComponent("vmlinux").path else { throw SessionError.noDefaultImage }
        let initrdPath = options.initrd ?? (options.kernel == nil ? image?.appendingPathComponent("initramfs.cpio").path : nil)
        var config = MachineConfiguration(kernel: try Self.readFile(kernelPath), kernelName: kernelPath)
        let initrd = try initrdPath.map(Self.readFile) ?? []
        config.initrd = initrd.isEmpty ? nil : initrd
        // The command and --add files reach the guest after its boot (or a restore), as a payload
        // its init fetches; tracking starts when it has taken it.
        config.payload = try payloadMaker()()
        config.trapHandlerAwaitsPayload = GuestPayload.fetcherIsPresent(in: initrd)
        config.memorySize = options.memoryBytes
        config.vcpuCount = options.cpus
        config.extraCommandLine = options.append
        config.verboseKernel = options.verboseKernel
        config.timeoutSeconds = options.timeout
        config.kvmDevicePath = options.kvmDevice
        config.disks = RootDisk.attachmentOrder(root: options.root, disks: options.disks)
        config.forwardInput = options.interactive || isatty(0) == 1
        config.rawConsole = options.rawConsole
        // A vCPU may be scanning an exiting process when the guest ends: wait for that scan.
        config.vcpuJoinSeconds = max(config.vcpuJoinSeconds, options.tracking.scanLimits.scanSeconds + 10)
        return config
    }

    /// Builds this run's payload stamped with the time of the call: once for the configuration,
    /// and again when a cold boot hands it over after saving its snapshot, minutes later.
    func payloadMaker() -> @Sendable () throws -> [UInt8] {
        let (command, additions, virtio, root) = (options.command, options.additions, !options.disks.isEmpty, options.rootDevice)
        return {
            try GuestPayload.archive(command: command, additions: additions, unixTime: Int(Date().timeIntervalSince1970),
                                     loadVirtio: virtio, rootDevice: root)
        }
    }

    enum TrackingError: Error, CustomStringConvertible {
        case noKernelImage
        var description: String { "--track needs the guest kernel's vmlinux (give --vmlinux when booting a bzImage)" }
    }

    /// The monitor region of an exitless run: above the machine's RAM (the snapshot's, when restoring).
    static func monitorRegion(_ start: MachineStart, config: MachineConfiguration, restoredTracking: Bool) throws -> MonitorRegion {
        struct ExitlessRefused: Error, CustomStringConvertible { var description: String }
        guard !restoredTracking else {
            throw ExitlessRefused(description: "--exitless cannot continue a snapshot of a tracked guest (it was saved with breakpoints only)")
        }
        var memorySize = config.memorySize
        if case .restore(let snapshot, _, _) = start { memorySize = snapshot.memory.totalSize }
        return try MonitorRegion(start: MonitorRegion.defaultStart(memorySize: memorySize), size: UserAllocationTracker.exitlessRegionBytes)
    }

    /// The monitor's output for a tracking session: its lines and reports on stderr.
    static let sessionOutput = SessionOutput(line: { MonitorOutput.say($0) }, text: { MonitorOutput.write($0) })

    func execute() throws -> Int32 {
        var config = try configuration()
        let policy = HostDetection.detect()
        let identity = SnapshotCache.identity(of: config)
        let start = try chooseStart(config: config, identity: identity, policy: policy)
        var restoring = false
        if case .restore = start { restoring = true }
        let progress = BootProgress(restoring: restoring)
        defer { progress.stop() }
        if !restoring {
            config.bootStages = { progress.reached($0) }
            config.consoleWillWrite = { progress.consoleWillWrite() }
        }
        // A snapshot of a tracked guest goes on being tracked, with or without --track.
        let (track, restoredTracking) = try trackingToContinue(start)
        var trackingOptions = track.map(options.trackingOptions(for:)) ?? options.tracking
        if trackingOptions.exitless, track?.tracksUser == true {
            let region = try Self.monitorRegion(start, config: config, restoredTracking: restoredTracking != nil)
            config.monitorRegion = region
            trackingOptions.monitorRegion = region
        }
        let userTracking = try track.flatMap { track -> UserTracking? in
            guard track.tracksUser else { return nil }
            guard let vmlinux = vmlinuxPath() else { throw TrackingError.noKernelImage }
            return try TrackingSession.prepare(vmlinux: vmlinux, kernelSymbolFile: options.kernelSymbols.map(HostPathArgument.absolute),
                                               files: symbolFiles(), options: trackingOptions, output: Self.sessionOutput,
                                               restoring: restoredTracking)
        }
        let kernelTracking = try track.flatMap { track -> KernelTrackingSession? in
            guard track.tracksKernel else { return nil }
            guard let vmlinux = vmlinuxPath() else { throw TrackingError.noKernelImage }
            return try KernelTrackingSession.prepare(vmlinux: vmlinux, kernelSymbolFile: options.kernelSymbols.map(HostPathArgument.absolute),
                                                     kernel: userTracking?.kernel, output: Self.sessionOutput)
        }
        // The trackers are the machine's before it runs; the session is made with the machine, before
        // `run()` starts the vCPUs that may arm it. With both, each trap goes to the one that owns it.
        config.trapHandler = TrapHandlerChain.combining([userTracking?.tracker, kernelTracking?.tracker])
        let (machine, _) = try makeMachine(start, config: config, identity: identity, policy: policy)
        kernelTracking?.scan(machine, every: trackingOptions.scanInterval)
        let tracking = userTracking.map {
            TrackingSession(tracking: $0, guest: machine, files: symbolFiles(), options: trackingOptions, output: Self.sessionOutput,
                            kernelTracking: kernelTracking)
        }
        let attachment = TrackingAttachment(session: tracking, makeSession: attachedSessionMaker(machine: machine))
        let signals = SignalForwarding(stop: { machine.interrupt() }, report: { attachment.current?.printReport(final: false) })
        defer { signals.cancel() }
        let control = startControlServer(machine: machine, tracking: attachment, kernelTracking: kernelTracking, identity: identity)
        defer { control?.stop() }
        let metrics = try options.metricsAddress.flatMap { address in try tracking?.serveMetrics(at: address) }
        defer { metrics?.stop() }
        let outcome = machine.run()
        progress.stop()
        let status = report(outcome, machine: machine)
        kernelTracking?.stopScanning()
        kernelTracking?.printSummary()
        // The session made at the start, or by `leakvisor attach` while the guest ran; or the kernel's alone.
        let finished = attachment.current.map { $0.finish() } ?? kernelTracking.map { $0.finish(jsonPath: trackingOptions.jsonPath) }
        guard let (written, final) = finished else { return status }
        if !written { return status == 0 ? 125 : status }
        if let code = options.errorExitcode, final.definiteLeaks > 0 {
            MonitorOutput.say("\(final.definiteLeaks) definite leak(s): exit status \(code) (--error-exitcode)")
            return code
        }
        return status
    }

    /// The guest kernel's vmlinux (symbols and BTF for introspection), if known.
    func vmlinuxPath() -> String? {
        options.vmlinux ?? options.kernel ?? GuestImageLocator.defaultDirectory()?.appendingPathComponent("vmlinux").path
    }

    /// Where the host copies of the guest's files are: --symbols, the image's rootfs, --add, host libraries.
    func symbolFiles() -> GuestSymbolFiles {
        // --root with the recipe's Debian disk: its tree holds the host copies of the disk's files.
        var tree: String?
        if let root = options.root, let build = GuestImageLocator.defaultDirectory()?.deletingLastPathComponent().path {
            tree = RootDisk.recipeTree(forImage: root.path, buildDirectory: build)
        }
        var files = GuestSymbolFiles.forCommandLine(directories: options.symbolDirectories, extraRoots: tree.map { [$0] } ?? [])
        for spec in (try? options.additions.map(HostFileSpec.init(parsing:))) ?? [] {
            files.explicit[spec.guest] = HostPathArgument.absolute(spec.host)
        }
        return files
    }

    /// The socket `leakvisor inspect` talks to. A monitor without one still runs the guest.
    func startControlServer(machine: Machine, tracking: TrackingAttachment, kernelTracking: KernelTrackingSession?,
                            identity: SnapshotIdentity) -> ControlServer? {
        guard let vmlinux = vmlinuxPath() else { return nil }
        let service = InspectionService(guest: machine, vmlinuxPath: vmlinux,
                                        kernelSymbolFile: options.kernelSymbols.map(HostPathArgument.absolute), symbols: symbolFiles(),
                                        tracking: { tracking.current }, kernelTracking: kernelTracking)
        do {
            return try ControlServer(note: { MonitorOutput.say("control socket: \($0)") }, handler: { request in
                switch request {
                case .snapshot(let path):
                    // The kernel tracker's patches are not part of a snapshot's tracking state.
                    if let kernelTracking, kernelTracking.tracker.patchesInPlace > 0 {
                        return ControlResponse(error: "kernel allocation tracking cannot be saved in a snapshot; leakvisor detach first")
                    }
                    return Self.saveOnRequest(machine, tracking: tracking.current, path: path, identity: identity)
                case .attach(let track, let reportPath):
                    do {
                        let summary = try tracking.attach(track: track, reportPath: reportPath)
                        MonitorOutput.say("attached: \(summary.arming.sites) allocator breakpoint(s), \(summary.preexisting.blocks)"
                                          + " block(s) of \(summary.preexisting.bytes) byte(s) allocated before the attach")
                        return ControlResponse(attached: summary)
                    } catch {
                        return ControlResponse(error: "\(error)")
                    }
                default:
                    return service.handle(request)
                }
            })
        } catch {
            MonitorOutput.say("inspection is unavailable: \(error)")
            return nil
        }
    }

    /// How `leakvisor attach` makes the session of a run started without --track: the kernel's
    /// symbols and BTF are read then (seconds), not at every run's start.
    func attachedSessionMaker(machine: Machine) -> TrackingAttachment.SessionMaker {
        let (vmlinux, symbolFile, files, base) = (vmlinuxPath(), options.kernelSymbols.map(HostPathArgument.absolute), symbolFiles(),
                                                 options.tracking)
        return { track, reportPath in
            guard let vmlinux else { throw TrackingError.noKernelImage }
            var options = base
            options.includeOperators = track.includesOperators
            options.jsonPath = reportPath
            let tracking = try TrackingSession.prepare(vmlinux: vmlinux, kernelSymbolFile: symbolFile, files: files, options: options,
                                                       output: Self.sessionOutput)
            return TrackingSession(tracking: tracking, guest: machine, files: files, options: options, output: Self.sessionOutput)
        }
    }

    func report(_ outcome: MachineOutcome, machine: Machine) -> Int32 {
        func say(_ text: String) { MonitorOutput.say(text) }
        if !outcome.vcpusNotJoined.isEmpty {
            say("note: vCPU(s) \(outcome.vcpusNotJoined.map(String.init).joined(separator: ", ")) did not stop within"
                + " \(Int(machine.configuration.vcpuJoinSeconds)) s after the guest ended; the report may race with them")
        }
        switch outcome.ending {
        case .exited(let status): return status
        case .reset:
            say("the guest rebooted or its kernel panicked before reporting an exit status")
            return 125
        case .shutdown:
            say("the guest shut down unexpectedly (triple fault)")
            return 125
        case .timedOut(let s):
            say("timed out after \(s) s; stopped the guest")
            return 124
        case .interrupted:
            say("interrupted; stopped the guest")
            return 130
        case .failed(let error):
            say(error.description)
            return 125
        }
    }
}
