import AllocationLedger
import AllocationTracing
import Control
import Foundation
import GuestInterface
import Introspection
import LeakAnalysis
import Synchronization

/// Answers `leakvisor inspect` for the guest this monitor runs: pauses the guest, reads the
/// kernel's structures through a `KernelView`, resumes. The kernel image is parsed once, on the
/// first question (kallsyms and BTF from the vmlinux file).
public final class InspectionService: Sendable {
    let guest: any InspectableGuest
    let vmlinuxPath: String
    let kernelSymbolFile: String?
    let symbols: GuestSymbolFiles
    /// The tracking session now (it may be made by `leakvisor attach` while the guest runs).
    let currentTracking: @Sendable () -> TrackingSession?
    /// Kernel allocation tracking (`--track kernel` / `all`), if the run has it.
    let kernelTracking: KernelTrackingSession?
    private let kernel = Mutex<GuestKernel?>(nil)

    public init(guest: any InspectableGuest, vmlinuxPath: String, kernelSymbolFile: String?, symbols: GuestSymbolFiles,
                tracking: @escaping @Sendable () -> TrackingSession?, kernelTracking: KernelTrackingSession? = nil) {
        self.currentTracking = tracking
        self.kernelTracking = kernelTracking
        self.guest = guest
        self.vmlinuxPath = vmlinuxPath
        self.kernelSymbolFile = kernelSymbolFile
        self.symbols = symbols
    }

    public func handle(_ request: ControlRequest) -> ControlResponse {
        let tracking = currentTracking()
        switch request {
        case .report(let all):
            // The kernel ledger's summary goes to the monitor's output; its leaks are in the report.
            kernelTracking?.printSummary()
            kernelTracking?.scanNow(reason: "leakvisor report")
            guard let tracking else {
                if let kernelTracking {
                    return ControlResponse(report: LeakReport.kernelOnly(kernelTracking.report(), seconds: kernelTracking.tracker.clock.seconds))
                }
                return ControlResponse(error: "this monitor is not tracking allocations (run it with --track user, or leakvisor attach)")
            }
            tracking.scanNow(reason: "leakvisor report")
            return ControlResponse(report: tracking.report(final: false, allProcesses: all ? true : nil))
        case .detach:
            guard tracking != nil || kernelTracking != nil else {
                return ControlResponse(error: "this monitor is not tracking allocations (run it with --track user, or leakvisor attach)")
            }
            do {
                var summary = try tracking?.detach() ?? ArmingSummary()
                if let kernelTracking { summary.add(try kernelTracking.detach(guest)) }
                return ControlResponse(detached: summary)
            } catch {
                return ControlResponse(error: "\(error)")
            }
        case .snapshot:
            return ControlResponse(error: "this monitor cannot save snapshots")
        case .attach:
            return ControlResponse(error: "this monitor cannot attach")
        default:
            break
        }
        do {
            let kernel = try loadedKernel()
            return try guest.withGuestPaused(timeout: 10) { paused in
                let view = try KernelView(kernel: kernel, memory: paused.memory, vcpus: paused.vcpus)
                switch request {
                case .processes:
                    return ControlResponse(processes: try view.processes())
                case .mappings(let pid):
                    return ControlResponse(mappings: try view.mappings(of: pid))
                case .modules:
                    var response = ControlResponse()
                    response.modules = try view.loadedModules()
                    return response
                case .stacks(let pid):
                    return ControlResponse(stacks: try GuestStackReader(view: view, files: symbols).stacks(of: pid))
                case .symbol(let address, let pid):
                    if let pid {
                        return ControlResponse(symbol: try GuestStackReader(view: view, files: symbols).symbolize(address, in: pid))
                    }
                    guard let frame = view.kernelFrame(address, isReturnAddress: false, method: "kernel symbol",
                                                       lines: view.kernelLineTable()) else {
                        return ControlResponse(error: "0x\(String(address, radix: 16)) is not in the guest kernel's image; give --pid for a user address")
                    }
                    return ControlResponse(symbol: frame)
                case .kernelRoots:
                    return ControlResponse(kernelRoots: KernelRootsSummary.measure(view: view))
                case .kernelReferrers(let address):
                    var response = ControlResponse()
                    response.kernelReferrers = referrers(of: address, view: view)
                    return response
                case .report, .detach, .snapshot, .attach:
                    return ControlResponse(error: "unreachable")
                }
            }
        } catch {
            return ControlResponse(error: "\(error)")
        }
    }

    private func loadedKernel() throws -> GuestKernel {
        if let k = kernel.withLock({ $0 }) { return k }
        let loaded = try GuestKernel.load(vmlinux: vmlinuxPath, symbolFile: kernelSymbolFile)
        kernel.withLock { $0 = loaded }
        return loaded
    }

    /// The referrers of the tracked object holding `address` (its whole range), or of that byte.
    func referrers(of address: UInt64, view: KernelView) -> KernelReferrerSearch {
        let objects = kernelTracking?.tracker.ledger.liveObjects() ?? []
        let holder = objects.last { $0.address <= address && address - $0.address < max($0.allocatedSize, 1) }
        let target = holder.map { $0.address..<$0.address &+ max($0.allocatedSize, 1) } ?? address..<address &+ 1
        let modules = (try? view.loadedModules()) ?? []
        return KernelReferrerSearch.search(target: target, tracked: holder != nil, view: view,
                                           objects: objects.map(KernelTrackingSession.scanObject), extraRoots: modules.flatMap(\.dataRanges))
    }
}
