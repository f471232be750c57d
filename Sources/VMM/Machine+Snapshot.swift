import Foundation
import GuestMemory
import KVM
import KVMState
import SnapshotFile
import Synchronization

/// What a snapshot save wrote.
public struct SnapshotSaveReport: Sendable {
    public let path: String
    /// Non-zero RAM pages written (the rest are holes).
    public let pagesWritten: Int
    /// How long the guest was paused for the save.
    public let pausedSeconds: Double
    /// What the file takes on disk (its RAM is sparse).
    public let bytesOnDisk: UInt64
    /// Parts of the KVM state this host would not give (listed, the rest saved).
    public let refusals: [String]
}

/// What a restore left out (parts the host refused) and the monitor state the file carried.
public struct RestoreSummary: Sendable {
    public let refusals: [String]
    public let monitor: MachineSnapshotState
}

extension SnapshotContents {
    /// Whether the saving guest was waiting for its payload (so a restore can give it a command).
    public var monitorStateSaysGuestAwaitsPayload: Bool {
        (try? MachineSnapshotState.decode(monitorState))?.guestAwaitsPayload ?? false
    }
}

/// The machine-level monitor state in a snapshot file (its monitor section, JSON): what the
/// restoring monitor must know beyond KVM and the devices. Gate breakpoints are not saved: each
/// vCPU's assistant places them again from the guest's IDT after the restore.
public struct MachineSnapshotState: Codable, Sendable, Equatable {
    public static let formatVersion = 1
    public var formatVersion = Self.formatVersion
    /// `HostPolicy.name` of the monitor that saved it.
    public var hostPolicy: String
    public var timeDilation: UInt32
    /// The guest was waiting for its payload (a command can be given to the restored guest).
    public var guestAwaitsPayload: Bool
    /// Opaque state of the monitor's trap handler (allocation tracking), if it saved one.
    public var tracking: Data?
    /// The trap handler was acting (the guest had taken its payload): it acts from the restore on.
    public var trapHandlerActive: Bool?

    public init(hostPolicy: String, timeDilation: UInt32, guestAwaitsPayload: Bool, tracking: Data? = nil,
                trapHandlerActive: Bool = false) {
        self.hostPolicy = hostPolicy
        self.timeDilation = timeDilation
        self.guestAwaitsPayload = guestAwaitsPayload
        self.tracking = tracking
        self.trapHandlerActive = trapHandlerActive
    }

    func encoded() -> [UInt8] { (try? [UInt8](JSONEncoder().encode(self))) ?? [] }

    /// Reads the monitor section of a snapshot file (JSON, its own format version).
    public static func decode(_ bytes: [UInt8]) throws(VMMError) -> MachineSnapshotState {
        guard !bytes.isEmpty else { throw .snapshot("the file holds no monitor state") }
        let state: MachineSnapshotState
        do { state = try JSONDecoder().decode(MachineSnapshotState.self, from: Data(bytes)) } catch {
            throw .snapshot("unreadable monitor state: \(error)")
        }
        guard state.formatVersion == formatVersion else {
            throw .snapshot("monitor state format \(state.formatVersion); this monitor reads \(formatVersion)")
        }
        return state
    }
}

extension Machine {
    /// A cold boot of `config` that saves a snapshot at `path` when the guest first asks for its
    /// payload (the point every later run restores to), then offers the guest `payload()`.
    /// `saved` is told how the save went (from a helper thread); the run goes on either way.
    public static func bootSavingSnapshot(_ config: MachineConfiguration, policy: any HostPolicy = HostDetection.detect(),
                                          to path: String, identity: SnapshotIdentity,
                                          payload: @escaping @Sendable () -> [UInt8],
                                          saved: @escaping @Sendable (Result<SnapshotSaveReport, VMMError>) -> Void) throws(VMMError) -> Machine {
        let box = LateMachine()
        var config = config
        config.payload = nil
        config.guestAwaitsPayload = {
            Thread {
                guard let machine = box.value else { return }
                do throws(VMMError) {
                    saved(.success(try machine.saveSnapshot(to: path, identity: identity)))
                } catch {
                    saved(.failure(error))
                }
                machine.offerPayload(payload())
            }.start()
        }
        let machine = try Machine(config, policy: policy)
        box.set(machine)
        return machine
    }

