import Foundation

/// Lists the shared libraries of a dynamically linked program with `ldd`.
enum SharedLibraries {
    static let lddCandidates = ["/usr/bin/ldd", "/bin/ldd"]

    /// Absolute paths of the libraries and interpreter `ldd` reports for `binary`
    /// (the vDSO, which has no file, is skipped).
    static func paths(neededBy binary: String) throws -> [String] {
        guard let ldd = lddCandidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) })
        else { throw HostFileError.lddFailed(path: binary, reason: "ldd is not installed") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ldd)
        process.arguments = [binary]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        do {
            try process.run()
        } catch {
            throw HostFileError.lddFailed(path: binary, reason: "cannot run \(ldd): \(error)")
        }
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let text = output.trimmingCharacters(in: .whitespacesAndNewlines)
            throw HostFileError.lddFailed(
                path: binary, reason: "exit status \(process.terminationStatus): \(text)")
        }
        return try parse(output, binary: binary)
    }

    /// Parses lines such as `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`
    /// and `/lib64/ld-linux-x86-64.so.2 (0x...)`.
    static func parse(_ output: String, binary: String) throws -> [String] {
        var paths: [String] = []
        for rawLine in output.split(separator: "\n") {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            var candidate = line
            if let arrow = line.range(of: "=>") {
                let name = line[..<arrow.lowerBound].trimmingCharacters(in: .whitespaces)
                candidate = line[arrow.upperBound...].trimmingCharacters(in: .whitespaces)
                if candidate.hasPrefix("not found") {
                    throw HostFileError.missingLibrary(binary: binary, library: name)
                }
            }
            let path = candidate.components(separatedBy: " (").first ?? ""
            if path.hasPrefix("/"), !paths.contains(path) { paths.append(path) }
        }
        return paths
    }
}
