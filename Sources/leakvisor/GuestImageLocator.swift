import ArgumentParser
import Foundation

/// Finds the default guest image built by `scripts/setup.sh` (guest-images/build/default).
enum GuestImageLocator {
    static func defaultDirectory() -> URL? {
        var candidates: [URL] = []
        if let dir = ProcessInfo.processInfo.environment["LEAKVISOR_IMAGE_DIR"] {
            candidates.append(URL(fileURLWithPath: dir))
        }
        // From .build/<config>/leakvisor up to the repository.
        let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        for _ in 0..<5 {
            candidates.append(dir.appendingPathComponent("guest-images/build/default"))
            dir = dir.deletingLastPathComponent()
        }
        candidates.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("guest-images/build/default"))
        return candidates.first { FileManager.default.fileExists(atPath: $0.appendingPathComponent("initramfs.cpio").path) }
    }

    /// The default image, or the error the benchmarks give when it is not built.
    static func requireDefaultDirectory() throws -> URL {
        guard let image = defaultDirectory() else {
            throw ValidationError("the default guest image is not built; run scripts/setup.sh")
        }
        return image
    }
}