    /// The guest's work: a newc cpio archive its init fetches with `lv-payload`.
    public func offerPayload(_ bytes: [UInt8]) {
        devices.payload.offer(bytes)
    }

    /// Whether the trap handler may have placed anything in the guest: it is active (from the
    /// start, or since the guest took its payload).
    public var trapHandlerMayHaveActed: Bool { trapHandlers.current.handler != nil && state.trapHandlerActive }

    /// Whether the guest said it took its payload (its command starts then).
    public var payloadTaken: Bool { devices.payload.taken }

    /// Whether the guest is polling for a payload that has not been offered.
    public var guestAwaitsPayload: Bool { devices.payload.guestIsWaiting }

    /// Saves the running guest into a snapshot file at `path` (atomically): every vCPU is paused
    /// with its last exit completed, then KVM's state, the devices and the RAM are written, and the
    /// guest goes on. `tracking` gives the trap handler's own state, if it has one to keep: it is
    /// called while the guest is paused, so that the state matches the saved RAM.
    public func saveSnapshot(to path: String, identity: SnapshotIdentity, tracking: (() throws -> Data?)? = nil,
                             timeout: Double = 30) throws(VMMError) -> SnapshotSaveReport {
        let started = ContinuousClock.now
        let (vm, vcpus, kvm, devices, memory, policy, state) = (self.vm, self.vcpus, self.kvm, self.devices, self.memory, self.policy, self.state)
        do {
            return try state.pause.pause(timeout: timeout, quiesce: true, kick: { for t in state.threads { VCPUKick.kick(t) } }) { _ in
                let (captured, refusals) = try VMState.capture(vm: vm, vcpus: vcpus, host: HostStateFacts(kvm: kvm))
                let trackingState: Data?
                do { trackingState = try tracking?() } catch { throw VMMError.snapshot("the tracker's state: \(error)") }
                let monitor = MachineSnapshotState(hostPolicy: policy.name, timeDilation: policy.timeDilation,
                                                   guestAwaitsPayload: devices.payload.guestIsWaiting, tracking: trackingState,
                                                   trapHandlerActive: state.trapHandlerActive)
                let contents = SnapshotContents(identity: identity, vcpuCount: UInt32(vcpus.count), memoryLayout: memory.layout,
                                                timeDilation: Double(policy.timeDilation), kvmState: KVMStateFormat.encode(captured),
                                                devices: devices.snapshot(), monitorState: monitor.encoded())
                let pages = try SnapshotWriter.write(contents, memory: memory, to: path)
                var st = stat()
                let onDisk = stat(path, &st) == 0 ? UInt64(st.st_blocks) * 512 : 0
                return SnapshotSaveReport(path: path, pagesWritten: pages, pausedSeconds: seconds(since: started), bytesOnDisk: onDisk,
                                          refusals: refusals.map(\.description))
            }
        } catch let error as VMMError {
            throw error
        } catch {
            throw .snapshot("\(error)")
        }
    }
}

/// The machine of `bootSavingSnapshot`, for the callback configured before it exists.
private final class LateMachine: Sendable {
    private let machine = Mutex<Machine?>(nil)
    func set(_ value: Machine) { machine.withLock { $0 = value } }
    var value: Machine? { machine.withLock { $0 } }
}

/// Puts a snapshot's KVM state into a new VM (RAM and devices are the caller's).
enum SnapshotRestore {
    static func restore(_ snapshot: RestoredSnapshot, vm: VirtualMachine, vcpus: [VirtualCPU], kvm: KVMSystem,
                        policy: any HostPolicy) throws(VMMError) -> RestoreSummary {
        let monitor = try MachineSnapshotState.decode(snapshot.contents.monitorState)
        guard monitor.hostPolicy == policy.name else {
            throw .snapshot("it was made on a host with \(monitor.hostPolicy); this one has \(policy.name)")
        }
        let state: VMState
        do { state = try KVMStateFormat.decode(snapshot.contents.kvmState) } catch { throw .snapshot("KVM state: \(error)") }
        let refusals: [StateRefusal]
        do { refusals = try state.restore(vm: vm, vcpus: vcpus, host: HostStateFacts(kvm: kvm)) } catch {
            throw .snapshot("KVM state: \(error)")
        }
        return RestoreSummary(refusals: refusals.map(\.description), monitor: monitor)
    }
}
