import Foundation
import GuestImage
import SnapshotFile
import VMM

/// Why a benchmark could not give its figures.
public enum BenchmarkError: Error, CustomStringConvertible {
    /// A benchmark boot did not end as the benchmark needs; the text says how, with the console's tail.
    case runFailed(String)
    case unreadable(path: String, reason: String)

    public var description: String {
        switch self {
        case .runFailed(let text): return text
        case .unreadable(let path, let reason): return "cannot read \(path): \(reason)"
        }
    }
}

/// Writes a line to stdout at once (unbuffered), so progress shows while the benchmark runs.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Which build measures: figures of a debug build are not comparable with a release build's.
enum BuildKind {
    #if DEBUG
    static let current = "debug"
    #else
    static let current = "release"
    #endif
}

/// The boots every benchmark starts from.
public enum BenchmarkBoot {
    /// A machine booting `kernel` with the image's initramfs and `command` (a shell command line)
    /// as the guest command (in the payload its init fetches).
    /// `additions` are host files for the guest, `HOST:GUEST` as `run --add` takes them.
    public static func configuration(kernel: URL, image: URL, command: String, additions: [String] = []) throws -> MachineConfiguration {
        var config = MachineConfiguration(kernel: try readFile(kernel.path), kernelName: kernel.path)
        config.initrd = try readFile(image.appendingPathComponent("initramfs.cpio").path)
        config.trapHandlerAwaitsPayload = GuestPayload.fetcherIsPresent(in: config.initrd ?? [])
        config.payload = try GuestPayload.archive(command: ["sh", "-c", command], additions: additions, unixTime: Int(Date().timeIntervalSince1970))
        return config
    }

    /// A machine for `config`: restored from the snapshot cache (`LEAKVISOR_SNAPSHOT_DIR` or its
    /// default, as `leakvisor run` uses it) when a snapshot of this image and machine shape waiting
    /// for its payload is there, else booted cold (minutes on kvm_pvm), saving that snapshot where
    /// the guest asks for its payload, as `leakvisor run` does, so that the next run of this shape
    /// starts in seconds. Says which.
    public static func machine(_ config: MachineConfiguration) throws -> Machine {
        let policy = HostDetection.detect()
        let identity = SnapshotCache.identity(of: config)
        let cache = SnapshotCache(directory: SnapshotCache.defaultDirectory())
        let path = cache.path(for: config, identity: identity, policy: policy)
        guard config.trapHandlerAwaitsPayload else {
            say("booting cold (this initramfs takes no payload, so no snapshot fits it; several minutes on kvm_pvm)")
            return try Machine(config, policy: policy)
        }
        if FileManager.default.fileExists(atPath: path),
           let snapshot = try? SnapshotReader.read(path, expecting: identity), snapshot.contents.monitorStateSaysGuestAwaitsPayload,
           let machine = try? Machine(restoring: snapshot, config, policy: policy) {
            say("restored the snapshot \(path)")
            return machine
        }
        do { try cache.create() } catch {
            say("booting cold without saving a snapshot (\(error); several minutes on kvm_pvm)")
            return try Machine(config, policy: policy)
        }
        say("booting cold (no snapshot of this image and machine shape in the snapshot cache; several minutes on kvm_pvm); saving one for the next run")
        let payload = config.payload ?? []
        return try Machine.bootSavingSnapshot(config, policy: policy, to: path, identity: identity, payload: { payload }, saved: { result in
            switch result {
            case .success(let saved): say("snapshot saved: \(path) (\(saved.bytesOnDisk >> 20) MiB on disk)")
            case .failure(let error): say("snapshot not saved: \(error)")
            }
        })
    }

    static func readFile(_ path: String) throws(BenchmarkError) -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path) else { throw .unreadable(path: path, reason: "no such file") }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadable(path: path, reason: "permission denied or not a regular file")
        }
        return [UInt8](data)
    }
}

/// Figures parsed from lv-compute and lv-syscalls output lines.
struct BenchFigures {
    var computeNanoseconds: UInt64?
    var syscallNanoseconds: Double?

    init() {}

    init(parsing text: String) {
        for line in text.split(whereSeparator: \.isNewline) {
            let words = line.split(separator: " ")
            if line.hasPrefix("compute:"), let i = words.firstIndex(of: "in"), i + 1 < words.count {
                computeNanoseconds = UInt64(words[i + 1])
            }
            if line.hasPrefix("syscalls:"), let open = line.firstIndex(of: "("), let ns = line[line.index(after: open)...].split(separator: " ").first {
                syscallNanoseconds = Double(ns)
            }
        }
    }
}
