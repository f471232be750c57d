import Foundation
import Testing

/// C fixtures for the DebugInfo tests, compiled with gcc at test time into a scratch directory.
///
/// The sources live in Fixtures/debuginfo, which Package.swift excludes from the test target
/// (SwiftPM would otherwise take the `.c` files for sources of this Swift target).
enum DebugInfoFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/debuginfo").path

    /// Whether gcc can be run (the fixture tests need it).
    static let gccAvailable = (try? DebugInfoShell.run("/bin/sh", ["-c", "command -v gcc"]).status) == 0

    /// The text of fixture `name` (for example `callchain.c`).
    static func source(_ name: String) throws -> String {
        try String(contentsOfFile: directory + "/" + name, encoding: .utf8)
    }

    /// The 1-based line of fixture `name` containing `MARK:<marker>`.
    static func line(of marker: String, in name: String) throws -> Int {
        let lines = try source(name).split(separator: "\n", omittingEmptySubsequences: false)
        guard let index = lines.firstIndex(where: { $0.contains("MARK:\(marker) ") || $0.hasSuffix("MARK:\(marker)") })
        else { throw DebugInfoFixtureError.missingMarker(marker, name) }
        return index + 1
    }
}

enum DebugInfoFixtureError: Error, CustomStringConvertible {
    case missingMarker(String, String)
    case commandFailed(String, String)

    var description: String {
        switch self {
        case .missingMarker(let marker, let file): "no MARK:\(marker) in \(file)"
        case .commandFailed(let command, let output): "\(command) failed: \(output)"
        }
    }
}

/// A scratch directory, removed with its contents on release; fixtures are copied and built here.
final class DebugInfoScratch {
    let path: String

    init() throws {
        path = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("debuginfo-tests-" + UUID().uuidString).path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Copies fixture `source` here (under its plain name) and compiles it with gcc and `flags` into
    /// `output`; returns the executable's path.
    func build(_ source: String, output: String, flags: [String]) throws -> String {
        let sourcePath = path + "/" + source
        if !FileManager.default.fileExists(atPath: sourcePath) {
            try DebugInfoFixtures.source(source).write(toFile: sourcePath, atomically: true, encoding: .utf8)
        }
        let executable = path + "/" + output
        try DebugInfoShell.check("gcc", flags + ["-o", executable, sourcePath], in: path)
        return executable
    }

    /// Writes `bytes` to file `name` here; returns its path.
    func write(_ bytes: [UInt8], to name: String) throws -> String {
        let file = path + "/" + name
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        return file
    }
}

/// Runs host commands for the DebugInfo tests.
enum DebugInfoShell {
    struct Result {
        var status: Int32
        var output: String
        var error: String
    }

    static func run(_ executable: String, _ arguments: [String], in directory: String? = nil) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
        let output = Pipe()
        let error = Pipe()
        process.standardOutput = output
        process.standardError = error
        try process.run()
        let outputData = output.fileHandleForReading.readDataToEndOfFile()
        let errorData = error.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, output: String(decoding: outputData, as: UTF8.self),
            error: String(decoding: errorData, as: UTF8.self))
    }

    /// Runs `command` (looked up in PATH) and returns its standard output; throws if it fails.
    @discardableResult
    static func check(_ command: String, _ arguments: [String], in directory: String? = nil) throws -> String {
        let result = try run("/usr/bin/env", [command] + arguments, in: directory)
        guard result.status == 0 else {
            throw DebugInfoFixtureError.commandFailed(
                ([command] + arguments).joined(separator: " "), result.error + result.output)
        }
        return result.output
    }
}

@Suite struct DebugInfoFixtureTests {
    @Test func markersAreFoundOnTheirLines() throws {
        let lines = try DebugInfoFixtures.source("callchain.c").split(separator: "\n", omittingEmptySubsequences: false)
        for marker in ["inner-read", "middle-call", "outer-call", "main-call"] {
            let line = try DebugInfoFixtures.line(of: marker, in: "callchain.c")
            #expect(lines[line - 1].contains("MARK:\(marker)"))
        }
        #expect(throws: DebugInfoFixtureError.self) { try DebugInfoFixtures.line(of: "absent", in: "callchain.c") }
    }
}
