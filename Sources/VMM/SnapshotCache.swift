import Foundation
import Glibc
import SnapshotFile

/// Where `leakvisor run` keeps the snapshot of a booted image, and which file fits a machine:
/// one file per (kernel, initramfs, vCPUs, memory, kernel command line, host policy, time
/// dilation, monitor format), named by a digest of all of them. The file's header names the
/// kernel and initramfs digests again, so a stale or foreign file is refused on read.
public struct SnapshotCache: Sendable {
    /// Version of what LeakVisor writes into a snapshot beside KVM's state (devices, monitor state).
    public static let monitorFormatVersion: UInt32 = 1

    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    /// `LEAKVISOR_SNAPSHOT_DIR`, else `$XDG_CACHE_HOME/leakvisor/snapshots`, else
    /// `~/.cache/leakvisor/snapshots`.
    public static func defaultDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let dir = environment["LEAKVISOR_SNAPSHOT_DIR"], !dir.isEmpty { return dir }
        if let cache = environment["XDG_CACHE_HOME"], cache.hasPrefix("/") { return cache + "/leakvisor/snapshots" }
        let home = environment["HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? NSHomeDirectory()
        return home + "/.cache/leakvisor/snapshots"
    }

    /// What a snapshot of `config`'s kernel and initramfs must be made for.
    public static func identity(of config: MachineConfiguration) -> SnapshotIdentity {
        SnapshotIdentity(kernel: ImageDigest.sha256(config.kernel), initramfs: ImageDigest.sha256(config.initrd ?? []),
                         monitorFormatVersion: monitorFormatVersion)
    }

    /// The file for a machine of `config` on `policy`'s host, given its `identity`.
    public func path(for config: MachineConfiguration, identity: SnapshotIdentity, policy: any HostPolicy) -> String {
        let key = [
            "kernel=" + SnapshotIdentity.hex(identity.kernel), "initramfs=" + SnapshotIdentity.hex(identity.initramfs),
            "monitor=\(identity.monitorFormatVersion)", "cpus=\(config.vcpuCount)", "memory=\(config.memorySize)",
            "append=\(config.extraCommandLine)", "verbose=\(config.verboseKernel)", "virtio-slots=\(DeviceHub.slotCount(diskCount: config.disks.count))",
            "host=\(policy.name)", "dilation=\(policy.timeDilation)",
        ].joined(separator: "\n")
        let name = SnapshotIdentity.hex(ImageDigest.sha256(Array(key.utf8))).prefix(24)
        return directory + "/" + name + ".lvsnap"
    }

    /// Creates the directory (and its parents), private to the user: snapshots hold guest RAM.
    public func create() throws(VMMError) {
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            throw .file(path: directory, reason: "cannot create the snapshot directory: \(error.localizedDescription)")
        }
    }
}
